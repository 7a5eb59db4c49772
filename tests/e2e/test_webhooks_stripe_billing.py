"""Stripe subscriptions, refunds and credit notes: contracts, refunds, credits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import Api, assert_problem, order_body
from tests.e2e.inbound_support import (
    mapped,  # noqa: F401  (the catalogue fixture)
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    stripe_event,
    stripe_invoice,
    stripe_subscription,
)
from tests.e2e.test_webhooks_stripe import ACCOUNT, crm_account, deliver, lookup

pytestmark = pytest.mark.usefixtures("mapped")


def linked(api: Api) -> str:
    from tests.e2e.inbound_support import stripe_customer

    customer_id = crm_account(api)
    body = stripe_event("customer.created", stripe_customer("cus_A", ACCOUNT), "evt_cus", 1)
    assert deliver(api, body).status_code == 200
    return customer_id


def crm_order(api: Api, customer_id: str, opportunity: str = "006OPP1") -> str:
    response = api.post(
        "/v1/orders",
        order_body(customer_id, "EUR"),
        role="crm",
        headers={"Concord-Source-Record-Id": opportunity},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def contract_state(api: Api, sub: str = "sub_A", **params: Any) -> dict[str, Any]:
    contract_id = lookup(api, "contract", sub)
    assert contract_id is not None
    response = api.get(f"/v1/contracts/{contract_id}", params=params)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()["state"]
    return state


def test_subscription_created_makes_an_active_contract_for_the_crm_order(api: Api) -> None:
    customer_id = linked(api)
    order_id = crm_order(api, customer_id)
    body = stripe_event(
        "customer.subscription.created", stripe_subscription("sub_A", "cus_A"), "evt_s1", 1767225600
    )
    response = deliver(api, body)
    assert response.status_code == 200, response.text
    state = contract_state(api)
    assert state["status"] == "active"
    assert state["order_id"] == order_id and state["customer_id"] == customer_id
    assert state["term_start"] == "2026-01-01" and state["term_end"] == "2026-02-01"
    [item] = state["items"]
    assert item["sku"] == "PLAT-SEAT" and item["rate_plan"] == "price_plat_m"
    assert item["unit_price"] == "25.00" and item["quantity"] == "2"
    assert item["billing_period"] == "month" and item["charge_type"] == "recurring"


def test_subscription_before_its_order_is_held_and_released_by_the_api(api: Api) -> None:
    customer_id = linked(api)
    body = stripe_event(
        "customer.subscription.created", stripe_subscription("sub_A", "cus_A"), "evt_s2", 1767225600
    )
    response = deliver(api, body)
    assert response.status_code == 202
    assert response.json()["results"][0]["waiting_for"] == "crm order 006OPP1"
    crm_order(api, customer_id)  # through the API, not a webhook
    deadline = time.monotonic() + 10
    while lookup(api, "contract", "sub_A") is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert contract_state(api)["status"] == "active"
    assert api.get("/v1/inbound/held").json()["items"] == []


def test_updates_amend_renew_and_schedule_the_cancellation(api: Api) -> None:
    customer_id = linked(api)
    crm_order(api, customer_id)
    created = stripe_subscription("sub_A", "cus_A")
    assert (
        deliver(api, stripe_event("customer.subscription.created", created, "e1", 1)).status_code
        == 200
    )
    more = stripe_subscription("sub_A", "cus_A", quantity=5)  # upgrade on 2026-01-15
    assert (
        deliver(
            api, stripe_event("customer.subscription.updated", more, "e2", 1768435200)
        ).status_code
        == 200
    )
    renewed = stripe_subscription("sub_A", "cus_A", quantity=5, period_end=1772323200)
    assert (
        deliver(
            api, stripe_event("customer.subscription.updated", renewed, "e3", 1769904000)
        ).status_code
        == 200
    )
    state = contract_state(api)
    assert state["items"][0]["quantity"] == "5"
    assert state["term_end"] == "2026-03-01"
    ending = stripe_subscription(
        "sub_A", "cus_A", quantity=5, period_end=1772323200, cancel_at=1772323200
    )
    response = deliver(api, stripe_event("customer.subscription.updated", ending, "e4", 1770000000))
    assert response.status_code == 200, response.text
    # Scheduled: in force on 2026-02-15 it still runs; on the day it ends it is cancelled.
    assert contract_state(api, business_date="2026-02-15")["status"] == "active"
    assert contract_state(api, business_date="2026-03-01")["status"] == "cancelled"
    again = deliver(api, stripe_event("customer.subscription.updated", ending, "e5", 1770000001))
    assert again.status_code == 202  # nothing new: ignored, not cancelled twice


def test_paused_and_resumed(api: Api) -> None:
    customer_id = linked(api)
    crm_order(api, customer_id)
    sub = stripe_subscription("sub_A", "cus_A")
    assert (
        deliver(api, stripe_event("customer.subscription.created", sub, "p0", 1)).status_code == 200
    )
    paused = stripe_subscription("sub_A", "cus_A", status="paused")
    assert (
        deliver(
            api, stripe_event("customer.subscription.paused", paused, "p1", 1767830400)
        ).status_code
        == 200
    )
    assert contract_state(api)["status"] == "suspended"
    assert (
        deliver(
            api, stripe_event("customer.subscription.resumed", sub, "p2", 1768435200)
        ).status_code
        == 200
    )
    assert contract_state(api)["status"] == "active"


def test_a_subscription_naming_no_order_is_refused_naming_the_field(api: Api) -> None:
    linked(api)
    bare = stripe_subscription("sub_B", "cus_A", metadata={})
    response = deliver(api, stripe_event("customer.subscription.created", bare, "x1", 1))
    assert_problem(response, 422, "malformed-payload", field="body.data.object.metadata")
    weekly = stripe_subscription("sub_C", "cus_A", interval="week")
    crm_order(api, api.get("/v1/customers").json()["items"][0]["id"])
    response = deliver(api, stripe_event("customer.subscription.created", weekly, "x2", 1))
    assert_problem(
        response,
        422,
        "malformed-payload",
        field="body.data.object.items.data.0.price.recurring.interval",
    )


def paid_invoice(api: Api) -> str:
    customer_id = linked(api)
    crm_order(api, customer_id)
    sub = stripe_subscription("sub_A", "cus_A")
    assert (
        deliver(api, stripe_event("customer.subscription.created", sub, "q0", 1)).status_code == 200
    )
    invoice = stripe_invoice("in_Q", "cus_A", subscription="sub_A", amounts=(5000,))
    assert (
        deliver(api, stripe_event("invoice.finalized", invoice, "q1", 1767312000)).status_code
        == 200
    )
    paid = stripe_invoice("in_Q", "cus_A", subscription="sub_A", amounts=(5000,), status="paid")
    paid["payments"] = {
        "object": "list",
        "data": [
            {
                "object": "invoice_payment",
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": "pi_Q"},
            }
        ],
    }
    assert deliver(api, stripe_event("invoice.paid", paid, "q2", 1767916800)).status_code == 200
    payment_id = lookup(api, "payment", "pi_Q")
    assert payment_id is not None
    return payment_id


def refund_body(status: str, event_type: str, event_id: str, previous: str | None = None) -> bytes:
    import orjson

    refund = {
        "id": "re_Q",
        "object": "refund",
        "amount": 2000,
        "currency": "eur",
        "status": status,
        "payment_intent": "pi_Q",
        "charge": "ch_Q",
        "reason": None,
    }
    document = orjson.loads(stripe_event(event_type, refund, event_id, 1768000000))
    if previous is not None:
        document["data"]["previous_attributes"] = {"status": previous}
    return orjson.dumps(document)


def test_a_refund_is_applied_once_when_it_succeeds(api: Api) -> None:
    payment_id = paid_invoice(api)
    assert deliver(api, refund_body("pending", "refund.created", "r1")).status_code == 202
    assert (
        deliver(api, refund_body("succeeded", "refund.updated", "r2", "pending")).status_code == 200
    )
    # Stripe reports the same refund again: no second refund.
    assert deliver(api, refund_body("succeeded", "refund.updated", "r3")).status_code == 202
    payment = api.get(f"/v1/payments/{payment_id}").json()["state"]
    assert payment["amount_refunded"] == {"amount": "20.00", "currency": "EUR"}


def test_a_credit_note_credits_its_invoice_once(api: Api) -> None:
    customer_id = linked(api)
    crm_order(api, customer_id)
    sub = stripe_subscription("sub_A", "cus_A")
    assert (
        deliver(api, stripe_event("customer.subscription.created", sub, "k0", 1)).status_code == 200
    )
    invoice = stripe_invoice("in_K", "cus_A", subscription="sub_A", amounts=(5000,))
    assert deliver(api, stripe_event("invoice.finalized", invoice, "k1", 1)).status_code == 200
    note = {
        "id": "cn_Q",
        "object": "credit_note",
        "number": "CN-1",
        "invoice": "in_K",
        "total": 1000,
        "currency": "eur",
        "reason": "product_unsatisfactory",
        "status": "issued",
        "type": "pre_payment",
    }
    assert (
        deliver(api, stripe_event("credit_note.created", note, "c1", 1768000000)).status_code == 200
    )
    invoice_id = lookup(api, "invoice", "in_K")
    state = api.get(f"/v1/invoices/{invoice_id}").json()["state"]
    assert state["amount_credited"] == {"amount": "10.00", "currency": "EUR"}
    before = api.total_events()
    # The same note reported again (another event id): recorded once.
    assert (
        deliver(api, stripe_event("credit_note.created", note, "c2", 1768000001)).status_code == 200
    )
    assert api.total_events() == before
    # Another amount under the same number on one invoice cannot be true.
    other = note | {"total": 2000}
    refused = deliver(api, stripe_event("credit_note.created", other, "c3", 1768000002))
    assert_problem(refused, 409 if refused.status_code == 409 else 422, refused.json()["code"])
    assert refused.json()["code"] == "already-exists"


def test_a_price_naming_its_sku_joins_that_product_once(api: Api) -> None:
    price = {
        "id": "price_new_eur",
        "object": "price",
        "product": "prod_plat",
        "unit_amount": 2300,
        "currency": "eur",
        "type": "recurring",
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
        "lookup_key": None,
        "metadata": {"sku": "PLAT-SEAT"},
    }
    assert deliver(api, stripe_event("price.created", price, "pr1", 1)).status_code == 200
    found = api.get("/v1/lookup/billing/product/price_new_eur")
    assert found.status_code == 200 and found.json()["aggregate"]["state"]["sku"] == "PLAT-SEAT"
    again = deliver(api, stripe_event("price.updated", price, "pr2", 2))
    assert again.status_code == 202  # mapped already: nothing new
    unknown = price | {"id": "price_x", "metadata": {"sku": "NOT-IN-CATALOGUE"}}
    ignored = deliver(api, stripe_event("price.created", unknown, "pr3", 3))
    assert ignored.status_code == 202
    assert "catalogue does not hold" in ignored.json()["results"][0]["detail"]["reason"]


def test_a_failed_payment_attempt_is_recorded_on_the_invoice_once(api: Api) -> None:
    customer_id = linked(api)
    crm_order(api, customer_id)
    sub = stripe_subscription("sub_A", "cus_A")
    assert (
        deliver(api, stripe_event("customer.subscription.created", sub, "f0", 1)).status_code == 200
    )
    invoice = stripe_invoice("in_F", "cus_A", subscription="sub_A", amounts=(5000,))
    assert deliver(api, stripe_event("invoice.finalized", invoice, "f1", 1)).status_code == 200
    failed = invoice | {"attempt_count": 1, "amount_due": 5000}
    assert (
        deliver(api, stripe_event("invoice.payment_failed", failed, "f2", 1768000000)).status_code
        == 200
    )
    state = api.get(f"/v1/invoices/{lookup(api, 'invoice', 'in_F')}").json()["state"]
    [attempt] = state["payment_failures"]
    assert attempt["attempt"] == 1 and attempt["amount"] == {"amount": "50.00", "currency": "EUR"}
    assert state["balance"] == {"amount": "50.00", "currency": "EUR"}  # no cash, no change
    before = api.total_events()
    assert (
        deliver(api, stripe_event("invoice.payment_failed", failed, "f3", 1768000000)).status_code
        == 200
    )
    assert api.total_events() == before


def concord_contract(api: Api, customer_id: str, order_id: str) -> str:
    """A pending contract as Concord's process manager makes it (before billing runs it)."""
    body = {
        "order_id": order_id,
        "customer_id": customer_id,
        "currency": "EUR",
        "term_start": "2026-01-01",
        "term_end": "2027-01-01",
        "items": [
            {
                "sku": "PLAT-SEAT",
                "rate_plan": "price_plat_m",
                "quantity": "2",
                "unit_price": "25.00",
                "billing_period": "month",
                "charge_type": "recurring",
            }
        ],
    }
    response = api.post("/v1/contracts", body, role="billing")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_subscription_naming_its_contract_links_and_activates_it(api: Api) -> None:
    customer_id = linked(api)
    contract_id = concord_contract(api, customer_id, crm_order(api, customer_id))
    metadata = {"concord_contract_id": contract_id, "sf_opportunity_id": "006OPP1"}
    incomplete = stripe_subscription("sub_L", "cus_A", status="incomplete", metadata=metadata)
    first = deliver(api, stripe_event("customer.subscription.created", incomplete, "l1", 1))
    assert first.status_code == 202, first.text  # not running yet: nothing to do
    running = stripe_subscription("sub_L", "cus_A", metadata=metadata)
    again = deliver(api, stripe_event("customer.subscription.updated", running, "l2", 2))
    assert again.status_code == 200, again.text
    assert lookup(api, "contract", "sub_L") == contract_id
    state = contract_state(api, "sub_L")
    assert state["status"] == "active" and state["billing_subscription_id"] == "sub_L"
    assert state["term_end"] == "2027-01-01"  # the contract's own term, not the period's
    contracts = api.get("/v1/contracts", params={"customer_id": customer_id}).json()["items"]
    assert [c["id"] for c in contracts] == [contract_id]  # no second contract
    paused = stripe_subscription("sub_L", "cus_A", metadata=metadata)
    paused["pause_collection"] = {"behavior": "void", "resumes_at": None}
    suspend = stripe_event("customer.subscription.updated", paused, "l3", 1767830400)
    assert deliver(api, suspend).status_code == 200
    assert contract_state(api, "sub_L")["status"] == "suspended"
    resume = stripe_event("customer.subscription.updated", running, "l4", 1768435200)
    assert deliver(api, resume).status_code == 200
    assert contract_state(api, "sub_L")["status"] == "active"


def test_a_subscription_created_active_links_at_once_and_a_bad_name_is_refused(api: Api) -> None:
    customer_id = linked(api)
    contract_id = concord_contract(api, customer_id, crm_order(api, customer_id))
    sub = stripe_subscription("sub_M", "cus_A", metadata={"concord_contract_id": contract_id})
    assert (
        deliver(api, stripe_event("customer.subscription.created", sub, "m1", 1)).status_code == 200
    )
    assert contract_state(api, "sub_M")["status"] == "active"
    other = stripe_subscription("sub_N", "cus_A", metadata={"concord_contract_id": contract_id})
    ignored = deliver(api, stripe_event("customer.subscription.created", other, "m2", 2))
    assert ignored.status_code == 202  # the contract is billed by sub_M already
    for bad in ("not-a-uuid", "0b0d7a7e-0000-4000-8000-000000000000"):
        body = stripe_subscription("sub_X", "cus_A", metadata={"concord_contract_id": bad})
        response = deliver(api, stripe_event("customer.subscription.created", body, f"x-{bad}", 3))
        assert_problem(
            response,
            422,
            "malformed-payload",
            field="body.data.object.metadata.concord_contract_id",
        )
