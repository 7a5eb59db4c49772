"""The fuller canonical model over HTTP: order line billing and the opportunity amount,
invoice line detail and the tax hold, credit notes after payment, refund documents, failed
payment attempts, unapplied cash and a cancellation at period end; bad input names its field.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Api, assert_problem, invoice_body, order_body


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def test_order_lines_and_the_opportunity_amount(api: Api) -> None:
    cid = api.customer()
    body = order_body(cid, opportunity_amount=usd("125.00"), close_date="2025-12-19")
    body["lines"][0] |= {
        "billing_frequency": "month",
        "billing_unit_price": "4.17",
        "service_start_date": "2026-02-01",
        "term_months": 11,
    }
    state = _ok(api.post("/v1/orders", body), 201)["state"]
    recurring, setup = state["lines"]
    assert (recurring["term_months"], recurring["service_start_date"]) == (11, "2026-02-01")
    assert (setup["term_months"], setup["service_start_date"]) == (12, "2026-01-01")
    assert setup["billing_frequency"] == "one_time"
    assert state["opportunity_amount"] == usd("125.00")  # beside the lines' 120.00
    assert state["totals"]["total"] == usd("120.00")
    assert state["close_date"] == "2025-12-19"
    plain = _ok(api.post("/v1/orders", order_body(cid)), 201)["state"]
    assert plain["opportunity_amount"] is None  # optional: clients that omit it still work


def test_bad_order_line_billing_names_the_field(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    body = order_body(cid)
    body["lines"][1]["billing_frequency"] = "month"  # a one-time line cannot bill monthly
    assert_problem(
        api.post("/v1/orders", body), 422, "invalid-value", field="body.lines.1.billing_frequency"
    )
    body = order_body(cid)
    body["lines"][0]["billing_frequency"] = "weekly"
    assert_problem(
        api.post("/v1/orders", body),
        422,
        "validation-failed",
        field="body.lines.0.billing_frequency",
    )
    wrong = order_body(cid, opportunity_amount={"amount": "1", "currency": "EUR"})
    assert_problem(
        api.post("/v1/orders", wrong), 422, "currency-mismatch", field="body.opportunity_amount"
    )
    assert api.total_events() == before


def _invoice(api: Api, cid: str, oid: str, **fields: Any) -> str:
    body = invoice_body(cid, oid, "100.00")
    body["lines"][0] |= {
        "charge_type": "recurring",
        "service_period_start": "2026-01-01",
        "service_period_end": "2026-02-01",
        "proration": True,
        "order_line": 0,
        "tax": "10.00",
    }
    body |= {"tax": "10.00", "total": "110.00"} | fields
    return str(_ok(api.post("/v1/invoices", body, role="billing"), 201)["id"])


def test_a_failed_tax_calculation_holds_the_invoice(api: Api) -> None:
    cid = api.customer()
    iid = _invoice(api, cid, api.order(cid))
    line = _ok(api.get(f"/v1/invoices/{iid}"))["state"]["lines"][0]
    assert (line["proration"], line["order_line"], line["tax"]) == (True, 0, "10.00")

    failed = api.post(
        f"/v1/invoices/{iid}/record_tax", {"status": "failed", "reason": "no nexus"}, role="erp"
    )
    state = _ok(failed)["state"]
    assert (state["tax_status"], state["tax_held"]) == ("failed", True)
    assert [e["type"] for e in failed.json()["events"]] == ["InvoiceTaxFailed"]
    refused = api.post(f"/v1/invoices/{iid}/post", {"erp_document_number": "D-1"}, role="erp")
    body = assert_problem(refused, 409, "invalid-transition", field="tax_status")
    assert "no nexus" in body["detail"]
    # the tax belongs to the ERP: billing may not report the calculation
    by_billing = api.post(
        f"/v1/invoices/{iid}/record_tax", {"status": "calculated"}, role="billing"
    )
    assert by_billing.status_code == 403, by_billing.text

    cleared = api.post(f"/v1/invoices/{iid}/record_tax", {"status": "calculated"}, role="erp")
    assert _ok(cleared)["state"]["tax_held"] is False
    assert _ok(api.post(f"/v1/invoices/{iid}/post", {"erp_document_number": "D-1"}, role="erp"))
    assert "InvoiceTaxCalculated" in [e.type_name() for e in api.history("invoice", iid)]


def test_bad_invoice_detail_names_the_field(api: Api) -> None:
    cid = api.customer()
    oid = api.order(cid)
    before = api.total_events()
    body = invoice_body(cid, oid)
    body["lines"][0] |= {"service_period_start": "2026-01-01", "service_period_end": "2026-01-01"}
    assert_problem(
        api.post("/v1/invoices", body, role="billing"),
        422,
        "invalid-value",
        field="body.lines.0.service_period_end",
    )
    body = invoice_body(cid, oid)
    body["lines"][0]["order_line"] = 5  # the order has two lines
    assert_problem(
        api.post("/v1/invoices", body, role="billing"),
        422,
        "invalid-value",
        field="body.lines.0.order_line",
    )
    body = invoice_body(cid, oid)
    body["lines"][0]["tax"] = "1.00"  # the invoice's tax is 0.00
    assert_problem(
        api.post("/v1/invoices", body, role="billing"), 422, "invalid-value", field="body.tax"
    )
    iid = api.invoice(cid, oid)
    assert_problem(
        api.post(f"/v1/invoices/{iid}/record_tax", {"status": "maybe"}, role="erp"),
        422,
        "validation-failed",
        field="body.status",
    )
    assert_problem(
        api.post(
            f"/v1/invoices/{iid}/record_payment_failure",
            {"attempted_at": "2026-01-05", "amount": usd("1.00")},
            role="billing",
        ),
        422,
        "validation-failed",
        field="body.attempted_at",
    )
    credit = {"amount": usd("10.00"), "lines": [{"line": 3, "amount": "10.00"}]}
    assert_problem(
        api.post(f"/v1/invoices/{iid}/credit", credit, role="billing"),
        422,
        "invalid-value",
        field="body.lines.0.line",
    )
    assert api.total_events() == before + 1  # only the invoice issued in between


def test_credit_note_after_payment_refund_and_unapplied_cash(api: Api) -> None:
    cid = api.customer()
    iid = _invoice(api, cid, api.order(cid))
    pid = api.payment(cid, "150.00")
    _ok(
        api.post(
            f"/v1/payments/{pid}/apply",
            {"invoice_id": iid, "amount": usd("110.00")},
            role="billing",
        )
    )
    payment = _ok(api.get(f"/v1/payments/{pid}"))["state"]
    assert payment["unapplied"] == usd("40.00")  # the rest of a larger payment stays unapplied

    credit = {
        "amount": usd("30.00"),
        "credit_note_number": "CN-1",
        "issue_date": "2026-01-20",
        "lines": [{"line": 0, "amount": "30.00"}],
    }
    invoice = _ok(api.post(f"/v1/invoices/{iid}/credit", credit, role="billing"))["state"]
    assert (invoice["status"], invoice["balance"], invoice["credit_balance"]) == (
        "paid",
        usd("0.00"),
        usd("30.00"),
    )
    assert invoice["credit_notes"][0]["lines"] == [{"line": 0, "amount": "30.00"}]

    refund = {"amount": usd("70.00"), "reference": "re_1", "credit_note_number": "CN-1"}
    refunded = _ok(api.post(f"/v1/payments/{pid}/refund", refund, role="billing"))
    (document,) = refunded["state"]["refunds"]
    assert (document["reference"], document["credit_note_number"]) == ("re_1", "CN-1")
    assert document["amount"] == usd("70.00")
    invoice = _ok(api.get(f"/v1/invoices/{iid}"))["state"]
    # 40 of the refund came from the unapplied cash, 30 off the invoice: the credit settled
    assert (invoice["balance"], invoice["credit_balance"]) == (usd("0.00"), usd("0.00"))

    again = api.post(f"/v1/payments/{pid}/refund", refund, role="billing")
    assert _ok(again)["events"] == []  # the same refund re-delivered: nothing recorded
    other = refund | {"amount": usd("1.00")}
    assert_problem(
        api.post(f"/v1/payments/{pid}/refund", other, role="billing"),
        409,
        "already-exists",
        field="body.reference",
    )


def test_failed_payment_attempts_are_listed(api: Api) -> None:
    cid = api.customer()
    iid = api.invoice(cid, api.order(cid))
    attempt = {
        "attempted_at": "2026-01-10T08:00:00Z",
        "amount": usd("100.00"),
        "reason": "card_declined",
        "attempt": 1,
    }
    path = f"/v1/invoices/{iid}/record_payment_failure"
    state = _ok(api.post(path, attempt, role="billing"))["state"]
    assert state["payment_failures"][0]["reason"] == "card_declined"
    assert (state["balance"], state["status"]) == (usd("100.00"), "open")
    assert _ok(api.post(path, attempt, role="billing"))["events"] == []
    assert api.post(path, attempt | {"attempt": 2}, role="crm").status_code == 403


def test_cancel_at_period_end_is_listed_cancelled_and_runs_until_then(api: Api) -> None:
    cid = api.customer()
    oid = api.order(cid)
    contract = {
        "order_id": oid,
        "customer_id": cid,
        "currency": "USD",
        "term_start": "2026-01-01",
        "term_end": "2026-12-31",
        "items": [
            {
                "sku": "PLAT-1",
                "rate_plan": "monthly",
                "quantity": "2",
                "unit_price": "50.00",
                "billing_period": "month",
                "charge_type": "recurring",
            }
        ],
    }
    kid = _ok(api.post("/v1/contracts", contract, role="billing"), 201)["id"]
    _ok(
        api.post(
            f"/v1/contracts/{kid}/activate", {"billing_subscription_id": "sub_1"}, role="billing"
        )
    )
    _ok(api.post(f"/v1/contracts/{kid}/cancel", {"effective_date": "2026-06-30"}, role="billing"))
    before = _ok(api.get(f"/v1/contracts/{kid}", params={"business_date": "2026-06-29"}))
    assert before["state"]["status"] == "active"
    on_the_day = _ok(api.get(f"/v1/contracts/{kid}", params={"business_date": "2026-06-30"}))
    assert on_the_day["state"]["status"] == "cancelled"
    listed = _ok(api.get("/v1/contracts", params={"status": "cancelled", "customer_id": cid}))
    assert [item["id"] for item in listed["items"]] == [kid]  # the recorded status
