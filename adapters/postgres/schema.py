"""Concord's own tables beside the event stores: idempotency receipts, the cross-reference
of external ids, ownership conflicts, per-customer data keys, and the subscribers' dead
letters, holds and parked events. Created idempotently at start-up.

They live in the same schema (and database) as the per-aggregate event tables so a
command's events, its receipt and its cross-reference rows commit in one transaction.
"""

from __future__ import annotations

from psycopg import Connection, sql

from adapters.exceptions.tables import TABLES as EXCEPTION_TABLES
from adapters.inbound.log import TABLES as INBOUND_TABLES
from adapters.inbound.mirror import TABLES as MIRROR_TABLES
from adapters.inbound.reviews import TABLES as REVIEW_TABLES
from adapters.postgres.index import TABLES as INDEX_TABLES
from adapters.postgres.match_keys import TABLES as MATCH_TABLES
from adapters.postgres.outbound_tables import OUTBOUND_TABLES

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_receipts (
        client_id    text        NOT NULL,
        key          text        NOT NULL,
        request_hash text        NOT NULL,
        status       integer     NOT NULL,
        body         jsonb       NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (client_id, key)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_xref (
        system       text        NOT NULL,
        entity       text        NOT NULL,
        external_id  text        NOT NULL,
        aggregate_id uuid        NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (system, entity, external_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS concord_xref_aggregate ON {schema}.concord_xref (aggregate_id)",
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_conflicts (
        id           bigserial   PRIMARY KEY,
        at           timestamptz NOT NULL,
        client_id    text        NOT NULL,
        system       text        NOT NULL,
        entity       text        NOT NULL,
        aggregate_id uuid,
        command      text        NOT NULL,
        field        text        NOT NULL,
        owner        text        NOT NULL,
        payload      jsonb       NOT NULL,
        status       text        NOT NULL DEFAULT 'open'
    )
    """,
    # One batch repeating a violation on many lines records it once: how often, and where.
    """
    ALTER TABLE {schema}.concord_conflicts
        ADD COLUMN IF NOT EXISTS occurrences integer NOT NULL DEFAULT 1,
        ADD COLUMN IF NOT EXISTS lines integer[]
    """,
    # Per-customer data keys (adapters/postgres/personal_keys.py): erasure sets key to NULL
    # in the erasure's own transaction, which makes every sealed copy unreadable at once.
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_personal_keys (
        subject_id   uuid        PRIMARY KEY,
        key          bytea,
        created_at   timestamptz NOT NULL DEFAULT now(),
        destroyed_at timestamptz,
        CHECK ((key IS NULL) = (destroyed_at IS NOT NULL))
    )
    """,
    # Subscribers (adapters/nats/subscriber.py). A dead letter is an event a target refused
    # for good (or never confirmed within the delivery budget); at most one per subscriber
    # and aggregate is open, because later events of that aggregate wait behind it.
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_dead_letters (
        id              bigserial   PRIMARY KEY,
        subscriber      text        NOT NULL,
        event_id        text        NOT NULL,
        event_type      text        NOT NULL,
        aggregate       text        NOT NULL,
        aggregate_id    text        NOT NULL,
        version         bigint      NOT NULL,
        stream_seq      bigint      NOT NULL,
        subject         text        NOT NULL,
        envelope        jsonb       NOT NULL,
        reason          text        NOT NULL,
        error           text        NOT NULL,
        attempts        integer     NOT NULL,
        first_failed_at timestamptz NOT NULL,
        last_failed_at  timestamptz NOT NULL,
        status          text        NOT NULL DEFAULT 'dead',
        resolved_at     timestamptz,
        resolved_by     text
    )
    """,
    """
    CREATE UNIQUE INDEX IF NOT EXISTS concord_dead_letters_open
        ON {schema}.concord_dead_letters (subscriber, aggregate, aggregate_id)
        WHERE status IN ('dead', 'retry_requested', 'retrying')
    """,
    """
    CREATE INDEX IF NOT EXISTS concord_dead_letters_status
        ON {schema}.concord_dead_letters (subscriber, status, id)
    """,
    # An aggregate a subscriber must not deliver past: its blocker is being retried
    # ('retrying'), dead-lettered ('dead_letter') or done with parked events still to release
    # ('draining'). Later events of the aggregate wait in concord_parked, in stream order.
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_delivery_holds (
        subscriber         text        NOT NULL,
        aggregate          text        NOT NULL,
        aggregate_id       text        NOT NULL,
        state              text        NOT NULL,
        blocker_event_id   text        NOT NULL,
        blocker_stream_seq bigint      NOT NULL,
        dead_letter_id     bigint,
        attempts           integer     NOT NULL DEFAULT 0,
        last_error         text,
        since              timestamptz NOT NULL DEFAULT now(),
        updated_at         timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (subscriber, aggregate, aggregate_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_parked (
        subscriber   text        NOT NULL,
        aggregate    text        NOT NULL,
        aggregate_id text        NOT NULL,
        stream_seq   bigint      NOT NULL,
        event_id     text        NOT NULL,
        event_type   text        NOT NULL,
        version      bigint      NOT NULL,
        subject      text        NOT NULL,
        envelope     jsonb       NOT NULL,
        parked_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (subscriber, aggregate, aggregate_id, stream_seq)
    )
    """,
    # The outbox relay (adapters/nats/relay.py): the last event it published from each store
    # to each stream, written after the stream's acknowledgement. This, not the stream's
    # contents, is where the relay resumes (anyone able to publish could forge those); the
    # event id and stream sequence let it confirm the stream still holds that very message.
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_relay_published (
        stream       text        NOT NULL,
        store        text        NOT NULL,
        position     bigint      NOT NULL,
        event_id     text        NOT NULL,
        stream_seq   bigint      NOT NULL,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (stream, store)
    )
    """,
]


#: Every table, in creation order: the hub's own, then each adapter's.
ALL_TABLES = [
    *TABLES,
    *INDEX_TABLES,
    *INBOUND_TABLES,
    *MIRROR_TABLES,
    *MATCH_TABLES,
    *REVIEW_TABLES,
    *OUTBOUND_TABLES,
    *EXCEPTION_TABLES,
]


def create_schema(conn: Connection[object], schema: str) -> None:
    """Create the schema (the event-store library needs it to exist) and our tables."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        # Concurrent first starts race on CREATE SCHEMA IF NOT EXISTS; serialise them.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('concord-schema'))")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        for statement in ALL_TABLES:
            conn.execute(sql.SQL(statement).format(schema=ident))
