"""Tables of the outbound side and the process manager that are not read models: the call
budget per target, observe-only deliveries, and what the process dispatcher executed.

Kept as DDL text beside the hub's other tables so one ``create_schema`` makes them all;
their owners (adapters/connectors/budget.py, observe.py, adapters/process/dispatcher.py)
explain what they hold.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection, sql

OUTBOUND_TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_target_slots (
        target     text        NOT NULL,
        slot       int         NOT NULL,
        holder     text,
        expires_at timestamptz,
        PRIMARY KEY (target, slot)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_target_rates (
        target     text             PRIMARY KEY,
        tokens     double precision NOT NULL,
        updated_at timestamptz      NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_observed_deliveries (
        target       text        NOT NULL,
        event_id     text        NOT NULL,
        event_type   text        NOT NULL,
        aggregate    text        NOT NULL,
        aggregate_id text        NOT NULL,
        envelope     jsonb       NOT NULL,
        observed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (target, event_id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_q2c_dispatch (
        command_id text        PRIMARY KEY,
        status     text        NOT NULL,
        attempts   int         NOT NULL DEFAULT 1,
        error      text,
        next_at    timestamptz,
        done_at    timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS concord_q2c_dispatch_due
        ON {schema}.concord_q2c_dispatch (next_at) WHERE status = 'retrying'
    """,
]


def create_outbound_tables(conn: Connection[Any], schema: str) -> None:
    """The tables above on ``conn`` (sync psycopg connection)."""
    for statement in OUTBOUND_TABLES:
        conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema)))
