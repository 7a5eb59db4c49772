"""Mirrors of source records, for sources that send only what changed.

Salesforce CDC sends every non-null field on CREATE but only the changed ones on UPDATE;
HubSpot property-change events carry one property. A closed-won opportunity must be
translated from *everything* that arrived for it, so each such update is merged into a
mirror of the record first, and the translator reads the merged record.

Merging is per field and order-tolerant: each field keeps the value with the greatest
``order`` (the source's own ordering key: CDC commit timestamp and sequence, HubSpot
``occurredAt``), so a late or repeated update never overwrites a newer value, and merging
the same update twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql
from psycopg.types.json import Jsonb

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_inbound_mirror (
        system     text        NOT NULL,
        object     text        NOT NULL,
        record_id  text        NOT NULL,
        fields     jsonb       NOT NULL,
        orders     jsonb       NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (system, object, record_id)
    )
    """,
]


@dataclass(frozen=True)
class MirrorUpdate:
    """Fields of one source record as one event reports them, with the event's order key
    (a string that sorts in the source's order, e.g. ``f"{commit_ms:015d}.{seq:09d}"``)."""

    object: str
    record_id: str
    fields: dict[str, Any]
    order: str


def merged(
    fields: dict[str, Any], orders: dict[str, str], update: MirrorUpdate
) -> tuple[dict[str, Any], dict[str, str]]:
    """``fields``/``orders`` with ``update`` merged in: newer (or equal) order wins per field."""
    new_fields, new_orders = dict(fields), dict(orders)
    for name, value in update.fields.items():
        if orders.get(name, "") <= update.order:
            new_fields[name] = value
            new_orders[name] = update.order
    return new_fields, new_orders


class MirrorStore:
    """``concord_inbound_mirror`` on the runtime's pool."""

    def __init__(self, datastore: PostgresDatastore, schema: str) -> None:
        self.datastore = datastore
        self.schema = sql.Identifier(schema)

    def merge(self, system: str, update: MirrorUpdate) -> dict[str, Any]:
        """Merge ``update`` into the record's mirror (row-locked) and return the record."""
        select = sql.SQL(
            "SELECT fields, orders FROM {}.concord_inbound_mirror "
            "WHERE system = %s AND object = %s AND record_id = %s FOR UPDATE"
        ).format(self.schema)
        upsert = sql.SQL(
            "INSERT INTO {}.concord_inbound_mirror (system, object, record_id, fields, orders) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (system, object, record_id) DO UPDATE "
            "SET fields = EXCLUDED.fields, orders = EXCLUDED.orders, updated_at = now()"
        ).format(self.schema)
        key = (system, update.object, update.record_id)
        with self.datastore.get_connection() as conn, conn.transaction():
            # Serialise first merges of one record too (no row to lock yet).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("mirror:" + ":".join(key),))
            row = conn.execute(select, key).fetchone()
            fields, orders = merged(
                row["fields"] if row else {}, row["orders"] if row else {}, update
            )
            conn.execute(upsert, (*key, Jsonb(fields), Jsonb(orders)))
        return fields

    def get(self, system: str, object_name: str, record_id: str) -> dict[str, Any] | None:
        query = sql.SQL(
            "SELECT fields FROM {}.concord_inbound_mirror "
            "WHERE system = %s AND object = %s AND record_id = %s"
        ).format(self.schema)
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (system, object_name, record_id)).fetchone()
        return None if row is None else dict(row["fields"])
