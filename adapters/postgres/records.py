"""The hub's small read/record ports on PostgreSQL: receipts, conflicts, cross-reference.

Each borrows connections from the one datastore (pool) the composition root built for the
stores; none opens its own. Receipts and cross-reference rows are *written* by the
committer, inside a command's transaction; here they are only read.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql
from psycopg.types.json import Jsonb

from hub.application.personal import PersonalCipher, open_view, withhold
from hub.application.ports import (
    ConflictPort,
    ConflictRecord,
    CrossReferencePort,
    Receipt,
    ReceiptPort,
)

#: The receipts table keeps the status the first answer had (rows written before the hub
#: stopped speaking HTTP hold it too): 201 for a creation, 200 otherwise.
CREATED, CHANGED = 201, 200


def receipt_status(receipt: Receipt) -> int:
    return CREATED if receipt.created else CHANGED


class _Table:
    def __init__(self, datastore: PostgresDatastore, schema: str) -> None:
        self.datastore = datastore
        self.schema = sql.Identifier(schema)


class PostgresReceipts(_Table, ReceiptPort):
    """Receipts hold personal fields sealed (the committer seals them); a replay opens
    them, so an erased customer's replay reads ``[erased]``."""

    def __init__(
        self, datastore: PostgresDatastore, schema: str, *, personal: PersonalCipher | None = None
    ) -> None:
        super().__init__(datastore, schema)
        self.personal = personal

    def find_receipt(self, client_id: str, key: str) -> Receipt | None:
        query = sql.SQL(
            "SELECT request_hash, status, body FROM {}.concord_receipts "
            "WHERE client_id = %s AND key = %s"
        ).format(self.schema)
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (client_id, key)).fetchone()
        if row is None:
            return None
        body = row["body"]
        if self.personal is not None:
            open_view(self.personal, body)
        return Receipt(client_id, key, row["request_hash"], row["status"] == CREATED, body)


class PostgresConflicts(_Table, ConflictPort):
    """A refused write is recorded with its personal values withheld (never in clear)."""

    def record_conflict(self, conflict: ConflictRecord) -> None:
        query = sql.SQL(
            "INSERT INTO {}.concord_conflicts (at, client_id, system, entity, aggregate_id, "
            "command, field, owner, payload, occurrences, lines) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(self.schema)
        with self.datastore.get_connection() as conn:
            conn.execute(
                query,
                (
                    conflict.at,
                    conflict.client_id,
                    conflict.system,
                    conflict.entity,
                    conflict.aggregate_id,
                    conflict.command,
                    conflict.field,
                    conflict.owner,
                    Jsonb(withhold(conflict.entity, conflict.payload)),
                    conflict.occurrences,
                    list(conflict.lines) or None,
                ),
            )

    def recent(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        """Recorded ownership conflicts, newest first (for the exception workbench)."""
        where = sql.SQL("WHERE status = %s") if status else sql.SQL("")
        query = sql.SQL(
            "SELECT id, at, client_id, system, entity, aggregate_id, command, field, owner, "
            "payload, status, occurrences, lines FROM {}.concord_conflicts {} "
            "ORDER BY id DESC LIMIT %s"
        ).format(self.schema, where)
        params: tuple[Any, ...] = (status, limit) if status else (limit,)
        with self.datastore.get_connection() as conn:
            return [dict(row) for row in conn.execute(query, params).fetchall()]


class PostgresCrossReference(_Table, CrossReferencePort):
    def lookup(self, system: str, entity: str, external_id: str) -> UUID | None:
        query = sql.SQL(
            "SELECT aggregate_id FROM {}.concord_xref "
            "WHERE system = %s AND entity = %s AND external_id = %s"
        ).format(self.schema)
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (system, entity, external_id)).fetchone()
        return None if row is None else UUID(str(row["aggregate_id"]))

    def external_ids(self, aggregate_id: UUID) -> list[dict[str, str]]:
        """Every system's id for one aggregate."""
        query = sql.SQL(
            "SELECT system, external_id FROM {}.concord_xref WHERE aggregate_id = %s "
            "ORDER BY system, external_id"
        ).format(self.schema)
        with self.datastore.get_connection() as conn:
            return [dict(r) for r in conn.execute(query, (aggregate_id,)).fetchall()]
