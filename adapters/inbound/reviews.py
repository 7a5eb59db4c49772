"""The match review queue: source customers that might be one Concord already knows.

An uncertain match (``adapters.inbound.matching``) must not create a duplicate and must not
link on a guess: the delivery is held and a review is opened. A person decides (``GET
/v1/matches``, then ``link``, ``new`` or ``merge``); the decision releases the held
delivery, which is translated again and follows it. Merges keep both lineages: the merged
customer's events stay, and it points at its survivor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.inbound.model import Ref

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_matches (
        id           bigserial   PRIMARY KEY,
        source       text        NOT NULL,
        external_id  text        NOT NULL,
        delivery_id  bigint,
        candidates   jsonb       NOT NULL,
        status       text        NOT NULL DEFAULT 'pending',
        customer_id  uuid,
        decided_by   text,
        decided_at   timestamptz,
        created_at   timestamptz NOT NULL DEFAULT now(),
        UNIQUE (source, external_id)
    )
    """,
]

#: ``Ref.system`` of a delivery held for a review (``external_id`` is ``source:id``).
REVIEW = "review"


def review_ref(source: str, external_id: str) -> Ref:
    return Ref(REVIEW, "customer", f"{source}:{external_id}")


@dataclass(frozen=True)
class Review:
    id: int
    source: str
    external_id: str
    delivery_id: int | None
    candidates: list[dict[str, Any]]
    status: str  # pending / linked / new
    customer_id: UUID | None
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "external_id": self.external_id,
            "delivery_id": self.delivery_id,
            "candidates": self.candidates,
            "status": self.status,
            "customer_id": None if self.customer_id is None else str(self.customer_id),
            "decided_by": self.decided_by,
            "decided_at": None if self.decided_at is None else self.decided_at.isoformat(),
            "created_at": self.created_at.isoformat(),
        }


def _review(row: Mapping[str, Any]) -> Review:
    return Review(**{k: row[k] for k in Review.__dataclass_fields__})


class ReviewQueue:
    """``concord_matches`` on the runtime's pool."""

    def __init__(self, datastore: PostgresDatastore, schema: str) -> None:
        self.datastore = datastore
        self.schema = sql.Identifier(schema)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=self.schema)

    def open(
        self,
        source: str,
        external_id: str,
        delivery_id: int,
        candidates: list[tuple[UUID, str]],
    ) -> None:
        """Open (or refresh, while pending) the review of a source record."""
        listed = [{"customer_id": str(c), "reason": reason} for c, reason in candidates]
        query = self._sql(
            "INSERT INTO {schema}.concord_matches (source, external_id, delivery_id, "
            "candidates) VALUES (%s, %s, %s, %s) ON CONFLICT (source, external_id) DO UPDATE "
            "SET candidates = EXCLUDED.candidates, delivery_id = EXCLUDED.delivery_id "
            "WHERE concord_matches.status = 'pending'"
        )
        with self.datastore.get_connection() as conn:
            conn.execute(query, (source, external_id, delivery_id, Jsonb(listed)))

    def decision(self, source: str, external_id: str) -> Review | None:
        """The decided review of this record, if a person decided."""
        query = self._sql(
            "SELECT * FROM {schema}.concord_matches WHERE source = %s AND external_id = %s "
            "AND status <> 'pending'"
        )
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (source, external_id)).fetchone()
        return None if row is None else _review(row)

    def get(self, review_id: int) -> Review | None:
        query = self._sql("SELECT * FROM {schema}.concord_matches WHERE id = %s")
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (review_id,)).fetchone()
        return None if row is None else _review(row)

    def list(self, status: str | None, after_id: int, limit: int) -> list[Review]:
        where = "id > %s"
        params: list[Any] = [after_id]
        if status is not None:
            where += " AND status = %s"
            params.append(status)
        query = self._sql(
            f"SELECT * FROM {{schema}}.concord_matches WHERE {where} ORDER BY id LIMIT %s"
        )
        with self.datastore.get_connection() as conn:
            return [_review(r) for r in conn.execute(query, (*params, limit)).fetchall()]

    def decide(
        self, review_id: int, status: str, customer_id: UUID | None, actor: str
    ) -> Review | None:
        """Record a person's decision; None when the review is not pending (any more)."""
        query = self._sql(
            "UPDATE {schema}.concord_matches SET status = %s, customer_id = %s, "
            "decided_by = %s, decided_at = now() WHERE id = %s AND status = 'pending' "
            "RETURNING *"
        )
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (status, customer_id, actor, review_id)).fetchone()
        return None if row is None else _review(row)
