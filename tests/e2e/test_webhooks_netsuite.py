"""NetSuite (ERP) deliveries end to end: the signed user-event envelope, customer links by
``externalId``, sales order acceptance and fulfilment, invoice postings, exact money."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import Api, assert_problem, order_body
from tests.e2e.inbound_support import (
    ACCOUNT,
    crm_account,
    mapped,  # noqa: F401  (the catalogue fixture)
    post_webhook,
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    stripe_customer,
    stripe_event,
    stripe_invoice,
    stripe_signature,
)
from tests.e2e.netsuite_support import (
    NETSUITE_OLD_SECRET,
    dumps,
    envelope,
    netsuite_signature,
    ns_customer,
    ns_customer_payment,
    ns_invoice,
    ns_sales_order,
)

pytestmark = pytest.mark.usefixtures("mapped")

OPPORTUNITY = "006Dn00000XyZaBIAV"


def deliver(api: Api, body: bytes, signature: str | None = None) -> httpx.Response:
    signed = netsuite_signature(body) if signature is None else signature
    return post_webhook(api, "netsuite", body, "X-Concord-Signature", signed)


def deliver_stripe(api: Api, body: bytes) -> httpx.Response:
    return post_webhook(api, "stripe", body, "Stripe-Signature", stripe_signature(body))


def status_of(response: httpx.Response) -> str:
    return str(response.json()["results"][0]["status"])


def reason_of(response: httpx.Response) -> str:
    return str(response.json()["results"][0]["detail"]["reason"])


def crm_order(
    api: Api, customer_id: str, opportunity: str = OPPORTUNITY, currency: str = "USD"
) -> str:
    """An order placed by the CRM from opportunity ``opportunity`` (its xref)."""
    response = api.post(
        "/v1/orders",
        order_body(customer_id, currency, opportunity_id=opportunity),
        role="crm",
        headers={"Concord-Source-Record-Id": opportunity},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def billing_invoice(
    api: Api, customer_id: str, order_id: str, ext: str, currency: str, amounts: tuple[str, ...]
) -> str:
    """An invoice issued by billing as its record ``ext``."""
    total = str(sum((Decimal(a) for a in amounts), Decimal(0)))
    response = api.post(
        "/v1/invoices",
        {
            "customer_id": customer_id,
            "order_id": order_id,
            "lines": [_line(a) for a in amounts],
            "currency": currency,
            "subtotal": total,
            "tax": "0",
            "total": total,
            "issue_date": "2026-01-06",
            "due_date": "2026-02-05",
        },
        role="billing",
        headers={"Concord-Source-Record-Id": ext},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _line(amount: str) -> dict[str, str]:
    """One invoice line of ``amount`` (a big one as 1000 units: unit prices have 12 digits)."""
    quantity = Decimal(1000) if len(amount.split(".")[0]) > 12 else Decimal(1)
    unit = format(Decimal(amount) / quantity, "f")
    return {"sku": "PLAT-1", "quantity": str(quantity), "unit_price": unit, "amount": amount}


def state(api: Api, kind: str, aggregate_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/{kind}/{aggregate_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def lookup(api: Api, system: str, entity: str, external: str) -> str | None:
    response = api.get(f"/v1/lookup/{system}/{entity}/{external}")
    return str(response.json()["id"]) if response.status_code == 200 else None


def event_types(api: Api, kind: str, aggregate_id: str) -> list[str]:
    return [e["type"] for e in api.get(f"/v1/{kind}/{aggregate_id}/events").json()["events"]]


def held(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/inbound/held").json()["items"]
    return items


# -- customers --------------------------------------------------------------------------------


def test_customer_links_by_external_id_and_sets_only_what_changed(api: Api) -> None:
    customer_id = crm_account(api)
    body = envelope("customer", ns_customer("647", ACCOUNT), "ns-cus-647-1")
    response = deliver(api, body)
    assert response.status_code == 200, response.text
    assert status_of(response) == "applied"
    view = state(api, "customers", customer_id)
    assert {"system": "erp", "external_id": "647"} in [
        {k: e[k] for k in ("system", "external_id")} for e in view["external_ids"]
    ]
    current = view["state"]
    assert current["customer_number"] == "CUST-00647"
    assert current["payment_terms"] == "Net 30"
    assert current["tax_id"] == "DE123456789"
    assert current["currency"] == "EUR"
    assert current["legal_name"] == "Acme GmbH"  # the CRM's name is untouched
    assert lookup(api, "erp", "customer", "647") == customer_id
    assert lookup(api, "erp", "customer", "CUST-00647") == customer_id
    assert event_types(api, "customers", customer_id)[1:] == [
        "CustomerLinked",
        "CustomerNumberAssigned",
        "CustomerPaymentTermsSet",
        "CustomerDetailsChanged",
    ]
    logged = api.get(f"/v1/inbound/{response.json()['results'][0]['delivery_id']}").json()
    assert logged["verification"].startswith("hmac-sha256")
    assert "x-concord-signature" not in logged["headers"]

    # The same record saved again (no change): no event at all.
    before = api.total_events()
    again = envelope("customer", ns_customer("647", ACCOUNT), "ns-cus-647-2", action="edit")
    response = deliver(api, again)
    assert response.status_code == 202 and status_of(response) == "ignored"
    assert "changes nothing" in reason_of(response)
    assert api.total_events() == before

    # Terms changed and a credit hold set: exactly those two facts.
    changed = ns_customer("647", ACCOUNT, terms="Net 45", hold="ON")
    response = deliver(
        api,
        envelope(
            "customer", changed, "ns-cus-647-3", action="edit", occurred_at="2026-01-07T10:00:00Z"
        ),
    )
    assert status_of(response) == "applied", response.text
    assert api.total_events() == before + 2
    current = state(api, "customers", customer_id)["state"]
    assert (current["payment_terms"], current["status"]) == ("Net 45", "on_hold")
    customers = api.get("/v1/customers", role="reader").json()["items"]
    assert [c["id"] for c in customers] == [customer_id]  # linked, never duplicated


def test_customer_before_its_crm_account_is_held_and_a_second_record_is_refused(
    api: Api,
) -> None:
    body = envelope("customer", ns_customer("647", ACCOUNT), "ns-cus-early")
    response = deliver(api, body)
    assert response.status_code == 202 and status_of(response) == "held"
    assert [h["waiting_for"] for h in held(api)] == [
        {"system": "crm", "entity": "customer", "external_id": ACCOUNT}
    ]
    customer_id = crm_account(api)
    # The account arrived through the API, not a webhook: the next replay (or the next
    # applied webhook) releases the hold.
    replayed = api.post("/v1/inbound/replay", {"since": "2000-01-01T00:00:00Z"}, role="admin")
    assert replayed.status_code == 200, replayed.text
    assert held(api) == []
    assert lookup(api, "erp", "customer", "647") == customer_id

    # A second NetSuite customer claiming the same Salesforce account is a duplicate in
    # NetSuite: refused (merge them there), never a second link or a second customer.
    twin = envelope("customer", ns_customer("648", ACCOUNT, entity_id="CUST-00648"), "ns-cus-648")
    refused = deliver(api, twin)
    assert_problem(refused, 422, "already-exists", field="external_id")
    assert lookup(api, "erp", "customer", "648") is None
    assert len(api.get("/v1/customers", role="reader").json()["items"]) == 1


# -- sales orders -----------------------------------------------------------------------------


def test_sales_order_is_accepted_then_fulfilled_and_duplicates_have_one_effect(api: Api) -> None:
    order_id = crm_order(api, crm_account(api))
    body = envelope("salesOrder", ns_sales_order("18", OPPORTUNITY), "ns-so-18-1")
    before = api.total_events()
    response = deliver(api, body)
    assert response.status_code == 200 and status_of(response) == "applied", response.text
    order = state(api, "orders", order_id)["state"]
    assert (order["status"], order["erp_order_number"]) == ("accepted", "SO1234")
    assert lookup(api, "erp", "order", "SO1234") == order_id
    assert api.total_events() == before + 1
    for _ in range(3):
        again = deliver(api, body)
        assert again.status_code == 200 and status_of(again) == "duplicate"
    assert api.total_events() == before + 1
    # Saved again still Pending Fulfillment (a memo edit): nothing new.
    edit = envelope("salesOrder", ns_sales_order("18", OPPORTUNITY), "ns-so-18-2", action="edit")
    assert status_of(deliver(api, edit)) == "ignored"
    billed = ns_sales_order("18", OPPORTUNITY, status="G")
    response = deliver(api, envelope("salesOrder", billed, "ns-so-18-3", action="edit"))
    assert status_of(response) == "applied", response.text
    assert state(api, "orders", order_id)["state"]["status"] == "fulfilled"
    cancelled = ns_sales_order("18", OPPORTUNITY, status="C")
    late = deliver(api, envelope("salesOrder", cancelled, "ns-so-18-4", action="edit"))
    assert status_of(late) == "ignored" and "fulfilled already" in reason_of(late)
    assert event_types(api, "orders", order_id) == [
        "OrderPlaced",
        "OrderAcceptedByErp",
        "OrderFulfilled",
    ]


def test_sales_order_billed_at_once_is_accepted_and_fulfilled_and_cancel_cancels(
    api: Api,
) -> None:
    customer_id = crm_account(api)
    first = crm_order(api, customer_id, "006Dn00000BilledAAA")
    second = crm_order(api, customer_id, "006Dn00000CancelAAA")
    waiting = crm_order(api, customer_id, "006Dn00000ApprovAAA")
    billed = ns_sales_order("21", "006Dn00000BilledAAA", status="G", tran_id="SO1300")
    assert status_of(deliver(api, envelope("salesOrder", billed, "ns-so-21"))) == "applied"
    assert event_types(api, "orders", first)[1:] == ["OrderAcceptedByErp", "OrderFulfilled"]
    # externalId used for something else in this account: the custom body field names it.
    cancel = ns_sales_order("22", "ERP-IMPORT-22", status="C", tran_id="SO1301")
    del cancel["externalId"]
    cancel["custbody_sf_opportunity_id"] = "006Dn00000CancelAAA"
    assert status_of(deliver(api, envelope("salesOrder", cancel, "ns-so-22"))) == "applied"
    cancelled = state(api, "orders", second)["state"]
    assert cancelled["status"] == "cancelled"
    assert "SO1301" in cancelled["cancellation_reason"]
    approval = ns_sales_order("23", "006Dn00000ApprovAAA", status="A", tran_id="SO1302")
    response = deliver(api, envelope("salesOrder", approval, "ns-so-23"))
    assert status_of(response) == "ignored" and "Pending Approval" in reason_of(response)
    assert state(api, "orders", waiting)["state"]["status"] == "placed"


def test_sales_order_before_its_crm_order_is_held_then_applied(api: Api) -> None:
    customer_id = crm_account(api)
    body = envelope("salesOrder", ns_sales_order("18", OPPORTUNITY), "ns-so-early")
    response = deliver(api, body)
    assert response.status_code == 202 and status_of(response) == "held"
    waiting = held(api)
    assert [h["event_id"] for h in waiting] == ["ns-so-early"]
    assert waiting[0]["waiting_for"] == {
        "system": "crm",
        "entity": "order",
        "external_id": OPPORTUNITY,
    }
    assert lookup(api, "erp", "order", "SO1234") is None
    order_id = crm_order(api, customer_id)
    # The next applied NetSuite delivery releases what now resolves.
    customer = envelope("customer", ns_customer("647", ACCOUNT), "ns-cus-after")
    assert status_of(deliver(api, customer)) == "applied"
    assert held(api) == []
    order = state(api, "orders", order_id)["state"]
    assert (order["status"], order["erp_order_number"]) == ("accepted", "SO1234")
    released = api.get("/v1/inbound", params={"system": "netsuite"}).json()["items"]
    assert {d["event_id"]: d["status"] for d in released} == {
        "ns-so-early": "applied",
        "ns-cus-after": "applied",
    }


# -- invoices and exact money ---------------------------------------------------------------


def test_invoice_postings_keep_money_exact_in_every_exponent(api: Api) -> None:
    customer_id = crm_account(api)
    cases = {
        # currency: (billing amounts, NetSuite JSON numbers)
        "USD": (("0.10", "0.20"), (Decimal("0.1"), Decimal("0.2"))),  # 0.1 + 0.2 == 0.3
        "KWD": (("1.250", "1.250"), (Decimal("1.25"), Decimal("1.250"))),
        "JPY": (("2500",), (Decimal("2500"),)),
        # 18 significant digits: a float would read 1e15 and the posting would not match.
        "BHD": (
            ("999999999999999", "0.001"),
            (Decimal("999999999999999"), Decimal("0.001")),
        ),
    }
    invoices = {}
    for index, (currency, (issued, sent)) in enumerate(cases.items()):
        order_id = crm_order(api, customer_id, f"006Dn0000000{index}AAA", currency)
        invoices[currency] = billing_invoice(
            api, customer_id, order_id, f"in_{currency}", currency, issued
        )
        record = ns_invoice(
            str(300 + index),
            f"in_{currency}",
            tran_id=f"INV2{index}",
            currency=currency,
            amounts=sent,
        )
        response = deliver(api, envelope("invoice", record, f"ns-inv-{currency}"))
        assert response.status_code == 200, response.text
    for index, invoice_id in enumerate(invoices.values()):
        posted = state(api, "invoices", invoice_id)["state"]
        assert posted["erp_document_number"] == f"INV2{index}"
        assert lookup(api, "erp", "invoice", f"INV2{index}") == invoice_id
    assert state(api, "invoices", invoices["KWD"])["state"]["total"] == {
        "amount": "2.500",
        "currency": "KWD",
    }

    # Facts are facts: a posting of another total than billing's is the ERP's copy, recorded
    # (a reconciliation break); a later save of the same document with other amounts is a
    # revision; the same save again changes nothing.
    order_id = crm_order(api, customer_id, "006Dn00000DiffrAAA", "KWD")
    diff = billing_invoice(api, customer_id, order_id, "in_diff", "KWD", ("2.500",))
    wrong = ns_invoice(
        "310", "in_diff", tran_id="INV30", currency="KWD", amounts=(Decimal("2.501"),)
    )
    assert deliver(api, envelope("invoice", wrong, "ns-inv-diff")).status_code == 200
    posted = state(api, "invoices", diff)["state"]
    assert posted["erp_document_number"] == "INV30"
    assert posted["total"] == {"amount": "2.500", "currency": "KWD"}
    assert posted["erp_amounts"] == {
        "total": {"amount": "2.501", "currency": "KWD"},
        "subtotal": {"amount": "2.501", "currency": "KWD"},
        "tax": {"amount": "0.000", "currency": "KWD"},
    }
    before = api.total_events()
    again = deliver(api, envelope("invoice", wrong, "ns-inv-diff-again"))
    assert status_of(again) == "ignored" and "posted already" in reason_of(again)
    assert api.total_events() == before
    fixed = ns_invoice("310", "in_diff", tran_id="INV30", currency="KWD", amounts=(Decimal("2.5"),))
    assert deliver(api, envelope("invoice", fixed, "ns-inv-fixed")).status_code == 200
    assert api.total_events() == before + 1
    revised = state(api, "invoices", diff)["state"]["erp_amounts"]
    assert revised["total"] == {"amount": "2.500", "currency": "KWD"}
    # Another currency for the same document cannot be true: refused, naming the field.
    other = ns_invoice("310", "in_diff", tran_id="INV30", currency="EUR", amounts=(Decimal("2.5"),))
    refused = deliver(api, envelope("invoice", other, "ns-inv-eur"))
    body = assert_problem(refused, 422, "malformed-payload", field="body.record.currency")
    assert "EUR" in body["detail"] and "KWD" in body["detail"]
    # More decimals than the currency has is refused, never rounded.
    yen = ns_invoice("311", "in_JPY", tran_id="INV31", currency="JPY", amounts=(Decimal("2500.5"),))
    refused = deliver(api, envelope("invoice", yen, "ns-inv-yen"))
    assert_problem(refused, 422, "malformed-payload", field="body.record.subtotal")


def test_invoice_before_billing_issues_it_is_held_then_posted(api: Api) -> None:
    """Cross-system order: NetSuite posts before Stripe's invoice.finalized arrives."""
    customer_id = crm_account(api)
    crm_order(api, customer_id, currency="KWD")
    stripe_cus = stripe_event("customer.created", stripe_customer("cus_Ns", ACCOUNT), "evt_c", 1)
    assert deliver_stripe(api, stripe_cus).status_code == 200
    posting = ns_invoice(
        "400", "in_ns1", tran_id="INV400", currency="KWD", amounts=(Decimal("2.5"),)
    )
    response = deliver(api, envelope("invoice", posting, "ns-inv-400"))
    assert response.status_code == 202 and status_of(response) == "held"
    assert held(api)[0]["waiting_for"] == {
        "system": "billing",
        "entity": "invoice",
        "external_id": "in_ns1",
    }
    one_off = stripe_invoice("in_ns1", "cus_Ns", currency="kwd", amounts=(2500,))
    one_off["metadata"] = {"sf_opportunity_id": OPPORTUNITY}
    finalized = stripe_event("invoice.finalized", one_off, "evt_fin_ns", 1767312000)
    response = deliver_stripe(api, finalized)
    assert response.status_code == 200, response.text
    assert held(api) == []
    invoice_id = lookup(api, "billing", "invoice", "in_ns1")
    assert invoice_id is not None
    posted = state(api, "invoices", invoice_id)["state"]
    assert posted["erp_document_number"] == "INV400"
    assert posted["total"] == {"amount": "2.500", "currency": "KWD"}


