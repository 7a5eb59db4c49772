"""Hold-store repairs found in review: parked events whose hold went missing are released
after a restart, and an interrupted operator retry is asked for again (not left stuck)."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from adapters.nats.holds import DRAINING, HoldStore
from adapters.nats.runner import _create_tables
from tests.conftest import run_sync
from tests.integration.subscriber_support import envelope, make_settings, new_id


def test_orphaned_parked_events_get_a_draining_hold_on_load(
    database_url: str, pg_schema: str
) -> None:
    settings = make_settings(database_url, "nats://unused", pg_schema, "S")
    _create_tables(settings)
    aggregate_id = new_id()
    env = envelope("order", aggregate_id, 2, "OrderChanged")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.concord_parked (subscriber, aggregate, aggregate_id, stream_seq, "
                "event_id, event_type, version, subject, envelope) "
                "VALUES ('erp', 'order', %s, 7, %s, 'OrderChanged', 2, 's', %s)"
            ).format(sql.Identifier(pg_schema)),
            (aggregate_id, env["event_id"], psycopg.types.json.Jsonb(env)),
        )

    async def scenario() -> None:
        async with AsyncConnectionPool(
            database_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
        ) as pool:
            store = HoldStore(pool, pg_schema, "erp")
            holds = await store.load()
            assert holds[("order", aggregate_id)].state == DRAINING
            assert await store.hold_state(("order", aggregate_id)) == DRAINING
            assert ("order", aggregate_id) in await store.draining()

    run_sync(scenario())


def test_an_interrupted_retry_is_requested_again(database_url: str, pg_schema: str) -> None:
    settings = make_settings(database_url, "nats://unused", pg_schema, "S")
    _create_tables(settings)
    aggregate_id = new_id()
    env = envelope("order", aggregate_id, 1, "OrderPlaced")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.concord_dead_letters (subscriber, event_id, event_type, "
                "aggregate, aggregate_id, version, stream_seq, subject, envelope, reason, "
                "error, attempts, first_failed_at, last_failed_at, status) VALUES ('erp', %s, "
                "'OrderPlaced', 'order', %s, 1, 3, 's', %s, 'permanent', 'x', 1, now(), now(), "
                "'retry_requested')"
            ).format(sql.Identifier(pg_schema)),
            (env["event_id"], aggregate_id, psycopg.types.json.Jsonb(env)),
        )

    async def scenario() -> None:
        async with AsyncConnectionPool(
            database_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
        ) as pool:
            store = HoldStore(pool, pg_schema, "erp")
            [task] = await store.claim_retries()
            assert await store.claim_retries() == []  # now 'retrying'
            await store.retry_interrupted(task)
            [again] = await store.claim_retries()
            assert again.id == task.id

    run_sync(scenario())


def test_a_malformed_retry_request_is_never_delivered(database_url: str, pg_schema: str) -> None:
    """Requested before operators were refused: the subscriber puts it back to 'dead'."""
    settings = make_settings(database_url, "nats://unused", pg_schema, "S")
    _create_tables(settings)
    table = sql.SQL("{}.concord_dead_letters").format(sql.Identifier(pg_schema))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (subscriber, event_id, event_type, aggregate, aggregate_id, "
                "version, stream_seq, subject, envelope, reason, error, attempts, "
                "first_failed_at, last_failed_at, status) VALUES ('erp', '', '', '', '#3', 0, "
                "3, 's', %s, 'malformed', 'x', 1, now(), now(), 'retry_requested')"
            ).format(table),
            (psycopg.types.json.Jsonb({"raw": "not json"}),),
        )

    async def scenario() -> None:
        async with AsyncConnectionPool(
            database_url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False
        ) as pool:
            assert await HoldStore(pool, pg_schema, "erp").claim_retries() == []

    run_sync(scenario())
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT status FROM {}").format(table)).fetchone()
    assert row is not None and row[0] == "dead"
