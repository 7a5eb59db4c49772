"""Facts and intentions over HTTP: what a system of record reports is recorded, what cannot
be true is refused, and an older report never overwrites a newer one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import orjson

from tests.e2e.conftest import Api, assert_problem, invoice_body, order_body, payment_body


def test_order_amended_after_erp_acceptance_awaits_acceptance_again(api: Api) -> None:
    cid = api.customer()
    oid = api.order(cid)
    assert api.post(f"/v1/orders/{oid}/validate", role="erp").status_code == 200
    accepted = api.post(f"/v1/orders/{oid}/accept", {"erp_order_number": "SO-7"}, role="erp")
    assert accepted.json()["state"]["status"] == "accepted"

    lines = order_body(cid)["lines"][:1]
    amended = api.post(f"/v1/orders/{oid}/amend", {"lines": lines}, role="crm")
    assert amended.status_code == 200, amended.text
    assert amended.json()["state"]["status"] == "placed"
    assert api.get(f"/v1/orders/{oid}").json()["state"]["status"] == "placed"

    again = api.post(f"/v1/orders/{oid}/accept", {"erp_order_number": "SO-7"}, role="erp")
    assert again.status_code == 200, again.text
    assert again.json()["state"]["status"] == "accepted"


def _contract_body(customer_id: str, order_id: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "items": [
            {
                "sku": "PLAT-1",
                "rate_plan": "pro",
                "quantity": "2",
                "unit_price": "50.00",
                "billing_period": "month",
                "charge_type": "recurring",
            },
            {
                "sku": "CALLS",
                "rate_plan": "metered",
                "quantity": "0",
                "unit_price": "0.0004",
                "billing_period": "month",
                "charge_type": "usage",
            },
        ],
        "currency": "USD",
        "term_start": "2026-01-01",
        "term_end": "2026-12-31",
    }


def _contract(api: Api, customer_id: str, order_id: str) -> str:
    created = api.post("/v1/contracts", _contract_body(customer_id, order_id), role="billing")
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def test_what_cannot_be_true_across_customers_is_refused(api: Api) -> None:
    mine, theirs = api.customer(), api.customer(legal_name="Other AG")
    their_order = api.order(theirs)
    body = invoice_body(mine, api.order(mine))
    before = api.total_events()
    refused = api.post("/v1/contracts", _contract_body(mine, their_order), role="billing")
    assert_problem(refused, 422, "invalid-value", field="body.customer_id")
    assert api.total_events() == before
    their_contract = _contract(api, theirs, their_order)
    before = api.total_events()
    refused = api.post("/v1/invoices", body | {"contract_id": their_contract}, role="billing")
    assert_problem(refused, 422, "invalid-value", field="body.contract_id")
    assert api.total_events() == before


def test_a_credit_note_number_counts_once_per_invoice(api: Api) -> None:
    cid = api.customer()
    iid = api.invoice(cid, api.order(cid))
    note = {"amount": {"amount": "10.00", "currency": "USD"}, "credit_note_number": "CN-1"}
    first = api.post(f"/v1/invoices/{iid}/credit", note, role="billing")
    assert first.status_code == 200, first.text
    again = api.post(f"/v1/invoices/{iid}/credit", note, role="billing")
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2 and again.json()["events"] == []
    before = api.total_events()
    other = note | {"amount": {"amount": "20.00", "currency": "USD"}}
    clash = api.post(f"/v1/invoices/{iid}/credit", other, role="billing")
    body = assert_problem(clash, 409, "already-exists", field="body.credit_note_number")
    assert "CN-1" in body["detail"]
    assert api.total_events() == before
    state = api.get(f"/v1/invoices/{iid}").json()["state"]
    assert state["amount_credited"] == {"amount": "10.00", "currency": "USD"}


def test_a_usage_record_id_counts_once(api: Api) -> None:
    cid = api.customer()
    kid = _contract(api, cid, api.order(cid))
    assert (
        api.post(
            f"/v1/contracts/{kid}/activate", {"billing_subscription_id": "sub_1"}, role="billing"
        ).status_code
        == 200
    )
    usage = {
        "sku": "CALLS",
        "quantity": "1000",
        "period_start": "2026-02-01",
        "period_end": "2026-02-28",
        "usage_record_id": "ur_1",
    }
    for _ in range(2):
        sent = api.post(f"/v1/contracts/{kid}/record_usage", usage, role="billing")
        assert sent.status_code == 200, sent.text
    state = api.get(f"/v1/contracts/{kid}").json()["state"]
    assert state["usage_totals"] == {"CALLS": "1000"} and state["usage_records"] == 1
    before = api.total_events()
    clash = api.post(f"/v1/contracts/{kid}/record_usage", usage | {"quantity": "5"}, role="billing")
    assert_problem(clash, 409, "already-exists", field="body.usage_record_id")
    assert api.total_events() == before


def test_a_future_amendment_is_a_scheduled_change(api: Api) -> None:
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    cid = api.customer()
    body = _contract_body(cid, api.order(cid)) | {
        "term_start": str(today - timedelta(days=30)),
        "term_end": str(today + timedelta(days=365)),
    }
    created = api.post("/v1/contracts", body, role="billing")
    assert created.status_code == 201, created.text
    kid = created.json()["id"]
    change = {
        "changes": [{"sku": "PLAT-1", "unit_price": "60.00"}],
        "effective_date": str(tomorrow),
    }
    amended = api.post(f"/v1/contracts/{kid}/amend", change, role="billing")
    assert amended.status_code == 200, amended.text

    def seat_price(state: dict[str, Any]) -> str:
        return str(next(i["unit_price"] for i in state["items"] if i["sku"] == "PLAT-1"))

    now = api.get(f"/v1/contracts/{kid}").json()["state"]
    assert seat_price(now) == "50.00"  # today's state does not show tomorrow's price
    assert [c["effective_date"] for c in now["scheduled_changes"]] == [str(tomorrow)]
    then = api.get(f"/v1/contracts/{kid}", params={"business_date": str(tomorrow)}).json()
    assert seat_price(then["state"]) == "60.00" and then["state"]["scheduled_changes"] == []
    assert then["version"] == amended.json()["version"]
    bad = api.get(f"/v1/contracts/{kid}", params={"business_date": "tomorrow"})
    assert bad.status_code == 422


def test_an_older_source_update_never_overwrites_a_newer_one(api: Api) -> None:
    cid = api.customer()
    newer = {"Concord-Occurred-At": "2026-03-01T12:00:00+00:00"}
    older = {"Concord-Occurred-At": "2026-03-01T11:00:00Z"}
    path = f"/v1/customers/{cid}/set_payment_terms"
    first = api.post(path, {"payment_terms": "NET45"}, role="erp", headers=newer)
    assert first.status_code == 200, first.text
    late = api.post(path, {"payment_terms": "NET30"}, role="erp", headers=older)
    assert late.status_code == 200, late.text
    assert [e["type"] for e in late.json()["events"]] == ["CustomerUpdateStale"]
    state = api.get(f"/v1/customers/{cid}").json()["state"]
    assert state["payment_terms"] == "NET45"
    assert state["source_occurred_at"]["payment_terms"].startswith("2026-03-01T12:00:00")
    stale = api.history("customer", cid)[-1]
    assert stale.type_name() == "CustomerUpdateStale"
    assert stale.fields == ["payment_terms"]
    assert stale.provenance.occurred_at.hour == 11

    # The same rule holds in batch (provenance.occurred_at on the line).
    line = {
        "entity": "customer",
        "command": "set_payment_terms",
        "id": cid,
        "data": {"payment_terms": "NET60"},
        "provenance": {"occurred_at": "2026-02-01T00:00:00Z"},
    }
    batch = api.http.post(
        "/v1/batch",
        content=orjson.dumps(line) + b"\n",
        headers=api.headers("erp", {"Content-Type": "application/x-ndjson"}),
    )
    assert batch.status_code == 200, batch.text
    assert api.get(f"/v1/customers/{cid}").json()["state"]["payment_terms"] == "NET45"
    assert api.history("customer", cid)[-1].type_name() == "CustomerUpdateStale"


def test_a_merged_customer_facts_follow_intentions_are_refused(api: Api) -> None:
    survivor, merged = api.customer(), api.customer(legal_name="Acme Duplicate")
    oid = api.order(merged)  # placed before the merge
    done = api.post(f"/v1/customers/{merged}/merge", {"target_customer_id": survivor})
    assert done.status_code == 200, done.text

    invoice = api.post("/v1/invoices", invoice_body(merged, oid), role="billing")
    assert invoice.status_code == 201, invoice.text
    assert invoice.json()["state"]["customer_id"] == survivor
    payment = api.post("/v1/payments", payment_body(merged, "30.00"), role="billing")
    assert payment.status_code == 201, payment.text
    assert payment.json()["state"]["customer_id"] == survivor
    applied = api.post(
        f"/v1/payments/{payment.json()['id']}/apply",
        {"invoice_id": invoice.json()["id"], "amount": {"amount": "30.00", "currency": "USD"}},
        role="billing",
    )
    assert applied.status_code == 200, applied.text

    before = api.total_events()
    place = api.post("/v1/orders", order_body(merged))
    body = assert_problem(place, 409, "customer-merged", field="body.customer_id")
    assert body["survivor_id"] == survivor and survivor in body["detail"]
    rename = api.post(f"/v1/customers/{merged}/change_details", {"display_name": "X"})
    assert assert_problem(rename, 409, "customer-merged")["survivor_id"] == survivor
    assert api.total_events() == before
    erased = api.post(f"/v1/customers/{merged}/erase", role="crm")
    assert erased.status_code == 200, erased.text


def test_a_merge_moves_open_invoices_and_credit_to_the_survivor(api: Api) -> None:
    survivor, merged = api.customer(), api.customer(legal_name="Acme Duplicate")
    oid = api.order(merged)
    open_invoice = api.invoice(merged, oid, "100.00")
    paid_invoice = api.invoice(merged, oid, "40.00")
    pid = api.payment(merged, "70.00")  # 40 applied, 30 left as the customer's credit
    applied = api.post(
        f"/v1/payments/{pid}/apply",
        {"invoice_id": paid_invoice, "amount": {"amount": "40.00", "currency": "USD"}},
        role="billing",
    )
    assert applied.status_code == 200, applied.text

    done = api.post(f"/v1/customers/{merged}/merge", {"target_customer_id": survivor})
    assert done.status_code == 200, done.text
    moved = {(e["aggregate"], e["type"]) for e in done.json()["events"]}
    assert moved == {
        ("customer", "CustomerMerged"),
        ("customer", "CustomerAbsorbed"),  # the survivor records it too
        ("invoice", "InvoiceMovedToSurvivor"),
        ("payment", "PaymentMovedToSurvivor"),
    }
    assert api.get(f"/v1/invoices/{open_invoice}").json()["state"]["customer_id"] == survivor
    assert api.get(f"/v1/payments/{pid}").json()["state"]["customer_id"] == survivor
    assert api.get(f"/v1/invoices/{paid_invoice}").json()["state"]["customer_id"] == merged
    last = api.history("invoice", open_invoice)[-1]
    assert (str(last.from_customer_id), str(last.customer_id)) == (merged, survivor)
    # The survivor's credit pays the moved invoice: one customer now.
    paid = api.post(
        f"/v1/payments/{pid}/apply",
        {"invoice_id": open_invoice, "amount": {"amount": "30.00", "currency": "USD"}},
        role="billing",
    )
    assert paid.status_code == 200, paid.text


def test_a_merge_in_a_batch_moves_what_earlier_lines_issued(api: Api) -> None:
    """The batch decides line 2 seeing line 1's not-yet-committed invoice (its overlay)."""
    survivor, merged = api.customer(), api.customer(legal_name="Acme Duplicate")
    oid = api.order(merged)
    invoice_id = str(uuid4())
    lines = [
        {
            "entity": "invoice",
            "command": "issue",
            "id": invoice_id,
            "data": invoice_body(merged, oid),
        },
        {
            "entity": "customer",
            "command": "merge",
            "id": merged,
            "data": {"target_customer_id": survivor},
        },
    ]
    sent = api.http.post(
        "/v1/batch",
        content=b"\n".join(orjson.dumps(line) for line in lines),
        headers=api.headers("admin", {"Content-Type": "application/x-ndjson"}),
    )
    assert sent.status_code == 200, sent.text
    results = sent.json()["results"]
    assert [r["status"] for r in results] == [201, 200], results
    assert api.get(f"/v1/invoices/{invoice_id}").json()["state"]["customer_id"] == survivor
    assert [e.type_name() for e in api.history("invoice", invoice_id)] == [
        "InvoiceIssued",
        "InvoiceMovedToSurvivor",
    ]