# -- what is not translated --------------------------------------------------------------------


def test_records_concord_does_not_translate_are_ignored_with_a_reason(api: Api) -> None:
    crm_account(api)
    before = api.total_events()
    payment = ns_customer_payment("900", "KWD", (Decimal("0.1"), Decimal("0.2")))
    response = deliver(api, envelope("customerPayment", payment, "ns-pay-900"))
    assert response.status_code == 202 and status_of(response) == "ignored"
    reason = reason_of(response)
    assert "0.300 KWD" in reason and "INV10020, INV10021" in reason and "billing" in reason
    memo = ns_invoice("901", None, tran_id="CM77", currency="JPY", amounts=(Decimal("1500"),))
    memo["createdFrom"] = {"id": "300", "refName": "Invoice #INV20"}
    response = deliver(api, envelope("creditMemo", memo, "ns-cm-901"))
    assert status_of(response) == "ignored" and "1500 JPY" in reason_of(response)
    item = {"id": "5001", "itemId": "PLAT-1", "displayName": "Platform seat", "isInactive": False}
    response = deliver(api, envelope("serviceSaleItem", item, "ns-item-5001"))
    assert status_of(response) == "ignored" and "item master" in reason_of(response)
    response = deliver(api, envelope("vendorBill", {"id": "77"}, "ns-vb-77"))
    assert response.status_code == 202 and status_of(response) == "ignored"
    assert "vendorBill" in reason_of(response)
    erp_only = deliver(api, envelope("invoice", ns_invoice("902", None), "ns-inv-902"))
    assert status_of(erp_only) == "ignored" and "ERP-only" in reason_of(erp_only)
    stranger = ns_customer("903", None) | {"companyName": "Nobody Known Ltd", "vatRegNumber": None}
    no_link = deliver(api, envelope("customer", stranger, "ns-cus-903"))
    assert status_of(no_link) == "ignored" and "externalId" in reason_of(no_link)
    no_opp = deliver(api, envelope("salesOrder", ns_sales_order("904", None), "ns-so-904"))
    assert status_of(no_opp) == "ignored" and "opportunity" in reason_of(no_opp)
    deleted = envelope("customer", ns_customer("647", ACCOUNT), "ns-del-647", action="delete")
    assert status_of(deliver(api, deleted)) == "ignored"
    assert api.total_events() == before
    assert held(api) == []


