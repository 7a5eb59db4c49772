"""Period close: ``concord close 2026-01`` freezes a month's finance figures.

Why a table of the hub rather than of the metrics projection: a close is a decision people
took (finance signed the month off), not something derived from events, so a rebuild of the
metrics view must never drop or rewrite it. The frozen rows are a copy of ``metrics_monthly``
for that month (per currency, customer and contract), taken in the same transaction that
records the close, so the figures are exactly what the view said at that instant.

A later event that changes a closed month (a backdated credit note, a payment applied late)
changes the live view; the report for that month keeps the frozen figures and shows the
difference as an **adjustment** (live - frozen), never a silent restatement.

A month can be closed once, and only when the metrics projection has applied every event
committed so far (otherwise the frozen figures would miss what is still in flight).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import sql

from adapters.projections.schema import exists
from adapters.projections.status import projection_status
from projections.definition import Projection

MEASURES = ("bookings", "acv", "billings", "cash", "recognised", "deferred", "receivables")

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_period_closes (
        month      date        PRIMARY KEY,
        closed_at  timestamptz NOT NULL DEFAULT now(),
        closed_by  text        NOT NULL,
        note       text
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_period_close_figures (
        month        date    NOT NULL REFERENCES {schema}.concord_period_closes (month),
        currency     text    NOT NULL,
        customer_id  uuid,
        contract_id  uuid,
        bookings     numeric NOT NULL,
        acv          numeric NOT NULL,
        billings     numeric NOT NULL,
        cash         numeric NOT NULL,
        recognised   numeric NOT NULL,
        deferred     numeric NOT NULL,
        receivables  numeric NOT NULL
    )
    """,
]


class CloseRefused(Exception):
    """The month cannot be closed now; the message says why and what to do."""


@dataclass(frozen=True)
class Closed:
    month: date
    closed_at: datetime
    closed_by: str
    rows: int


def create_tables(conn: psycopg.Connection[Any], schema: str) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('concord-period-close-ddl'))")
        for statement in TABLES:
            conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema)))


def close_month(
    conn: psycopg.Connection[Any],
    schema: str,
    metrics: Projection,
    month: date,
    actor: str,
    note: str | None = None,
) -> Closed:
    """Freeze ``month`` (its first day) as the metrics view shows it now."""
    (status,) = projection_status(conn, schema, [metrics])
    if status.version is None or not exists(conn, schema, "metrics_monthly"):
        raise CloseRefused(
            "the metrics projection has never run: start `concord serve` or run "
            "`concord projections run` first"
        )
    behind = sum(s.lag_events for s in status.stores)
    if status.state == "failed" or behind:
        raise CloseRefused(
            f"the metrics projection is {status.state} with {behind} event(s) not applied "
            "yet: let it catch up (`concord projections status`), then close"
        )
    create_tables(conn, schema)
    ident = sql.Identifier(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('concord-period-close'))")
        taken = conn.execute(
            sql.SQL(
                "SELECT closed_at, closed_by FROM {}.concord_period_closes WHERE month = %s"
            ).format(ident),
            (month,),
        ).fetchone()
        if taken is not None:
            raise CloseRefused(
                f"{month:%Y-%m} was closed at {taken[0]:%Y-%m-%d %H:%M} by {taken[1]}: a closed "
                "month stays frozen; later changes show as adjustments"
            )
        row = conn.execute(
            sql.SQL(
                "INSERT INTO {}.concord_period_closes (month, closed_by, note) "
                "VALUES (%s, %s, %s) RETURNING closed_at"
            ).format(ident),
            (month, actor, note),
        ).fetchone()
        assert row is not None
        columns = sql.SQL(", ").join(
            sql.Identifier(c)
            for c in ("month", "currency", "customer_id", "contract_id", *MEASURES)
        )
        copied = conn.execute(
            sql.SQL(
                "INSERT INTO {}.concord_period_close_figures ({}) SELECT {} FROM {} "
                "WHERE month = %s"
            ).format(ident, columns, columns, sql.Identifier(schema, "metrics_monthly")),
            (month,),
        ).rowcount
    return Closed(month, row[0], actor, copied)


def closed_months(conn: psycopg.Connection[Any], schema: str, first: date, last: date) -> set[date]:
    if not exists(conn, schema, "concord_period_closes"):
        return set()
    rows = conn.execute(
        sql.SQL("SELECT month FROM {}.concord_period_closes WHERE month BETWEEN %s AND %s").format(
            sql.Identifier(schema)
        ),
        (first, last),
    ).fetchall()
    return {r[0] for r in rows}
