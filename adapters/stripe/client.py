"""The Stripe API calls Concord makes, through the official ``stripe`` SDK (async).

Why the SDK and not httpx: Stripe keeps it current with every API version, it encodes the
nested form parameters (``items[0][price]=…``) and decodes errors into typed exceptions
(:class:`stripe.RateLimitError`, :class:`stripe.InvalidRequestError`, …) the connector maps
onto retry-or-dead-letter. ``base_url`` points it at the billing sandbox (or a proxy);
unset, it calls ``https://api.stripe.com``.

Every call waits for a slot of the target's shared :class:`~adapters.connectors.budget.Budget`
(25 requests/s is Stripe's test-mode limit: all workers and processes share it) and runs
with the SDK's own retries off — the subscriber retries, with the same ``Idempotency-Key``.
The API version is pinned to the one the inbound adapter reads (basil), so the objects
this client gets back have the shapes Concord's webhooks have.

Plain dicts in, plain dicts out: no Concord types here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import stripe

from adapters.connectors.budget import Budget
from adapters.stripe.adapter import STRIPE_API_VERSION

__all__ = ["StripeClient"]

Params = dict[str, Any]


class StripeClient:
    """Customers, prices and subscriptions of one Stripe account (secret key ``api_key``)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str | None = None,
        budget: Budget | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = stripe.HTTPXClient(timeout=timeout)
        self._stripe = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url.rstrip("/")} if base_url else {},
            stripe_version=STRIPE_API_VERSION,
            max_network_retries=0,
            http_client=self._http,
        )
        self._budget = budget or Budget.unlimited("billing")
        self._prices: dict[str, Params] = {}

    async def _call(self, method: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        async with self._budget.slot():
            return await method(*args)

    @staticmethod
    def _options(key: str | None) -> stripe.RequestOptions:
        return {"idempotency_key": key} if key else {}

    async def _one(self, method: Callable[..., Awaitable[Any]], *args: Any) -> Params:
        found = await self._call(method, *args)
        result: Params = found.to_dict()
        return result

    async def _many(self, method: Callable[..., Awaitable[Any]], params: Params) -> list[Params]:
        page = await self._call(method, params)
        return [row.to_dict() for row in page.data]

    # --- customers ---------------------------------------------------------------------------
    async def create_customer(self, params: Params, key: str) -> Params:
        return await self._one(self._stripe.v1.customers.create_async, params, self._options(key))

    async def find_customers(self, metadata_key: str, value: str) -> list[Params]:
        """Customers whose ``metadata[metadata_key]`` is ``value`` (Stripe search: it may
        lag a new customer by up to a minute; idempotency keys cover that window)."""
        query = {"query": f"metadata['{metadata_key}']:'{value}'", "limit": 10}
        return await self._many(self._stripe.v1.customers.search_async, query)

    # --- prices ------------------------------------------------------------------------------
    async def price(self, price_id: str) -> Params:
        """One price (cached: prices are immutable but for ``active`` and metadata)."""
        if price_id not in self._prices:
            self._prices[price_id] = await self._one(
                self._stripe.v1.prices.retrieve_async, price_id
            )
        return self._prices[price_id]

    # --- subscriptions -----------------------------------------------------------------------
    async def create_subscription(self, params: Params, key: str) -> Params:
        return await self._one(
            self._stripe.v1.subscriptions.create_async, params, self._options(key)
        )

    async def subscription(self, subscription_id: str) -> Params:
        return await self._one(self._stripe.v1.subscriptions.retrieve_async, subscription_id)

    async def subscriptions_of(self, customer: str) -> list[Params]:
        """Every subscription of a customer, ended ones too (up to 100)."""
        params = {"customer": customer, "status": "all", "limit": 100}
        return await self._many(self._stripe.v1.subscriptions.list_async, params)

    async def find_subscriptions(self, metadata_key: str, value: str) -> list[Params]:
        query = {"query": f"metadata['{metadata_key}']:'{value}'", "limit": 10}
        return await self._many(self._stripe.v1.subscriptions.search_async, query)

    async def update_subscription(self, subscription_id: str, params: Params, key: str) -> Params:
        return await self._one(
            self._stripe.v1.subscriptions.update_async,
            subscription_id,
            params,
            self._options(key),
        )

    async def cancel_subscription(self, subscription_id: str) -> Params:
        """Cancel now (``DELETE``: Stripe takes no idempotency key there; cancelling twice
        is refused, so the connector reads the status first)."""
        return await self._one(self._stripe.v1.subscriptions.cancel_async, subscription_id)

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]