# -- verification and malformed payloads -----------------------------------------------------


def test_signature_matrix_and_nothing_logged_when_refused(api: Api) -> None:
    crm_account(api)
    body = envelope("customer", ns_customer("647", ACCOUNT), "ns-sig")
    refused = {
        "wrong secret": netsuite_signature(body, "ns_wrong"),
        "tampered body": netsuite_signature(body.replace(b"CUST-00647", b"CUST-00648")),
        "missing header": "",
        "not hex": "sha256=deadbeef",
    }
    for case, signature in refused.items():
        response = deliver(api, body, signature)
        assert_problem(response, 401, "webhook-unverified"), case
    tampered = body.replace(b"CUST-00647", b"CUST-00648")
    assert_problem(deliver(api, tampered, netsuite_signature(body)), 401, "webhook-unverified")
    assert api.get("/v1/inbound").json()["items"] == []
    rotated = deliver(api, body, netsuite_signature(body, NETSUITE_OLD_SECRET))
    assert rotated.status_code == 200, rotated.text
    valid = deliver(api, body, netsuite_signature(body).upper())  # hex case does not matter
    assert valid.status_code == 200 and status_of(valid) == "duplicate"
    logged = api.get("/v1/inbound").json()["items"]
    assert [d["event_id"] for d in logged] == ["ns-sig"]


