"""The Stripe connector against the served billing sandbox: one customer and one
subscription per contract through faults and redeliveries, only recurring and usage items,
the changes of a running contract, and errors sorted into retry or dead letter."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import stripe

from adapters.connectors.budget import Budget
from adapters.connectors.hub_reader import MemoryHubReader
from adapters.connectors.port import PermanentDeliveryError, TransientDeliveryError
from adapters.process.ids import contract_id_for
from adapters.settings import Settings
from adapters.stripe.client import StripeClient
from adapters.stripe.outbound import (
    StripeConnector,
    customer_key,
    delivery_error,
    stripe_connector,
)
from hub.domain.product import product_id
from tests.integration.billing_support import API_KEY, Billing, billing

CUSTOMER = str(uuid.uuid4())
ORDER = str(uuid.uuid4())


def _items() -> list[dict[str, Any]]:
    return [
        {
            "sku": "PLAT-SEAT",
            "rate_plan": "seat-monthly",
            "quantity": "3",
            "unit_price": "25.00",
            "billing_period": "month",
            "charge_type": "recurring",
        },
        {
            "sku": "PLAT-API",
            "rate_plan": "api-usage",
            "quantity": "0",
            "unit_price": "0.50",
            "billing_period": "month",
            "charge_type": "usage",
        },
        {
            "sku": "PLAT-SETUP",
            "rate_plan": "setup",
            "quantity": "1",
            "unit_price": "1000.00",
            "billing_period": "month",
            "charge_type": "one_time",
        },
    ]


def _reader(world: Billing, contract: str) -> MemoryHubReader:
    prices = world.prices
    return MemoryHubReader(
        {
            ("customer", CUSTOMER): {
                "id": CUSTOMER,
                "legal_name": "Acme GmbH",
                "display_name": "Acme",
                "external_ids": {"crm": "001ACME", "erp": "C-100"},
            },
            ("order", ORDER): {"id": ORDER, "opportunity_id": "006OPP", "erp_order_number": "SO-7"},
            ("contract", contract): {
                "id": contract,
                "status": "pending",
                "currency": "EUR",
                "items": _items()[:2],
                "billing_subscription_id": None,
            },
            ("product", str(product_id("PLAT-SEAT"))): {
                "ids": {"billing_price_ids": [prices["seat"]]}
            },
            ("product", str(product_id("PLAT-API"))): {
                "ids": {"billing_price_ids": [prices["usage"]]}
            },
            ("product", str(product_id("PLAT-SETUP"))): {
                "ids": {"billing_price_ids": [prices["setup"]]}
            },
        }
    )


def _envelope(
    contract: str, event_type: str, data: dict[str, Any], source: str = "hub"
) -> dict[str, Any]:
    return {
        "type": event_type,
        "aggregate": "contract",
        "aggregate_id": contract,
        "version": 1,
        "event_id": str(uuid.uuid4()),
        "provenance": {"source_system": source},
        "data": data,
    }


def _created(contract: str, items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    data = {
        "order_id": ORDER,
        "customer_id": CUSTOMER,
        "currency": "EUR",
        "term_start": "2026-01-01",
        "term_end": "2027-01-01",
        "items": items or _items(),
    }
    return _envelope(contract, "ContractCreated", data)


Scenario = Callable[[Billing, StripeConnector, MemoryHubReader, str], Awaitable[None]]


def _run(scenario: Scenario, timeout: float = 10.0) -> Billing:
    with billing() as world:
        contract = str(uuid.uuid4())
        reader = _reader(world, contract)

        async def main() -> None:
            client = StripeClient(API_KEY, base_url=world.running.url, timeout=timeout)
            connector = StripeConnector(client, reader)
            try:
                await scenario(world, connector, reader, contract)
            finally:
                await connector.aclose()

        asyncio.run(main())
        world.settled()
        return world


def test_a_contract_makes_one_customer_and_one_subscription_of_its_running_items() -> None:
    async def scenario(world: Billing, connector: StripeConnector, _: Any, contract: str) -> None:
        for _attempt in range(3):  # redelivered: the same key each time
            await connector.deliver(_created(contract), "evt-1")
        assert world.sandbox.count("customer") == 1 and world.sandbox.count("subscription") == 1
        [customer] = world.sandbox.all("customer")
        assert customer["metadata"] == {
            "concord_customer_id": CUSTOMER,
            "sf_account_id": "001ACME",
            "netsuite_customer_id": "C-100",
        }
        [sub] = world.sandbox.all("subscription")
        assert sub["metadata"] == {
            "concord_contract_id": contract,
            "concord_order_id": ORDER,
            "concord_customer_id": CUSTOMER,
            "sf_opportunity_id": "006OPP",
            "netsuite_sales_order_id": "SO-7",
        }
        prices = {i["price"]["id"]: i["quantity"] for i in sub["items"]["data"]}
        assert prices == {world.prices["seat"]: 3, world.prices["usage"]: None}  # no setup fee
        writes = [c for c in world.sandbox.calls if c.method == "POST"]
        keys = {
            c.idempotency_key for c in writes if c.path in ("/v1/customers", "/v1/subscriptions")
        }
        assert keys == {customer_key(CUSTOMER), "evt-1:subscription"}
        # Another contract of the same customer reuses its Stripe customer.
        other = str(uuid.uuid4())
        await connector.deliver(_created(other, _items()[:1]), "evt-2")
        assert world.sandbox.count("customer") == 1 and world.sandbox.count("subscription") == 2

    world = _run(scenario)
    created = [
        h.event for h in world.receiver.hooks if h.event["type"] == "customer.subscription.created"
    ]
    assert len(created) == 2


def test_a_rate_plan_in_another_currency_gives_way_to_the_contracts() -> None:
    """A SKU sold in USD and EUR has a price per currency; a EUR contract whose rate plan is
    the USD price is billed at the EUR one (Stripe refuses mixed currencies)."""

    async def scenario(
        world: Billing, connector: StripeConnector, reader: MemoryHubReader, contract: str
    ) -> None:
        usd = world.post(
            "/v1/prices",
            {
                "product": world.sandbox.all("price")[0]["product"],
                "currency": "usd",
                "unit_amount": "2700",
                "recurring[interval]": "month",
            },
        ).json()["id"]
        seat = reader.states[("product", str(product_id("PLAT-SEAT")))]
        seat["ids"]["billing_price_ids"] = [usd, world.prices["seat"]]
        items = [{**_items()[0], "rate_plan": usd}]
        await connector.deliver(_created(contract, items), "evt-1")
        [sub] = world.sandbox.all("subscription")
        assert [i["price"]["id"] for i in sub["items"]["data"]] == [world.prices["seat"]]

    _run(scenario)


def test_faults_are_transient_and_a_redelivery_makes_nothing_twice() -> None:
    async def scenario(world: Billing, connector: StripeConnector, _: Any, contract: str) -> None:
        faults = world.sandbox.faults
        faults.add({"kind": "error", "status": 429, "retry_after": 2, "path": "/v1/customers"})
        with pytest.raises(TransientDeliveryError) as limited:
            await connector.deliver(_created(contract), "evt-1")
        assert limited.value.retry_after == 2
        faults.add({"kind": "error", "status": 503, "method": "POST", "path": "/v1/subscriptions"})
        with pytest.raises(TransientDeliveryError):
            await connector.deliver(_created(contract), "evt-1")
        # Applied, but answered too late: the client gave up; the retry is a replay.
        faults.add(
            {"kind": "timeout", "seconds": 1.0, "method": "POST", "path": "/v1/subscriptions"}
        )
        with pytest.raises(TransientDeliveryError):
            await connector.deliver(_created(contract), "evt-1")
        assert world.sandbox.count("subscription") == 1
        faults.add({"kind": "duplicate_webhook"})
        await connector.deliver(_created(contract), "evt-1")
        assert world.sandbox.count("customer") == 1 and world.sandbox.count("subscription") == 1

    _run(scenario, timeout=0.3)


def test_two_contracts_of_one_customer_delivered_at_once_make_one_customer() -> None:
    async def scenario(world: Billing, connector: StripeConnector, _: Any, contract: str) -> None:
        # The first creation is applied but answered late: the other contract's delivery
        # searches, finds nothing yet, and must still not make a second customer.
        world.sandbox.faults.add(
            {"kind": "timeout", "seconds": 0.5, "method": "POST", "path": "/v1/customers"}
        )
        other = str(uuid.uuid4())
        pending = {"evt-a": _created(contract), "evt-b": _created(other, _items()[:1])}
        for _round in range(10):  # as the subscriber does: retry what failed
            keys = list(pending)
            results = await asyncio.gather(
                *(connector.deliver(pending[k], k) for k in keys), return_exceptions=True
            )
            for key, result in zip(keys, results, strict=True):
                if result is None:
                    del pending[key]
                else:
                    assert isinstance(result, TransientDeliveryError), result
            if not pending:
                break
            await asyncio.sleep(0.6)
        assert not pending
        assert world.sandbox.count("customer") == 1 and world.sandbox.count("subscription") == 2

    _run(scenario, timeout=0.3)


def test_a_dropped_webhook_and_a_redelivery_keep_one_subscription() -> None:
    async def scenario(world: Billing, connector: StripeConnector, _: Any, contract: str) -> None:
        world.sandbox.faults.add({"kind": "drop_webhook", "count": 10})
        await connector.deliver(_created(contract), "evt-1")
        await connector.deliver(_created(contract), "evt-1-again")  # another key, same contract
        assert world.sandbox.count("subscription") == 1

    world = _run(scenario)
    assert world.receiver.hooks == [] or all(
        h.event["type"] != "customer.subscription.created" for h in world.receiver.hooks
    )


def test_refusals_and_bad_mappings_are_permanent() -> None:
    async def scenario(
        world: Billing, connector: StripeConnector, reader: MemoryHubReader, contract: str
    ) -> None:
        world.http.post("/_admin/refuse_subscriptions", json={"message": "account closed"})
        with pytest.raises(PermanentDeliveryError, match="account closed"):
            await connector.deliver(_created(contract), "evt-1")
        world.http.post("/_admin/refuse_subscriptions", json={"message": None})
        del reader.states[("product", str(product_id("PLAT-API")))]
        with pytest.raises(PermanentDeliveryError, match="PLAT-API has no billing price"):
            await connector.deliver(_created(contract), "evt-2")
        usd = dict(_created(contract), data=dict(_created(contract)["data"], currency="USD"))
        with pytest.raises(PermanentDeliveryError, match="in USD"):
            await connector.deliver(usd, "evt-3")
        assert world.sandbox.count("subscription") == 0

    _run(scenario)


def test_echoes_and_other_events_send_nothing() -> None:
    async def scenario(world: Billing, connector: StripeConnector, _: Any, contract: str) -> None:
        echo = _created(contract)
        echo["provenance"] = {"source_system": "billing"}
        assert not connector.wants(echo) and connector.wants(_created(contract))
        await connector.deliver(echo, "evt-1")
        await connector.deliver(_envelope(contract, "ContractUsageRecorded", {}), "evt-2")
        await connector.deliver(dict(_created(contract), aggregate="order"), "evt-3")
        assert list(world.sandbox.calls) == []

    _run(scenario)


def test_the_changes_of_a_running_contract() -> None:
    async def scenario(
        world: Billing, connector: StripeConnector, reader: MemoryHubReader, contract: str
    ) -> None:
        await connector.deliver(_created(contract), "evt-1")
        [sub] = world.sandbox.all("subscription")
        # Not linked yet: found by its metadata (search), then by the id the hub holds.
        today = "2026-12-07"
        amend = {"changes": [{"sku": "PLAT-SEAT", "quantity": "5"}], "effective_date": today}
        await connector.deliver(_envelope(contract, "ContractAmended", amend), "evt-2")
        reader.states[("contract", contract)]["billing_subscription_id"] = sub["id"]
        await connector.deliver(_envelope(contract, "ContractAmended", amend), "evt-2")  # again
        await connector.deliver(
            _envelope(contract, "ContractSuspended", {"effective_date": today}), "evt-3"
        )
        paused = world.http.get(f"/v1/subscriptions/{sub['id']}").json()
        assert paused["pause_collection"]["behavior"] == "void"
        assert {i["price"]["id"]: i["quantity"] for i in paused["items"]["data"]}[
            world.prices["seat"]
        ] == 5
        await connector.deliver(
            _envelope(contract, "ContractResumed", {"effective_date": today}), "evt-4"
        )
        await connector.deliver(
            _envelope(contract, "ContractRenewed", {"new_term_end": "2028-01-01"}), "evt-5"
        )
        await connector.deliver(
            _envelope(
                contract, "ContractCancelled", {"effective_date": "2099-01-01", "reason": None}
            ),
            "evt-6",
        )
        after = world.http.get(f"/v1/subscriptions/{sub['id']}").json()
        assert after["pause_collection"] is None and after["status"] == "active"
        assert after["metadata"]["concord_term_end"] == "2028-01-01"
        assert after["cancel_at"] == 4070908800  # 2099-01-01T00:00:00Z
        await connector.deliver(
            _envelope(
                contract, "ContractCancelled", {"effective_date": "2026-01-01", "reason": None}
            ),
            "evt-7",
        )
        ended = world.http.get(f"/v1/subscriptions/{sub['id']}").json()
        assert ended["status"] == "canceled"
        await connector.deliver(
            _envelope(
                contract, "ContractCancelled", {"effective_date": "2026-01-01", "reason": None}
            ),
            "evt-7",
        )  # cancelled already: nothing to do
        updates = [
            c for c in world.sandbox.calls if c.method == "POST" and c.path != "/v1/customers"
        ]
        keys = [c.idempotency_key for c in updates if c.path.startswith("/v1/subscriptions/")]
        # The repeated amendment was replayed by Stripe (same key), not applied twice.
        assert keys == [
            "evt-2:items",
            "evt-2:items",
            "evt-3:pause",
            "evt-4:resume",
            "evt-5:renew",
            "evt-6:cancel",
        ]

    _run(scenario)


def test_a_contract_without_a_subscription_yet_is_retried() -> None:
    async def scenario(world: Billing, connector: StripeConnector, _: Any, contract: str) -> None:
        with pytest.raises(TransientDeliveryError) as waiting:
            await connector.deliver(
                _envelope(contract, "ContractSuspended", {"effective_date": "2026-12-07"}), "e"
            )
        assert waiting.value.retry_after == 30.0

    _run(scenario)


def test_sdk_errors_sort_into_retry_and_dead_letter() -> None:
    transient = [
        stripe.RateLimitError("slow down", http_status=429, headers={"retry-after": "3"}),
        stripe.APIConnectionError("reset"),
        stripe.APIError("boom", http_status=500),
        stripe.IdempotencyError("in flight", http_status=409),
    ]
    for error in transient:
        assert isinstance(delivery_error(error), TransientDeliveryError), error
    assert delivery_error(transient[0]).retry_after == 3  # type: ignore[attr-defined]
    permanent = [
        stripe.InvalidRequestError("No such price", "items[0][price]", http_status=400),
        stripe.CardError("declined", None, "card_declined", http_status=402),
        stripe.AuthenticationError("bad key", http_status=401),
        stripe.IdempotencyError("other params", http_status=400),
    ]
    for error in permanent:
        found = delivery_error(error)
        assert isinstance(found, PermanentDeliveryError), error
        assert "Stripe answered" in found.message


class _Counting(Budget):
    """A budget that counts the slots taken."""

    def __init__(self) -> None:
        super().__init__("billing", concurrency=2, rate_per_s=1000)
        self.taken = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with super().slot():
            self.taken += 1
            yield


def test_every_call_takes_a_slot_of_the_budget() -> None:
    with billing() as world:
        contract = str(uuid.uuid4())
        budget = _Counting()

        async def main() -> None:
            client = StripeClient(API_KEY, base_url=world.running.url, budget=budget)
            connector = StripeConnector(client, _reader(world, contract))
            await connector.deliver(_created(contract), "evt-1")
            await connector.deliver(_created(contract), "evt-1")
            await connector.aclose()

        asyncio.run(main())
        assert budget.taken == len(world.sandbox.calls) > 0


def test_settings_configure_the_connector() -> None:
    assert stripe_connector(Settings(), MemoryHubReader()) is None
    with pytest.raises(ValueError, match="CONCORD_STRIPE_API_KEY"):
        stripe_connector(Settings(stripe_url="http://127.0.0.1:1"), MemoryHubReader())
    configured = Settings(
        stripe_api_key="sk_test_x", stripe_url="http://127.0.0.1:1", stripe_rate=5
    )
    connector = stripe_connector(configured, MemoryHubReader())
    assert isinstance(connector, StripeConnector)
    asyncio.run(connector.aclose())


def test_a_budget_at_the_rate_of_stripe_meets_no_429() -> None:
    with billing() as world:
        world.sandbox.rate.per_s = 5  # from now: the catalogue's setup calls do not count
        budget = Budget("billing", concurrency=5, rate_per_s=4)

        async def main() -> None:
            client = StripeClient(API_KEY, base_url=world.running.url, budget=budget)
            connector = StripeConnector(client, _reader(world, str(uuid.uuid4())))
            contracts = [str(uuid.uuid4()) for _ in range(3)]
            await asyncio.gather(*(connector.deliver(_created(c), f"evt-{c}") for c in contracts))
            await connector.aclose()

        asyncio.run(main())
        assert world.sandbox.count("subscription") == 3
        assert all(c.status != 429 for c in world.sandbox.calls)


def test_a_cancelled_order_ends_its_contracts_subscription() -> None:
    async def scenario(
        world: Billing, connector: StripeConnector, reader: MemoryHubReader, contract: str
    ) -> None:
        derived = contract_id_for(ORDER)
        reader.states[("contract", derived)] = {
            **reader.states[("contract", contract)],
            "id": derived,
        }
        await connector.deliver(_created(derived), "evt-1")
        [sub] = world.sandbox.all("subscription")
        cancelled = {
            **_envelope(ORDER, "OrderCancelled", {"reason": "the deal fell through"}, "crm"),
            "aggregate": "order",
            "occurred_at": "2026-01-10T09:00:00Z",
            "recorded_at": "2026-01-10T09:00:01Z",
        }
        assert connector.wants(cancelled)
        await connector.deliver(cancelled, "evt-2")
        assert world.http.get(f"/v1/subscriptions/{sub['id']}").json()["status"] == "canceled"
        # An order with no contract behind it has nothing to end; billing's own: not echoed.
        calls = len(world.sandbox.calls)
        other = {**cancelled, "aggregate_id": str(uuid.uuid4())}
        await connector.deliver(other, "evt-3")
        assert len(world.sandbox.calls) == calls
        assert not connector.wants({**cancelled, "provenance": {"source_system": "billing"}})

    _run(scenario)
