"""The billing loop end to end: a Concord contract → the Stripe connector → the billing
sandbox → its signed webhooks → Concord's inbound Stripe endpoint: the contract is linked
and activated (not doubled), the first invoice issued and paid."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from adapters.connectors.hub_reader import ServiceHubReader
from adapters.sandbox.base import serve_in_thread
from adapters.sandbox.billing import BillingSandbox
from adapters.stripe.client import StripeClient
from adapters.stripe.outbound import StripeConnector
from tests.e2e.conftest import Api
from tests.e2e.inbound_support import (
    STRIPE_SECRET,
    mapped,  # noqa: F401  (the catalogue fixture)
    post_webhook,
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    state,
)
from tests.e2e.test_webhooks_stripe import crm_account, lookup
from tests.e2e.test_webhooks_stripe_billing import concord_contract, crm_order
from tests.integration.billing_support import API_KEY, Receiver, wait

pytestmark = pytest.mark.usefixtures("mapped")


def _forward(api: Api, receiver: Receiver) -> list[int]:
    """What the sandbox sent, as it sent it, into ``POST /v1/webhooks/stripe``."""
    return [
        post_webhook(
            api, "stripe", h.body, "Stripe-Signature", h.headers["stripe-signature"]
        ).status_code
        for h in receiver.hooks
    ]


def test_a_contract_reaches_billing_and_comes_back_linked_invoiced_and_paid(api: Api) -> None:
    receiver = Receiver()
    with serve_in_thread(receiver) as hooks:
        sandbox = BillingSandbox(STRIPE_SECRET, API_KEY, webhook_url=f"{hooks.url}/hook")
        with serve_in_thread(sandbox) as running:
            price = _catalogue(sandbox)
            customer_id = crm_account(api)
            contract_id = concord_contract(api, customer_id, crm_order(api, customer_id))
            [created] = api.runtime.hub.history("contract", UUID(contract_id))
            # Made through the API as billing here; the process manager's is the hub's own.
            created["provenance"]["source_system"] = "hub"
            reader = ServiceHubReader(api.runtime.hub, api.runtime.xref)

            async def send() -> None:
                client = StripeClient(API_KEY, base_url=running.url)
                connector = StripeConnector(client, reader)
                try:
                    await connector.deliver(created, created["event_id"])
                finally:
                    await connector.aclose()

            asyncio.run(send())
            wait(lambda: sandbox.webhooks.pending == 0)
    [sub] = sandbox.all("subscription")
    assert [i["price"]["id"] for i in sub["items"]["data"]] == [price]
    assert sub["metadata"]["concord_contract_id"] == contract_id
    assert sub["metadata"]["sf_opportunity_id"] == "006OPP1"
    [customer] = sandbox.all("customer")
    assert customer["metadata"]["sf_account_id"] == "001Dn00000AbCdEIAZ"
    statuses = _forward(api, receiver)
    assert set(statuses) <= {200, 202} and statuses.count(200) >= 4, statuses
    contract = state(api, "contracts", contract_id)
    assert contract["status"] == "active" and contract["billing_subscription_id"] == sub["id"]
    assert lookup(api, "customer", customer["id"]) == customer_id
    [invoice] = sandbox.all("invoice")
    invoice_id = lookup(api, "invoice", invoice["id"])
    assert invoice_id is not None
    issued = state(api, "invoices", invoice_id)
    assert issued["contract_id"] == contract_id
    assert issued["total"] == {"currency": "EUR", "amount": "50.00"}
    pi = invoice["payments"]["data"][0]["payment"]["payment_intent"]
    assert lookup(api, "payment", pi) is not None
    again = _forward(api, receiver)  # every webhook twice: nothing new
    assert set(again) <= {200, 202}
    listed = api.get("/v1/contracts", params={"customer_id": customer_id}).json()["items"]
    assert [c["id"] for c in listed] == [contract_id]


def _catalogue(sandbox: BillingSandbox) -> str:
    """A monthly seat price naming SKU PLAT-SEAT (its ``price.created`` maps it)."""
    product = sandbox.records.setdefault("product", {})
    product["prod_seat"] = {
        "id": "prod_seat",
        "object": "product",
        "name": "Seat",
        "active": True,
        "metadata": {},
    }
    price: dict[str, Any] = {
        "id": "price_plat_m",
        "object": "price",
        "product": "prod_seat",
        "currency": "eur",
        "unit_amount": 2500,
        "unit_amount_decimal": "2500",
        "active": True,
        "type": "recurring",
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
        "metadata": {"sku": "PLAT-SEAT"},
        "lookup_key": None,
    }
    sandbox.records.setdefault("price", {})["price_plat_m"] = price
    return "price_plat_m"