def test_malformed_payloads_name_the_field(api: Api) -> None:
    crm_order(api, crm_account(api))
    before = api.total_events()
    assert_problem(deliver(api, b"{not json"), 422, "validation-failed", field="body")
    assert_problem(deliver(api, b'{"total": NaN}'), 422, "validation-failed", field="body")
    no_id = dumps(
        {
            "recordType": "customer",
            "action": "create",
            "occurredAt": "2026-01-05T09:30:00Z",
            "record": {},
        }
    )
    assert_problem(deliver(api, no_id), 422, "validation-failed", field="body.eventId")
    naive = envelope("customer", {"id": "1"}, "ns-naive", occurred_at="2026-01-05T09:30:00")
    assert_problem(deliver(api, naive), 422, "validation-failed", field="body.occurredAt")
    order = ns_sales_order("18", OPPORTUNITY)
    del order["orderStatus"]
    response = deliver(api, envelope("salesOrder", order, "ns-so-nostatus"))
    assert_problem(response, 422, "malformed-payload", field="body.record.orderStatus")
    odd = ns_sales_order("18", OPPORTUNITY, status="Z")
    response = deliver(api, envelope("salesOrder", odd, "ns-so-z"))
    assert_problem(response, 422, "malformed-payload", field="body.record.orderStatus.id")
    lines = ns_sales_order("18", OPPORTUNITY)
    lines["item"]["items"][1]["amount"] = "twenty"
    response = deliver(api, envelope("salesOrder", lines, "ns-so-lines"))
    assert_problem(response, 422, "malformed-payload", field="body.record.item.items.1.amount")
    yen = ns_customer_payment("905", "JPY", (Decimal("10.5"),))
    response = deliver(api, envelope("customerPayment", yen, "ns-pay-yen"))
    assert_problem(response, 422, "malformed-payload", field="body.record.payment")
    assert api.total_events() == before


