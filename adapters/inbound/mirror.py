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
        """Merge ``update`` into the record's mirror and return the record.

        One statement (one round trip): the upsert locks the row, and every ``SET``
        expression reads the row as it was, so :func:`merged`'s rule is applied in SQL, per
        field, against the stored orders. Orders compare as ``"C"`` text (code points, as
        Python compares them), never by the database's collation."""
        upsert = sql.SQL(
            "INSERT INTO {schema}.concord_inbound_mirror AS m (system, object, record_id, "
            "fields, orders) VALUES (%(system)s, %(object)s, %(record)s, %(fields)s, "
            "%(orders)s) ON CONFLICT (system, object, record_id) DO UPDATE SET "
            "fields = m.fields || (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{{}}') "
            "FROM jsonb_each(EXCLUDED.fields) e WHERE coalesce(m.orders ->> e.key, '') "
            'COLLATE "C" <= %(order)s COLLATE "C"), '
            "orders = m.orders || (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{{}}') "
            "FROM jsonb_each(EXCLUDED.orders) e WHERE coalesce(m.orders ->> e.key, '') "
            'COLLATE "C" <= %(order)s COLLATE "C"), updated_at = now() RETURNING fields'
        ).format(schema=self.schema)
        params = {
            "system": system,
            "object": update.object,
            "record": update.record_id,
            "fields": Jsonb(update.fields),
            "orders": Jsonb({name: update.order for name in update.fields}),
            "order": update.order,
        }
        with self.datastore.get_connection() as conn:
            row = conn.execute(upsert, params).fetchone()
        assert row is not None
        return dict(row["fields"])

    def get(self, system: str, object_name: str, record_id: str) -> dict[str, Any] | None:
        query = sql.SQL(
            "SELECT fields FROM {}.concord_inbound_mirror "
            "WHERE system = %s AND object = %s AND record_id = %s"
        ).format(self.schema)
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (system, object_name, record_id)).fetchone()
        return None if row is None else dict(row["fields"])
