"""Concord's own tables beside the event stores: idempotency receipts, the cross-reference
of external ids, and ownership conflicts. Created idempotently at start-up.

They live in the same schema (and database) as the per-aggregate event tables so a
command's events, its receipt and its cross-reference rows commit in one transaction.
"""

from __future__ import annotations

from psycopg import Connection, sql

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
]


def create_schema(conn: Connection[object], schema: str) -> None:
    """Create the schema (the event-store library needs it to exist) and our tables."""
    ident = sql.Identifier(schema)
    with conn.transaction():
        # Concurrent first starts race on CREATE SCHEMA IF NOT EXISTS; serialise them.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('concord-schema'))")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        for statement in TABLES:
            conn.execute(sql.SQL(statement).format(schema=ident))