# -- a whole deal, in any order --------------------------------------------------------------

_DEALS = itertools.count()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(order=st.permutations(range(6)))
def test_a_whole_deal_in_any_delivery_order_reaches_the_same_state(
    api: Api, order: list[int]
) -> None:
    n = next(_DEALS)
    account, opportunity = f"001Dn0000Deal{n:04d}A", f"006Dn0000Deal{n:04d}A"
    customer_id = crm_account(api, account)
    order_id = crm_order(api, customer_id, opportunity, "BHD")
    cus, inv, so = f"cus_deal{n}", f"in_deal{n}", f"SO9{n:03d}"
    stripe_invoice_body = stripe_invoice(inv, cus, currency="bhd", amounts=(1234, 100))
    stripe_invoice_body["metadata"] = {"sf_opportunity_id": opportunity}
    stripe_events = [
        stripe_event("customer.created", stripe_customer(cus, account), f"evt_c{n}", 1),
        stripe_event("invoice.finalized", stripe_invoice_body, f"evt_f{n}", 1767312000),
    ]
    netsuite = [
        envelope("customer", ns_customer(str(5000 + n), account, entity_id=f"C-{n}"), f"ns-c{n}"),
        envelope(
            "salesOrder",
            ns_sales_order(str(6000 + n), opportunity, tran_id=so, currency="BHD"),
            f"ns-b{n}",
        ),
        envelope(
            "salesOrder",
            ns_sales_order(str(6000 + n), opportunity, status="G", tran_id=so, currency="BHD"),
            f"ns-g{n}",
            action="edit",
            occurred_at="2026-01-06T12:00:00Z",
        ),
        envelope(
            "invoice",
            ns_invoice(
                str(7000 + n),
                inv,
                tran_id=f"INV9{n}",
                currency="BHD",
                amounts=(Decimal("1.234"), Decimal("0.1")),
            ),
            f"ns-i{n}",
        ),
    ]
    deliveries: list[tuple[str, bytes]] = [("stripe", b) for b in stripe_events]
    deliveries += [("netsuite", b) for b in netsuite]
    for index in order:
        system, body = deliveries[index]
        response = deliver_stripe(api, body) if system == "stripe" else deliver(api, body)
        assert response.status_code in (200, 202), response.text
    assert held(api) == []
    deal = state(api, "orders", order_id)["state"]
    assert (deal["status"], deal["erp_order_number"]) == ("fulfilled", so)
    customer = state(api, "customers", customer_id)
    assert customer["state"]["customer_number"] == f"C-{n}"
    linked = {(e["system"], e["external_id"]) for e in customer["external_ids"]}
    assert {("billing", cus), ("erp", str(5000 + n)), ("erp", f"C-{n}")} <= linked
    invoice_id = lookup(api, "billing", "invoice", inv)
    assert invoice_id is not None
    posted = state(api, "invoices", invoice_id)["state"]
    assert posted["erp_document_number"] == f"INV9{n}"
    assert posted["total"] == {"amount": "1.334", "currency": "BHD"}