def test_billing_reports_a_subscription_on_a_cancelled_order(api: Api) -> None:
    cid = api.customer()
    oid = api.order(cid)
    assert api.post(f"/v1/orders/{oid}/cancel", {"reason": "lost"}).status_code == 200
    created = api.post("/v1/contracts", _contract_body(cid, oid), role="billing")
    assert created.status_code == 201, created.text  # recorded: a reconciliation break
    assert api.get(f"/v1/orders/{oid}").json()["state"]["status"] == "cancelled"


def test_a_business_date_before_a_backdated_amendment_shows_the_old_price(api: Api) -> None:
    today = datetime.now(UTC).date()
    cid = api.customer()
    body = _contract_body(cid, api.order(cid)) | {
        "term_start": str(today - timedelta(days=30)),
        "term_end": str(today + timedelta(days=365)),
    }
    kid = api.post("/v1/contracts", body, role="billing").json()["id"]
    backdated = today - timedelta(days=10)
    change = {
        "changes": [{"sku": "PLAT-1", "unit_price": "45.00"}],
        "effective_date": str(backdated),
    }
    assert api.post(f"/v1/contracts/{kid}/amend", change, role="billing").status_code == 200
    before = {"business_date": str(backdated - timedelta(days=1))}
    items = api.get(f"/v1/contracts/{kid}", params=before).json()["state"]["items"]
    assert str(items[0]["unit_price"]) == "50.00"
    items = api.get(f"/v1/contracts/{kid}").json()["state"]["items"]
    assert str(items[0]["unit_price"]) == "45.00"


