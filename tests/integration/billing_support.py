"""Shared by the billing sandbox and Stripe connector tests: a webhook receiver, a served
sandbox with a catalogue, and waiting for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.inbound.source import Incoming
from adapters.sandbox.base import Running, Sandbox, json_response, serve_in_thread
from adapters.sandbox.billing import BillingSandbox

SECRET = "whsec_test_billing"
API_KEY = "sk_test_billing_0123456789"


def wait(check: Callable[[], object], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@dataclass
class Hook:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, object]:
        found: dict[str, object] = orjson.loads(self.body)
        return found

    def incoming(self) -> Incoming:
        return Incoming(
            "POST", "http://concord/v1/webhooks/stripe", self.headers, self.body, datetime.now(UTC)
        )


class Receiver(Sandbox):
    """Concord's webhook endpoint, as far as the sandbox can tell: keeps what arrives."""

    name = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[Hook] = []

    def routes(self) -> list[BaseRoute]:
        return [Route("/hook", self._hook, methods=["POST"])]

    async def _hook(self, request: Request) -> Response:
        self.hooks.append(Hook(dict(request.headers), await request.body()))
        return json_response({})

    def types(self) -> list[str]:
        return [str(h.event["type"]) for h in self.hooks]


@dataclass
class Billing:
    """A served billing sandbox with its webhooks going to a :class:`Receiver`."""

    running: Running
    sandbox: BillingSandbox
    receiver: Receiver
    http: httpx.Client
    prices: dict[str, str] = field(default_factory=dict)

    def post(self, path: str, data: dict[str, str], key: str | None = None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.http.post(path, data=data, headers=headers)

    def settled(self) -> None:
        wait(lambda: self.sandbox.webhooks.pending == 0)


@contextmanager
def billing(rate_per_s: float = 0.0) -> Iterator[Billing]:
    """The sandbox (no rate limit unless asked), a receiver, and a catalogue: a monthly
    seat price ``seat`` (25.00 EUR), a metered ``usage`` price (0.50 EUR) and a one-time
    ``setup`` price."""
    receiver = Receiver()
    with serve_in_thread(receiver) as hooks:
        sandbox = BillingSandbox(
            SECRET, API_KEY, rate_per_s=rate_per_s, webhook_url=f"{hooks.url}/hook"
        )
        sandbox.webhooks.backoff = (0.05,)
        with (
            serve_in_thread(sandbox) as running,
            httpx.Client(
                base_url=running.url, headers={"Authorization": f"Bearer {API_KEY}"}
            ) as http,
        ):
            world = Billing(running, sandbox, receiver, http)
            product = world.post("/v1/products", {"name": "Platform"}).json()["id"]
            specs = {
                "seat": {
                    "unit_amount": "2500",
                    "recurring[interval]": "month",
                    "metadata[sku]": "PLAT-SEAT",
                },
                "usage": {
                    "unit_amount_decimal": "50",
                    "recurring[interval]": "month",
                    "recurring[usage_type]": "metered",
                    "metadata[sku]": "PLAT-API",
                },
                "setup": {"unit_amount": "100000", "metadata[sku]": "PLAT-SETUP"},
            }
            for name, spec in specs.items():
                created = world.post("/v1/prices", {"product": product, "currency": "eur", **spec})
                assert created.status_code == 200, created.text
                world.prices[name] = created.json()["id"]
            world.settled()
            receiver.hooks.clear()
            sandbox.calls.clear()
            yield world
