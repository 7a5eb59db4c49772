"""Observe-only delivery: recorded once, never sent, and no personal value kept."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from adapters.connectors.observe import ObservingConnector
from adapters.connectors.port import Connector
from adapters.postgres.outbound_tables import create_outbound_tables


class _Never(Connector):
    """A target that must not be called; wants only customer registrations."""

    def __init__(self) -> None:
        self.calls = 0

    def wants(self, envelope: dict[str, Any]) -> bool:
        return envelope["type"] == "CustomerRegistered"

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        self.calls += 1


def _envelope(kind: str, **data: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "aggregate": "customer",
        "aggregate_id": "6d62fbc9-741e-4cf9-909f-aeee2fdb239e",
        "data": data,
    }


def test_observed_events_are_kept_without_their_personal_values(
    database_url: str, pg_schema: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_outbound_tables(conn, pg_schema)
    target = _Never()
    # The subscriber hands connectors envelopes with personal fields opened.
    opened = _envelope(
        "CustomerRegistered",
        legal_name="Jane Doe",
        display_name="Jane",
        tax_id=None,
        currency="EUR",
    )

    async def run() -> None:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=1, open=False) as pool:
            observing = ObservingConnector("erp", target, pool, pg_schema)
            for _ in range(2):  # redelivered: one row
                await observing.deliver(opened, "evt-1")
            await observing.deliver(_envelope("CustomerStatusChanged", status="closed"), "evt-2")

    asyncio.run(run())
    assert target.calls == 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT event_id, envelope FROM {}").format(
                sql.Identifier(pg_schema, "concord_observed_deliveries")
            )
        ).fetchall()
    assert [r[0] for r in rows] == ["evt-1"]  # the event the target does not want: not kept
    kept = rows[0][1]["data"]
    assert (kept["legal_name"], kept["display_name"], kept["tax_id"]) == (
        "[withheld]",
        "[withheld]",
        None,
    )
    assert kept["currency"] == "EUR"
    assert b"Jane" not in orjson.dumps(rows[0][1])
    assert opened["data"]["legal_name"] == "Jane Doe"  # the delivery's own copy untouched