def test_a_far_future_source_time_is_refused_and_cannot_freeze_a_field(api: Api) -> None:
    """A ``Concord-Occurred-At`` years ahead of the hub's clock would make every real update
    after it "stale" forever; a source time later than the recording time (beyond a small
    clock skew) is refused with 422 naming it, in a single command and in batch alike."""
    cid = api.customer()
    path = f"/v1/customers/{cid}/set_payment_terms"
    before = api.total_events()
    future = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    refused = api.post(
        path, {"payment_terms": "NET90"}, role="erp", headers={"Concord-Occurred-At": future}
    )
    assert_problem(refused, 422, "invalid-value", field="occurred_at")
    line = {
        "entity": "customer",
        "command": "set_payment_terms",
        "id": cid,
        "data": {"payment_terms": "NET90"},
        "provenance": {"occurred_at": future},
    }
    batch = api.http.post(
        "/v1/batch",
        content=orjson.dumps(line) + b"\n",
        headers=api.headers("erp", {"Content-Type": "application/x-ndjson"}),
    )
    assert batch.status_code in (200, 207, 422), batch.text
    assert "occurred_at" in batch.text
    assert api.total_events() == before

    # A real update now still applies; a source clock a little ahead is tolerated.
    slightly = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    now = api.post(
        path, {"payment_terms": "NET30"}, role="erp", headers={"Concord-Occurred-At": slightly}
    )
    assert now.status_code == 200, now.text
    assert api.get(f"/v1/customers/{cid}").json()["state"]["payment_terms"] == "NET30"
