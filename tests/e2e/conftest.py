"""End-to-end fixtures: the real hub (PostgreSQL on this test's schema) behind the HTTP API.

Every test gets a fresh runtime on its own schema, keys for each system, and an ``Api`` helper
that also counts stored events directly in the stores, so "bad input changes nothing" is
checked against the database, not against what the API claims.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.bootstrap import Runtime, open_runtime
from adapters.settings import Settings
from api.app import create_app
from tests.integration.subscriber_support import make_settings

with warnings.catch_warnings():
    # Starlette now nudges towards httpx2; the TestClient still works with httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROLES = {
    "admin": ("admin", ["read", "write", "admin"]),
    "crm": ("crm", ["read", "write"]),
    "erp": ("erp", ["read", "write"]),
    "billing": ("billing", ["read", "write"]),
    "reader": ("crm", ["read"]),
}


def nats_settings(
    database_url: str,
    nats_url: str,
    pg_schema: str,
    stream_name: str,
    data_dir: Path,
    **extra: Any,
) -> Settings:
    """Settings of a hub with NATS on this test's schema and stream."""
    base = make_settings(database_url, nats_url, pg_schema, stream_name)
    return base.model_copy(update={"data_dir": data_dir, **extra})


@dataclass
class Api:
    """The test client with one key per role, and direct views of what the store holds."""

    http: TestClient
    runtime: Runtime
    keys: dict[str, str]

    def headers(self, role: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        out = {} if role is None else {"Authorization": f"Bearer {self.keys[role]}"}
        return {**out, **(extra or {})}

    def post(
        self,
        path: str,
        json: Any = None,
        *,
        role: str | None = "crm",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        return self.http.post(path, json=json, headers=self.headers(role, headers), **kw)

    def get(
        self,
        path: str,
        *,
        role: str | None = "admin",
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        return self.http.get(path, headers=self.headers(role, headers), **kw)

    # -- what the store holds (bypassing the API) -----------------------------------------

    def history(self, entity: str, aggregate_id: str) -> list[Any]:
        from uuid import UUID

        return self.runtime.hub.store.history(entity, UUID(aggregate_id))

    def total_events(self) -> int:
        """Events stored across all five stores (the highest notification id of each)."""
        return sum(
            store.recorder.max_notification_id() or 0  # type: ignore[attr-defined]
            for store in self.runtime.stores.values()
        )

    # -- building blocks ------------------------------------------------------------------

    def customer(self, **fields: Any) -> str:
        body = {"legal_name": "Acme GmbH", **fields}
        response = self.post("/v1/customers", body, role="crm")
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def order(self, customer_id: str, currency: str = "USD", **fields: Any) -> str:
        response = self.post("/v1/orders", order_body(customer_id, currency, **fields))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def invoice(self, customer_id: str, order_id: str, total: str = "100.00") -> str:
        response = self.post(
            "/v1/invoices", invoice_body(customer_id, order_id, total), role="billing"
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def payment(self, customer_id: str, amount: str = "150.00", currency: str = "USD") -> str:
        response = self.post(
            "/v1/payments", payment_body(customer_id, amount, currency), role="billing"
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def order_body(customer_id: str, currency: str = "USD", **fields: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "opportunity_id": "OPP-1",
        "lines": [
            {"sku": "PLAT-1", "quantity": "2", "unit_price": "50.00", "charge_type": "recurring"},
            {"sku": "SETUP", "quantity": "1", "unit_price": "20.00", "charge_type": "one_time"},
        ],
        "currency": currency,
        "term_months": 12,
        "start_date": "2026-01-01",
        "booking_date": "2025-12-20",
        **fields,
    }


def invoice_body(customer_id: str, order_id: str, total: str = "100.00") -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "order_id": order_id,
        "lines": [{"sku": "PLAT-1", "quantity": "1", "unit_price": total, "amount": total}],
        "currency": "USD",
        "subtotal": total,
        "tax": "0.00",
        "total": total,
        "issue_date": "2026-01-01",
        "due_date": "2026-01-31",
    }


def payment_body(customer_id: str, amount: str, currency: str = "USD") -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "amount": {"amount": amount, "currency": currency},
        "method": "wire",
        "received_at": "2026-01-05T09:00:00Z",
    }


def assert_problem(
    response: httpx.Response, status: int, code: str, *, field: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem of this status/code (naming ``field`` if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://concord.dev/problems/{code}"
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    if field is not None:
        fields = [e["field"] for e in body["errors"]]
        assert field in fields, fields
    return body


@pytest.fixture
def runtime(database_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = open_runtime(Settings(database_url=database_url, schema_name=pg_schema, data_dir=tmp_path))
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def api(runtime: Runtime) -> Iterator[Api]:
    keys = {
        role: runtime.keys.create(f"{role}-client", system, scopes)
        for role, (system, scopes) in ROLES.items()
    }
    with TestClient(create_app(runtime)) as http:
        yield Api(http=http, runtime=runtime, keys=keys)
