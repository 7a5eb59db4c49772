"""Concord → Stripe: contracts become customers and subscriptions, their changes item
updates, pauses and cancellations.

What billing receives (and only that: billing owns invoices and payments, the CRM names):

=====================  =================================================================
``ContractCreated``    the customer (found by ``metadata.concord_customer_id`` or the
                       hub's billing id, else created) and one subscription with the
                       contract's recurring and usage items only, priced by the product
                       catalogue's ``billing_price_ids`` (the price in the contract's
                       currency and period); metadata ``concord_contract_id``,
                       ``concord_order_id``, ``concord_customer_id``, ``sf_opportunity_id``,
                       ``netsuite_sales_order_id`` — the inbound side links the
                       ``customer.subscription.created`` echo to the contract by it
``ContractAmended``    the changed items (quantity, price), prorated from the effective
                       date when it lies in the current period (Stripe's ``proration_date``)
``ContractCancelled``  ``cancel_at`` the effective date, or cancelled now when it has passed
``ContractSuspended``  ``pause_collection[behavior]=void`` (no invoices while suspended)
``ContractResumed``    ``pause_collection`` cleared
``ContractRenewed``    ``metadata.concord_term_end`` moved (a subscription renews by itself)
=====================  =================================================================

Idempotent at Stripe: every write carries ``Idempotency-Key = f"{key}:{step}"`` (the event
id and the step), so a redelivered event replays Stripe's first answers — except the
customer, keyed by the hub customer (``concord-customer:<id>``) so two contracts of one
customer delivered at once make one Stripe customer; reads first
(an existing customer, a subscription already made for the contract) keep it single
when keys have expired or billing made the subscription before Concord did. An event
whose provenance is billing is an echo of what Stripe said: not sent back.

SDK errors become the subscriber's two kinds: 429, 409 (a key in flight), 5xx, timeouts
and connection errors retry (``Retry-After`` honoured); validation, card and auth errors
dead-letter with Stripe's message.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import stripe

from adapters.connectors.budget import Budget
from adapters.connectors.http import parse_retry_after
from adapters.connectors.hub_reader import HubReader
from adapters.connectors.port import (
    Connector,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from adapters.process.ids import contract_id_for
from adapters.settings import Settings
from adapters.stripe.client import Params, StripeClient
from hub.domain.product import product_id

__all__ = ["StripeConnector", "customer_key", "delivery_error", "stripe_connector"]

BILLING = "billing"
CONTRACT_KEY = "concord_contract_id"
CUSTOMER_KEY = "concord_customer_id"
_PERIODS = {"month": ("month", 1), "quarter": ("month", 3), "year": ("year", 1)}
_RUNNING_ITEMS = frozenset({"recurring", "usage"})
_HANDLED = frozenset(
    {
        "ContractCreated",
        "ContractAmended",
        "ContractCancelled",
        "ContractSuspended",
        "ContractResumed",
        "ContractRenewed",
    }
)
#: Seconds to wait for the inbound side to link a new subscription before amending it.
LINK_RETRY_S = 30.0


def delivery_error(error: stripe.StripeError) -> DeliveryError:
    """An SDK error as retry-later or give-up, with what Stripe said."""
    status = error.http_status
    said = f"Stripe answered {status}: {error.user_message or error}"
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError) or (
        status is not None and (status >= 500 or status in (409, 429))
    ):
        retry_after = parse_retry_after((error.headers or {}).get("retry-after"))
        return TransientDeliveryError(said, retry_after=retry_after)
    return PermanentDeliveryError(said)


def _epoch(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp())


def _whole(quantity: Any, sku: str) -> int:
    value = Decimal(str(quantity))
    if value != value.to_integral_value():
        raise PermanentDeliveryError(f"Stripe quantities are whole numbers; {sku} has {value}")
    return int(value)


class StripeConnector(Connector):
    """Delivers contract events to Stripe through :class:`StripeClient`; reads customers,
    orders, products and contracts from the hub through ``reader``."""

    def __init__(self, client: StripeClient, reader: HubReader) -> None:
        self.client = client
        self.reader = reader

    def wants(self, envelope: dict[str, Any]) -> bool:
        """Contract events, and an order's cancellation (the deal fell through: billing
        ends its subscription, and its webhook records the contract's end), except what
        billing told Concord (never echoed back)."""
        if (envelope.get("provenance") or {}).get("source_system") == BILLING:
            return False
        if envelope.get("aggregate") == "order":
            return envelope.get("type") == "OrderCancelled"
        return envelope.get("aggregate") == "contract" and str(envelope.get("type")) in _HANDLED

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        if not self.wants(envelope):
            return
        handlers = {
            "ContractCreated": self._created,
            "ContractAmended": self._amended,
            "ContractCancelled": self._cancelled,
            "ContractSuspended": self._suspended,
            "ContractResumed": self._resumed,
            "ContractRenewed": self._renewed,
            "OrderCancelled": self._order_cancelled,
        }
        try:
            await handlers[str(envelope["type"])](envelope, idempotency_key)
        except stripe.StripeError as failed:
            raise delivery_error(failed) from failed

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _state(self, entity: str, aggregate_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.reader.state, entity, aggregate_id)

    async def _require(self, entity: str, aggregate_id: str) -> dict[str, Any]:
        found = await self._state(entity, aggregate_id)
        if found is None:
            raise PermanentDeliveryError(f"the hub holds no {entity} {aggregate_id}")
        return found

    # --- ContractCreated ---------------------------------------------------------------------
    async def _created(self, envelope: dict[str, Any], key: str) -> None:
        contract_id = str(envelope["aggregate_id"])
        contract = await self._state("contract", contract_id) or {}
        if contract.get("billing_subscription_id"):
            return  # linked already (billing made it, or an earlier delivery did)
        data = envelope["data"]
        customer = await self._require("customer", str(data["customer_id"]))
        order = await self._state("order", str(data["order_id"])) or {}
        order_ids = await asyncio.to_thread(self.reader.external_ids, str(data["order_id"]))
        items = await self._items(data["items"], str(data["currency"]))
        cus = await self._customer(customer, key)
        for existing in await self.client.subscriptions_of(cus):
            if existing.get("metadata", {}).get(CONTRACT_KEY) == contract_id:
                return  # made already; its webhook links it
        metadata = {
            CONTRACT_KEY: contract_id,
            "concord_order_id": str(data["order_id"]),
            CUSTOMER_KEY: str(data["customer_id"]),
            # The ids the inbound side finds the order by: the CRM's, the ERP's.
            "sf_opportunity_id": order_ids.get("crm") or order.get("opportunity_id"),
            "netsuite_sales_order_id": order_ids.get("erp") or order.get("erp_order_number"),
        }
        params: Params = {
            "customer": cus,
            "items": items,
            "collection_method": "charge_automatically",
            "metadata": {k: v for k, v in metadata.items() if v},
        }
        await self.client.create_subscription(params, f"{key}:subscription")

    async def _customer(self, customer: dict[str, Any], key: str) -> str:
        """The Stripe customer of a hub customer: the one the hub links, the one whose
        metadata names it, or a new one (with the CRM/ERP ids the inbound side links by)."""
        customer_id = str(customer["id"])
        linked = await asyncio.to_thread(self.reader.external_ids, customer_id)
        external = {**linked, **(customer.get("external_ids") or {})}
        if external.get(BILLING):
            return str(external[BILLING])
        found = await self.client.find_customers(CUSTOMER_KEY, customer_id)
        if found:
            return str(found[0]["id"])
        metadata = {
            CUSTOMER_KEY: customer_id,
            "sf_account_id": external.get("crm"),
            "netsuite_customer_id": external.get("erp"),
        }
        params: Params = {
            "name": customer.get("legal_name") or customer.get("display_name"),
            "metadata": {k: v for k, v in metadata.items() if v},
        }
        # Keyed by the hub customer, not the event: two contracts of one customer delivered
        # at once (or one answered too late while the other searched) make one customer.
        created = await self.client.create_customer(params, customer_key(customer_id))
        return str(created["id"])

    async def _items(self, items: list[dict[str, Any]], currency: str) -> list[Params]:
        """The subscription's items: recurring and usage lines only, each at its price."""
        wanted = [i for i in items if i.get("charge_type") in _RUNNING_ITEMS]
        if not wanted:
            raise PermanentDeliveryError("the contract has no recurring or usage item to bill")
        result = []
        for item in wanted:
            price = await self._price(item, currency)
            line: Params = {"price": price}
            if item["charge_type"] == "recurring":
                line["quantity"] = _whole(item["quantity"], item["sku"])
            result.append(line)
        return result

    async def _price(self, item: dict[str, Any], currency: str) -> str:
        """The billing price of a contract item: its rate plan when that is one of the
        SKU's ``billing_price_ids`` in the contract's currency, else the SKU's price in the
        contract's currency and billing period (metered for usage). The currency is checked
        because a SKU sold in several currencies has a price per currency, and the rate plan
        the hub chose may be another currency's (Stripe refuses a subscription mixing them)."""
        sku = str(item["sku"])
        product = await self._state("product", str(product_id(sku)))
        ids = list(((product or {}).get("ids") or {}).get("billing_price_ids") or [])
        if not ids:
            raise PermanentDeliveryError(
                f"SKU {sku} has no billing price: map it (PUT /v1/mappings/{sku} with "
                "billing_price_ids)"
            )
        if item.get("rate_plan") in ids:
            planned = await self.client.price(str(item["rate_plan"]))
            if planned.get("currency") == currency.lower():
                return str(item["rate_plan"])
        interval, count = _PERIODS[str(item.get("billing_period") or "month")]
        usage = "metered" if item.get("charge_type") == "usage" else "licensed"
        for candidate in ids:
            price = await self.client.price(candidate)
            recurring = price.get("recurring") or {}
            if (
                price.get("currency") == currency.lower()
                and price.get("active", True)
                and recurring.get("interval") == interval
                and recurring.get("interval_count", 1) == count
                and recurring.get("usage_type", "licensed") == usage
            ):
                return str(candidate)
        raise PermanentDeliveryError(
            f"SKU {sku} has no active {usage} billing price in {currency} every "
            f"{count} {interval}(s) among {ids}"
        )

    # --- changes of a running subscription ---------------------------------------------------
    async def _subscription(self, contract_id: str) -> Params:
        """The contract's subscription: by the id the hub linked, else by its metadata
        (not yet linked: the ``customer.subscription.created`` webhook is on its way)."""
        contract = await self._require("contract", contract_id)
        linked = contract.get("billing_subscription_id")
        if linked:
            return await self.client.subscription(str(linked))
        found = await self.client.find_subscriptions(CONTRACT_KEY, contract_id)
        if not found:
            raise TransientDeliveryError(
                f"contract {contract_id} has no billing subscription yet", LINK_RETRY_S
            )
        return found[0]

    async def _amended(self, envelope: dict[str, Any], key: str) -> None:
        contract_id = str(envelope["aggregate_id"])
        contract = await self._require("contract", contract_id)
        sub = await self._subscription(contract_id)
        current = {i["price"]["id"]: i for i in sub["items"]["data"]}
        by_sku = {i["sku"]: i for i in contract.get("items", [])}
        changes: list[Params] = []
        for change in envelope["data"]["changes"]:
            sku = str(change["sku"])
            item = {**by_sku.get(sku, {"sku": sku, "charge_type": "recurring"}), **change}
            if item.get("charge_type") not in _RUNNING_ITEMS:
                continue
            price = await self._price(item, str(contract["currency"]))
            product = await self._state("product", str(product_id(sku))) or {}
            mine = set(product.get("ids", {}).get("billing_price_ids", []))
            held = next((i for p, i in current.items() if p in mine), None)
            update: Params = {"id": held["id"]} if held else {"price": price}
            if held and held["price"]["id"] != price:
                update["price"] = price
            if item["charge_type"] == "recurring" and "quantity" in change:
                update["quantity"] = _whole(change["quantity"], sku)
            elif held is None and item["charge_type"] == "recurring":
                update["quantity"] = _whole(item.get("quantity", 1), sku)
            if len(update) > 1 or held is None:
                changes.append(update)
        if not changes:
            return  # a price change alone: billing owns its prices (new price ids map them)
        params: Params = {"items": changes, "proration_behavior": "create_prorations"}
        effective = _epoch(str(envelope["data"]["effective_date"]))
        starts = [i["current_period_start"] for i in sub["items"]["data"]]
        ends = [i["current_period_end"] for i in sub["items"]["data"]]
        if starts and min(starts) <= effective < max(ends):
            params["proration_date"] = min(effective, int(datetime.now(UTC).timestamp()))
        await self.client.update_subscription(str(sub["id"]), params, f"{key}:items")

    async def _cancelled(self, envelope: dict[str, Any], key: str) -> None:
        sub = await self._subscription(str(envelope["aggregate_id"]))
        if sub["status"] in ("canceled", "incomplete_expired"):
            return
        when = _epoch(str(envelope["data"]["effective_date"]))
        if when <= int(datetime.now(UTC).timestamp()):
            await self.client.cancel_subscription(str(sub["id"]))
        elif sub.get("cancel_at") != when:
            params = {"cancel_at": when, "proration_behavior": "none"}
            await self.client.update_subscription(str(sub["id"]), params, f"{key}:cancel")

    async def _order_cancelled(self, envelope: dict[str, Any], key: str) -> None:
        """End the subscription of the order's contract on the cancellation's business date
        (at once when that is past); an order that never got a contract has nothing to end."""
        contract_id = contract_id_for(str(envelope["aggregate_id"]))
        if await self._state("contract", contract_id) is None:
            return
        day = str(envelope.get("occurred_at") or envelope["recorded_at"])[:10]
        await self._cancelled(
            {**envelope, "aggregate_id": contract_id, "data": {"effective_date": day}}, key
        )

    async def _suspended(self, envelope: dict[str, Any], key: str) -> None:
        sub = await self._subscription(str(envelope["aggregate_id"]))
        if sub.get("pause_collection") is None:
            params = {"pause_collection": {"behavior": "void"}}
            await self.client.update_subscription(str(sub["id"]), params, f"{key}:pause")

    async def _resumed(self, envelope: dict[str, Any], key: str) -> None:
        sub = await self._subscription(str(envelope["aggregate_id"]))
        if sub.get("pause_collection") is not None:
            params = {"pause_collection": ""}
            await self.client.update_subscription(str(sub["id"]), params, f"{key}:resume")

    async def _renewed(self, envelope: dict[str, Any], key: str) -> None:
        sub = await self._subscription(str(envelope["aggregate_id"]))
        end = str(envelope["data"]["new_term_end"])
        if sub.get("metadata", {}).get("concord_term_end") != end:
            params = {"metadata": {"concord_term_end": end}}
            await self.client.update_subscription(str(sub["id"]), params, f"{key}:renew")


