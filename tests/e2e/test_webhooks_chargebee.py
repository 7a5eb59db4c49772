"""Chargebee webhooks end to end: Basic auth, resource_version ordering, holds, cents."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import pytest

from tests.e2e import test_webhooks_stripe as stripe_tests
from tests.e2e.chargebee_support import (
    ACCOUNT,
    DAY,
    JAN_1,
    JAN_1_2027,
    JAN_2,
    OLD_PASSWORD,
    OPPORTUNITY,
    USER,
    basic,
    customer,
    deliver,
    event,
    invoice,
    subscription,
    transaction,
)
from tests.e2e.conftest import Api, assert_problem, order_body
from tests.e2e.inbound_support import (
    mapped,  # noqa: F401  (the catalogue fixture)
    runtime,  # noqa: F401  (the fixture with webhook secrets)
)

pytestmark = pytest.mark.usefixtures("mapped")

CUS, SUB = "AzZTZgSTdKYbD1jA", "16CRibSAbc123"
NOV_1 = 1793491200  # 2026-11-01: source times stay in the past


def crm_account(api: Api, account: str = ACCOUNT) -> str:
    """The CRM account (Salesforce id ``account``) the Chargebee customer names."""
    return stripe_tests.crm_account(api, account)


def crm_order(api: Api, customer_id: str, currency: str = "USD", opp: str = OPPORTUNITY) -> str:
    body = order_body(customer_id, currency, opportunity_id=opp)
    response = api.post("/v1/orders", body, role="crm", headers={"Concord-Source-Record-Id": opp})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def lookup(api: Api, entity: str, external: str) -> str | None:
    response = api.get(f"/v1/lookup/billing/{entity}/{external}")
    return str(response.json()["id"]) if response.status_code == 200 else None


def state(api: Api, kind: str, aggregate_id: str | None) -> dict[str, Any]:
    assert aggregate_id is not None
    response = api.get(f"/v1/{kind}/{aggregate_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["state"]
    return found


def status_of(response: Any) -> str:
    return str(response.json()["results"][0]["status"])


def linked(api: Api, currency: str = "USD") -> tuple[str, str]:
    """A CRM account linked to the Chargebee customer, and the CRM order of the deal."""
    customer_id = crm_account(api)
    order_id = crm_order(api, customer_id, currency)
    response = deliver(api, event("customer_created", "ev_cus_1", JAN_1, customer=customer()))
    assert response.status_code == 200, response.text
    return customer_id, order_id


def with_contract(api: Api, currency: str = "USD", **sub: Any) -> str:
    linked(api, currency)
    body = event(
        "subscription_created",
        "ev_sub_1",
        JAN_1,
        subscription=subscription(currency=currency, **sub),
        customer=customer(),
    )
    response = deliver(api, body)
    assert response.status_code == 200, response.text
    contract_id = lookup(api, "contract", SUB)
    assert contract_id is not None
    return contract_id


def test_customer_links_to_the_crm_account_and_never_creates_one(api: Api) -> None:
    early = deliver(api, event("customer_created", "ev_c0", JAN_1, customer=customer()))
    assert early.status_code == 202 and status_of(early) == "held"
    held = api.get("/v1/inbound/held").json()["items"]
    assert held[0]["waiting_for"] == {"system": "crm", "entity": "customer", "external_id": ACCOUNT}
    customer_id = crm_account(api)
    # Held deliveries are released when a later inbound event applies (or by a replay);
    # here the customer's next delivery finds the account and links.
    retry = deliver(api, event("customer_created", "ev_c0", JAN_1, customer=customer()))
    assert retry.status_code == 200 and status_of(retry) == "applied", retry.text
    assert lookup(api, "customer", CUS) == customer_id
    assert state(api, "customers", customer_id)["external_ids"]["billing"] == CUS
    before = api.total_events()
    orphan = customer("BzZTZgSTdKYbD1jX", account=None) | {"company": "Nobody Known Ltd"}
    ignored = deliver(api, event("customer_changed", "ev_c1", JAN_2, customer=orphan))
    assert ignored.status_code == 202 and status_of(ignored) == "ignored"
    assert "never creates a customer" in ignored.json()["results"][0]["detail"]["reason"]
    assert api.total_events() == before
    assert api.get("/v1/inbound/held").json()["items"] == []


def test_subscription_lifecycle_drives_the_contract(api: Api) -> None:
    contract_id = with_contract(api)
    contract = state(api, "contracts", contract_id)
    assert contract["status"] == "active"
    assert contract["billing_subscription_id"] == SUB
    assert (contract["term_start"], contract["term_end"]) == ("2026-01-01", "2027-01-01")
    assert contract["items"] == [  # the one-time charge item is invoiced, not subscribed
        {
            "sku": "PLATFORM-YEARLY",
            "rate_plan": "platform-USD-yearly",
            "quantity": "2",
            "unit_price": "50.00",
            "billing_period": "year",
            "charge_type": "recurring",
        }
    ]
    steps = [
        ("subscription_paused", "ev_p", {"status": "paused", "pause_date": JAN_1 + 60 * DAY}),
        ("subscription_resumed", "ev_r", {"status": "active"}),
        ("subscription_changed", "ev_ch", {"status": "active", "quantity": 5}),
        ("subscription_renewed", "ev_rn", {"status": "active", "term_end": JAN_1_2027 + 365 * DAY}),
        (
            "subscription_cancelled",
            "ev_x",
            {"status": "cancelled", "cancelled_at": NOV_1, "cancel_reason": "not_paid"},
        ),
    ]
    seen = []
    for index, (kind, event_id, fields) in enumerate(steps):
        rv = (JAN_2 + (index + 1) * 30 * DAY) * 1000
        fields = (
            {"quantity": 5, "term_end": JAN_1_2027 + 365 * DAY} | fields if index > 2 else fields
        )
        body = event(kind, event_id, rv // 1000, subscription=subscription(rv=rv, **fields))
        response = deliver(api, body)
        assert response.status_code == 200, (kind, response.text)
        seen.append(state(api, "contracts", contract_id))
    assert seen[0]["status"] == "suspended" and seen[0]["suspended_on"] == "2026-03-02"
    assert seen[1]["status"] == "active"
    assert seen[2]["items"][0]["quantity"] == "5"
    assert seen[3]["term_end"] == "2028-01-01" and seen[3]["renewals"] == 1
    assert seen[4]["status"] == "cancelled"
    assert seen[4]["cancellation_date"] == "2026-11-01"
    assert seen[4]["cancellation_reason"] == "not_paid"


def test_invoice_before_subscription_is_held_then_applied_and_paid(api: Api) -> None:
    customer_id, order_id = linked(api)
    early = deliver(api, event("invoice_generated", "ev_inv", JAN_2, invoice=invoice(tax=825)))
    assert early.status_code == 202 and status_of(early) == "held"
    assert early.json()["results"][0]["waiting_for"] == f"billing contract {SUB}"
    paid_early = deliver(
        api,
        event(
            "payment_succeeded",
            "ev_pay",
            JAN_2 + 7 * DAY,
            transaction=transaction(amount=10825, linked=(("INV-1001", 10825),)),
        ),
    )
    assert status_of(paid_early) == "held"
    created = deliver(
        api, event("subscription_created", "ev_sub", JAN_1, subscription=subscription())
    )
    assert created.status_code == 200, created.text
    contract_id = lookup(api, "contract", SUB)
    assert state(api, "contracts", contract_id)["order_id"] == order_id
    invoice_id = lookup(api, "invoice", "INV-1001")
    issued = state(api, "invoices", invoice_id)
    assert issued["customer_id"] == customer_id and issued["contract_id"] == contract_id
    assert issued["total"] == {"amount": "108.25", "currency": "USD"}
    assert issued["tax"] == {"amount": "8.25", "currency": "USD"}
    assert (issued["issue_date"], issued["due_date"]) == ("2026-01-02", "2026-02-01")
    assert issued["lines"][0]["service_period_start"] == "2026-01-01"
    assert issued["status"] == "paid"  # the held payment was released after the invoice
    payment = state(api, "payments", lookup(api, "payment", "txn_AzZTZgSTdKYbD1jB"))
    assert payment["received_at"].startswith("2026-01-09")
    assert payment["method"] == "card"
    assert api.get("/v1/inbound/held").json()["items"] == []
    # invoice_updated to paid changes nothing: the cash came with payment_succeeded.
    before = api.total_events()
    update = invoice(status="paid", tax=825, rv=(JAN_2 + 7 * DAY) * 1000)
    later = deliver(api, event("invoice_updated", "ev_inv_up", JAN_2 + 7 * DAY, invoice=update))
    assert status_of(later) == "ignored"
    assert api.total_events() == before


def test_refund_credit_note_and_failed_payment(api: Api) -> None:
    with_contract(api)
    assert (
        deliver(api, event("invoice_generated", "ev_i", JAN_2, invoice=invoice())).status_code
        == 200
    )
    assert (
        deliver(
            api, event("payment_succeeded", "ev_s", JAN_2, transaction=transaction())
        ).status_code
        == 200
    )
    refund = transaction(
        "txn_refund_1",
        amount=2500,
        kind="refund",
        linked=(),
        refunded_txn_id="txn_AzZTZgSTdKYbD1jB",
    )
    assert (
        deliver(
            api, event("payment_refunded", "ev_rf", JAN_2 + 9 * DAY, transaction=refund)
        ).status_code
        == 200
    )
    payment = state(api, "payments", lookup(api, "payment", "txn_AzZTZgSTdKYbD1jB"))
    assert payment["amount_refunded"] == {"amount": "25.00", "currency": "USD"}
    # A second invoice, credited by a credit note numbered by Chargebee.
    second = invoice("INV-1002", rv=(JAN_2 + DAY) * 1000)
    assert (
        deliver(api, event("invoice_generated", "ev_i2", JAN_2, invoice=second)).status_code == 200
    )
    note = {
        "id": "CN-7",
        "customer_id": CUS,
        "subscription_id": SUB,
        "reference_invoice_id": "INV-1002",
        "type": "adjustment",
        "reason_code": "product_unsatisfactory",
        "status": "adjusted",
        "date": JAN_2 + 3 * DAY,
        "total": 4000,
        "currency_code": "USD",
        "resource_version": (JAN_2 + 3 * DAY) * 1000,
        "object": "credit_note",
    }
    ok = deliver(api, event("credit_note_created", "ev_cn", JAN_2 + 3 * DAY, credit_note=note))
    assert ok.status_code == 200, ok.text
    credited = state(api, "invoices", lookup(api, "invoice", "INV-1002"))
    assert credited["amount_credited"] == {"amount": "40.00", "currency": "USD"}
    clash = note | {"total": 5000, "resource_version": note["resource_version"] + 1}
    refused = deliver(
        api, event("credit_note_created", "ev_cn2", JAN_2 + 3 * DAY, credit_note=clash)
    )
    assert_problem(refused, 422, "already-exists", field="credit_note_number")
    failed = transaction(
        "txn_failed_1",
        status="failure",
        error_code="card_declined",
        error_text="Insufficient funds",
    )
    answer = deliver(api, event("payment_failed", "ev_pf", JAN_2 + 10 * DAY, transaction=failed))
    assert answer.status_code == 202 and status_of(answer) == "ignored"
    assert "no record of failed payment attempts" in answer.json()["results"][0]["detail"]["reason"]


def test_zero_decimal_hundredths_and_multi_decimal_amounts(api: Api) -> None:
    customer_id = crm_account(api)
    assert (
        deliver(api, event("customer_created", "ev_c", JAN_1, customer=customer())).status_code
        == 200
    )
    for currency, opp, sub in (("JPY", "006JPY", "sub_jpy"), ("KWD", "006KWD", "sub_kwd")):
        crm_order(api, customer_id, currency, opp=opp)
        body = subscription(
            sub,
            currency=currency,
            unit_price=12000 if currency == "JPY" else 153,
            cf_sf_opportunity_id=opp,
        )
        assert (
            deliver(
                api, event("subscription_created", f"ev_{sub}", JAN_1, subscription=body)
            ).status_code
            == 200
        )
    jpy = invoice("INV-J", "sub_jpy", currency="JPY", amounts=(12000,))
    # Chargebee keeps two decimals for every non-zero-decimal currency: KWD 153 is 1.53.
    kwd = invoice("INV-K", "sub_kwd", currency="KWD", amounts=(153,))
    multi = invoice("INV-M", "sub_kwd", currency="KWD", amounts=(153,))
    multi["line_items"][0] |= {
        "quantity_in_decimal": "1.5",
        "unit_amount_in_decimal": "1.02",
        "amount_in_decimal": "1.530",
    }
    for index, body in enumerate((jpy, kwd, multi)):
        response = deliver(api, event("invoice_generated", f"ev_m{index}", JAN_2, invoice=body))
        assert response.status_code == 200, response.text
    contract = state(api, "contracts", lookup(api, "contract", "sub_jpy"))
    assert contract["items"][0]["unit_price"] == "12000"
    assert (
        state(api, "contracts", lookup(api, "contract", "sub_kwd"))["items"][0]["unit_price"]
        == "1.530"
    )
    assert state(api, "invoices", lookup(api, "invoice", "INV-J"))["total"] == {
        "amount": "12000",
        "currency": "JPY",
    }
    assert state(api, "invoices", lookup(api, "invoice", "INV-K"))["total"] == {
        "amount": "1.530",
        "currency": "KWD",
    }
    line = state(api, "invoices", lookup(api, "invoice", "INV-M"))["lines"][0]
    assert (line["quantity"], line["unit_price"], line["amount"]) == ("1.5", "1.02", "1.530")


def test_duplicate_event_id_has_one_effect(api: Api) -> None:
    with_contract(api)
    body = event("invoice_generated", "ev_dup", JAN_2, invoice=invoice())
    before = api.total_events()
    assert deliver(api, body).status_code == 200
    assert api.total_events() == before + 1
    again = deliver(api, body)
    assert again.status_code == 200 and status_of(again) == "duplicate"
    # The same invoice in a new event (Chargebee re-sends resources) issues nothing either.
    other = deliver(api, event("invoice_updated", "ev_dup_2", JAN_2, invoice=invoice()))
    assert status_of(other) == "ignored"
    assert api.total_events() == before + 1


def test_older_resource_version_never_regresses(api: Api) -> None:
    contract_id = with_contract(api)
    cancelled = subscription(status="cancelled", cancelled_at=NOV_1, rv=NOV_1 * 1000)
    older = subscription(status="active", quantity=9, rv=(NOV_1 - DAY) * 1000)
    newest = deliver(api, event("subscription_cancelled", "ev_new", NOV_1, subscription=cancelled))
    assert newest.status_code == 200, newest.text
    before = api.total_events()
    late = deliver(api, event("subscription_changed", "ev_old", NOV_1 - DAY, subscription=older))
    assert late.status_code == 202 and status_of(late) == "ignored"
    assert "superseded" in late.json()["results"][0]["detail"]["reason"]
    assert api.total_events() == before
    contract = state(api, "contracts", contract_id)
    assert contract["status"] == "cancelled" and contract["items"][0]["quantity"] == "2"
    # The log dates the delivery by the resource's own version time, not arrival.
    logged = api.get(f"/v1/inbound/{newest.json()['results'][0]['delivery_id']}").json()
    assert logged["occurred_at"].startswith("2026-11-01")  # resource_version time


def test_basic_auth_matrix_and_nothing_logged_when_refused(api: Api) -> None:
    crm_account(api)
    body = event("customer_created", "ev_auth", JAN_1, customer=customer())
    refused = {
        "wrong password": basic(password="nope"),
        "wrong user": basic(user="admin"),
        "missing header": "",
        "not basic": "Bearer cb-new-pass",
        "not base64": "Basic %%%",
        "no colon": "Basic " + b64encode(b"concordcb-new-pass").decode(),
    }
    for case, header in refused.items():
        response = deliver(api, body, header)
        assert_problem(response, 401, "webhook-unverified"), case
        assert response.headers["WWW-Authenticate"].startswith("Basic "), case
    assert api.get("/v1/inbound").json()["items"] == []
    rotated = deliver(api, body, basic(USER, OLD_PASSWORD))
    assert rotated.status_code == 200, rotated.text
    logged = api.get("/v1/inbound").json()["items"]
    assert len(logged) == 1
    detail = api.get(f"/v1/inbound/{logged[0]['id']}").json()
    assert "authorization" not in detail["headers"]
    assert detail["verification"] == "http-basic (secret #2)"
    assert status_of(deliver(api, body)) == "duplicate"  # the current password works too


def test_malformed_payloads_and_unknown_event_types(api: Api) -> None:
    with_contract(api)
    before = api.total_events()
    bad = invoice()
    del bad["line_items"][0]["amount"]
    response = deliver(api, event("invoice_generated", "ev_bad", JAN_2, invoice=bad))
    assert_problem(
        response, 422, "malformed-payload", field="body.content.invoice.line_items.0.amount"
    )
    wrong = subscription(rv=NOV_1 * 1000)
    wrong["subscription_items"][0]["billing_period_unit"] = "week"
    response = deliver(api, event("subscription_changed", "ev_wk", NOV_1, subscription=wrong))
    assert_problem(
        response,
        422,
        "malformed-payload",
        field="body.content.subscription.subscription_items.0.billing_period_unit",
    )
    missing = deliver(api, event("payment_succeeded", "ev_nt", JAN_2))
    assert_problem(missing, 422, "malformed-payload", field="body.content.transaction")
    no_id = b'{"occurred_at": 1, "event_type": "invoice_generated", "content": {}}'
    assert_problem(deliver(api, no_id), 422, "validation-failed", field="body.id")
    v1 = event("customer_created", "ev_v1", JAN_1, customer=customer()).replace(b'"v2"', b'"v1"')
    assert_problem(deliver(api, v1), 422, "validation-failed", field="body.api_version")
    assert_problem(deliver(api, b"{nope"), 422, "validation-failed", field="body")
    ignored = deliver(api, event("coupon_created", "ev_cp", JAN_2, coupon={"id": "SAVE10"}))
    assert ignored.status_code == 202 and status_of(ignored) == "ignored"
    assert api.total_events() == before
