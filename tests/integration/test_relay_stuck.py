"""An event too large for NATS that reached a store anyway (the commit-time check refuses
such events, so here it is written by raw SQL): the relay names the store and the event,
loudly, and the other stores keep flowing."""

from __future__ import annotations

import asyncio
import logging

import orjson
import psycopg
import pytest
from psycopg import sql

from adapters.bootstrap import Runtime
from adapters.nats.relay import Relay
from hub.application.views import event_id
from tests.conftest import run_sync
from tests.integration.commands import new_customer, new_order
from tests.integration.relay_support import relay_settings, stream_messages


def _insert_oversized_order_event(runtime: Runtime, database_url: str, size: int) -> str:
    """Append, bypassing the hub, a copy of an order's last event padded to ``size`` bytes;
    returns its event id."""
    schema = sql.Identifier(runtime.settings.schema_name)
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT originator_id, originator_version, topic, state FROM {}.orders_events "
                "ORDER BY notification_id DESC LIMIT 1"
            ).format(schema)
        ).fetchone()
        assert row is not None
        originator_id, version, topic, state = row
        padded = orjson.loads(state)
        padded["note"] = "x" * size
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.orders_events (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s)"
            ).format(schema),
            (originator_id, version + 1, topic, orjson.dumps(padded).decode()),
        )
    return event_id(originator_id, version + 1)


def test_oversized_event_reports_its_store_stuck_and_the_others_keep_flowing(
    runtime: Runtime,
    nats_url: str,
    stream_name: str,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    customer = new_customer(runtime, "Before")
    new_order(runtime, customer)
    relay = Relay(relay_settings(runtime, nats_url, stream_name))
    stop = asyncio.Event()

    async def scenario() -> tuple[str, str, list[str]]:
        task = asyncio.create_task(relay.run(stop))
        await asyncio.wait_for(relay.ready.wait(), 30)
        assert relay._nc is not None
        oversized = await asyncio.to_thread(
            _insert_oversized_order_event, runtime, database_url, relay._nc.max_payload
        )
        # Behind it in the same store, and in other stores: commits keep coming.
        later = await asyncio.to_thread(new_customer, runtime, "After")
        await asyncio.to_thread(new_order, runtime, later)

        async def flowing() -> list[str]:
            while True:
                published = [
                    m["envelope"]["aggregate_id"]
                    for m in await asyncio.to_thread(stream_messages, nats_url, stream_name)
                ]
                if str(later) in published and "orders" in relay.stuck:
                    return published
                await asyncio.sleep(0.1)

        published = await asyncio.wait_for(flowing(), 30)
        await asyncio.sleep(1.5)  # more rounds: reported once, still stuck, nothing skipped
        stop.set()
        await task
        return oversized, str(later), published

    with caplog.at_level(logging.ERROR, logger="concord.relay"):
        oversized, later, published = run_sync(scenario())
    assert oversized in relay.stuck["orders"] and "max_payload" in relay.stuck["orders"]
    assert set(relay.stuck) == {"orders"}
    reports = [r.getMessage() for r in caplog.records if "STUCK" in r.getMessage()]
    assert len(reports) == 1
    assert oversized in reports[0] and "Fix: raise max_payload" in reports[0]
    # The customer store flowed past it; the orders store stopped right before it, in order.
    messages = stream_messages(nats_url, stream_name)
    ids = [m["headers"]["Nats-Msg-Id"] for m in messages]
    assert oversized not in ids
    assert [m["envelope"]["aggregate"] for m in messages].count("order") == 1
    assert published.count(later) == 1
    assert relay.stats.lag["orders"] == 2  # the oversized event and the order behind it