def customer_key(customer_id: str) -> str:
    """The ``Idempotency-Key`` creating the Stripe customer of a hub customer (one per
    customer, whichever event asks; after Stripe forgets keys, the metadata search finds it)."""
    return f"concord-customer:{customer_id}"


#: Stripe's limit is a rate, not a concurrency: slots only bound the calls in flight.
STRIPE_CONCURRENCY = 25


def stripe_connector(
    settings: Settings, hub: HubReader, budget: Budget | None = None
) -> StripeConnector | None:
    """The connector ``CONCORD_STRIPE_URL`` turns on (None when unset; the live service is
    ``https://api.stripe.com``), with the secret key ``CONCORD_STRIPE_API_KEY`` (required
    then). ``budget``: the shared :class:`~adapters.connectors.budget.PgBudget` of target
    ``billing`` at ``CONCORD_STRIPE_RATE`` requests/s (the composition root makes it;
    in-process if None)."""
    if settings.stripe_url is None:
        return None
    if settings.stripe_api_key is None:
        raise ValueError("CONCORD_STRIPE_URL is set: CONCORD_STRIPE_API_KEY must be set too")
    shared = budget or Budget(BILLING, STRIPE_CONCURRENCY, settings.stripe_rate)
    client = StripeClient(settings.stripe_api_key, base_url=settings.stripe_url, budget=shared)
    return StripeConnector(client, hub)
