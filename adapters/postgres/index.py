"""The aggregate index: one row per aggregate (kind, id, customer, status, version, times),
written in the same transaction as the aggregate's events, read by the list endpoints.

Why a table maintained on write rather than a scan of the event stores: listing "open
invoices of customer C changed since T" would otherwise mean loading every aggregate. The
row is replaced only by a higher version, so a group commit that writes a stale row (it
cannot: the events' primary key refuses a stale version first) could never move it back.
It holds no personal data: a list answer links to the aggregate, whose read path applies
erasure and the read policy.

Paging is keyset on ``(modified_at, id)``, oldest change first: a cursor names the last row
returned, so pages are stable while writes go on (a row changed during paging moves past
the cursor and shows up again later, never skipped), which is what a system syncing "what
changed since" needs.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from hub.domain.base import Aggregate

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_index (
        entity       text        NOT NULL,
        id           uuid        NOT NULL,
        customer_id  uuid,
        status       text,
        version      bigint      NOT NULL,
        created_at   timestamptz NOT NULL,
        modified_at  timestamptz NOT NULL,
        PRIMARY KEY (entity, id)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS concord_index_by_change
        ON {schema}.concord_index (entity, modified_at, id)
    """,
    """
    CREATE INDEX IF NOT EXISTS concord_index_by_customer
        ON {schema}.concord_index (entity, customer_id, modified_at, id)
    """,
]


class BadCursor(ValueError):
    """The cursor was not one this hub handed out (or was altered)."""


@dataclass(frozen=True)
class IndexRow:
    entity: str
    id: UUID
    customer_id: UUID | None
    status: str | None
    version: int
    created_at: datetime
    modified_at: datetime


@dataclass(frozen=True)
class ListQuery:
    entity: str
    customer_id: UUID | None = None
    status: str | None = None
    updated_since: datetime | None = None
    after: tuple[datetime, UUID] | None = None
    limit: int = 100


def customer_of(aggregate: Aggregate) -> UUID | None:
    """The customer an aggregate belongs to; for a customer, its parent (account hierarchy)."""
    value = getattr(aggregate, "customer_id", None) or getattr(
        aggregate, "parent_customer_id", None
    )
    return value if isinstance(value, UUID) else None


def index_rows(aggregates: Iterable[Aggregate]) -> list[IndexRow]:
    rows = []
    for aggregate in aggregates:
        if not aggregate.pending_events:
            continue
        status = getattr(aggregate, "status", None)
        rows.append(
            IndexRow(
                entity=aggregate.entity,
                id=aggregate.id,
                customer_id=customer_of(aggregate),
                status=None if status is None else str(status),
                version=aggregate.version,
                created_at=aggregate.created_on,
                modified_at=aggregate.modified_on,
            )
        )
    return rows


def upsert(curs: psycopg.Cursor[Any], schema: sql.Identifier, rows: Sequence[IndexRow]) -> None:
    """Insert or advance the rows (inside the caller's transaction)."""
    if not rows:
        return
    latest: dict[tuple[str, UUID], IndexRow] = {}
    for row in rows:  # one statement may not touch a row twice
        seen = latest.get((row.entity, row.id))
        if seen is None or seen.version < row.version:
            latest[(row.entity, row.id)] = row
    columns = [list(c) for c in zip(*(_values(r) for r in latest.values()), strict=True)]
    curs.execute(
        sql.SQL(
            "INSERT INTO {}.concord_index AS i (entity, id, customer_id, status, version, "
            "created_at, modified_at) SELECT * FROM unnest(%s::text[], %s::uuid[], "
            "%s::uuid[], %s::text[], %s::bigint[], %s::timestamptz[], %s::timestamptz[]) "
            "ON CONFLICT (entity, id) DO UPDATE SET customer_id = EXCLUDED.customer_id, "
            "status = EXCLUDED.status, version = EXCLUDED.version, "
            "modified_at = EXCLUDED.modified_at WHERE i.version < EXCLUDED.version"
        ).format(schema),
        columns,
    )


def _values(row: IndexRow) -> tuple[Any, ...]:
    return (
        row.entity,
        row.id,
        row.customer_id,
        row.status,
        row.version,
        row.created_at,
        row.modified_at,
    )


def select(
    conn: psycopg.Connection[Any], schema: sql.Identifier, query: ListQuery
) -> list[IndexRow]:
    """Up to ``query.limit`` rows after the cursor, oldest change first."""
    where = [sql.SQL("entity = %(entity)s")]
    params: dict[str, Any] = {"entity": query.entity, "limit": query.limit}
    if query.customer_id is not None:
        where.append(sql.SQL("customer_id = %(customer_id)s"))
        params["customer_id"] = query.customer_id
    if query.status is not None:
        where.append(sql.SQL("status = %(status)s"))
        params["status"] = query.status
    if query.updated_since is not None:
        where.append(sql.SQL("modified_at >= %(since)s"))
        params["since"] = query.updated_since
    if query.after is not None:
        where.append(sql.SQL("(modified_at, id) > (%(after_at)s, %(after_id)s)"))
        params["after_at"], params["after_id"] = query.after
    statement = sql.SQL(
        "SELECT entity, id, customer_id, status, version, created_at, modified_at "
        "FROM {}.concord_index WHERE {} ORDER BY modified_at, id LIMIT %(limit)s"
    ).format(schema, sql.SQL(" AND ").join(where))
    with conn.cursor() as curs:
        curs.execute(statement, params)
        return [IndexRow(**row) for row in curs.fetchall()]  # the datastore uses dict rows


def encode_cursor(row: IndexRow) -> str:
    """Opaque to clients: base64url of the last row's position (not a promise of format)."""
    raw = orjson.dumps([row.modified_at.isoformat(), str(row.id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, id_ = orjson.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when, UUID(id_)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as bad:
        raise BadCursor("the cursor is not one this API returned; start again without it") from bad
