"""The ``lineage`` projection: every business object with every system's id for it, the
links from opportunity to refund, and every event with its provenance and delivery.

Why every write is an upsert that keeps the earliest (or latest) instant: the stores are
applied each in its own order, so a link may be stated by both sides (a payment application
is an event of the payment and of the invoice) and an opportunity is seen by each of its
orders in any order. Keeping ``LEAST``/``GREATEST`` and the event with the smallest
(time, id) makes the rows the same whichever arrives first, as a rebuild must. A link never
waits for its objects: it is a fact of the event that states it, and the graph is joined
when read (``GET /v1/lineage/{id}``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

from projections.definition import Envelope, Position, Projection, Table, ViewCursor
from projections.lineage.facts import Facts, facts_of
from projections.lineage.tables import EVENTS, IDS, LINKS, OBJECTS

#: ``causation_id`` of an event an inbound delivery caused (see adapters/inbound/log.py).
DELIVERY = re.compile(r"^inbound:([0-9]{1,18})$")

_EVENT = (
    "INSERT INTO {lineage_events} (event_id, object_id, kind, type, version, store, position, "
    "recorded_at, occurred_at, source_system, source_record_id, source_event_id, "
    "correlation_id, causation_id, actor, delivery_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_OBJECT = (
    "INSERT INTO {lineage_objects} AS o (object_id, kind, customer_id, parent_id, created_at, "
    "last_event_at) VALUES (%s, %s, coalesce(%s::uuid, (SELECT p.customer_id FROM "
    "{lineage_objects} p WHERE p.object_id = %s::text LIMIT 1)), %s, %s, %s) "
    "ON CONFLICT (object_id, kind) DO UPDATE SET "
    "created_at = LEAST(o.created_at, excluded.created_at), "
    "last_event_at = GREATEST(o.last_event_at, excluded.last_event_at)"
)
_REF = (
    "INSERT INTO {lineage_ids} AS i (external_id, system, id_type, kind, object_id, seen_at) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (external_id, system, kind, object_id) "
    "DO UPDATE SET seen_at = LEAST(i.seen_at, excluded.seen_at)"
)
_LINK = (
    "INSERT INTO {lineage_links} AS l (parent_id, parent_kind, child_id, child_kind, relation, "
    "linked_at, event_id) VALUES (%s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (parent_id, child_id, relation) DO UPDATE SET "
    "linked_at = excluded.linked_at, event_id = excluded.event_id "
    "WHERE (excluded.linked_at, excluded.event_id) < (l.linked_at, l.event_id)"
)
_TOUCH = (
    "UPDATE {lineage_objects} SET last_event_at = GREATEST(last_event_at, %s) "
    "WHERE object_id = %s AND kind = %s"
)
_MOVE = (
    "UPDATE {lineage_objects} SET customer_id = %s "
    "WHERE (object_id = %s AND kind = %s) OR parent_id = %s::uuid"
)
_MOVED = ("InvoiceMovedToSurvivor", "PaymentMovedToSurvivor")


def delivery_of(causation: str | None) -> int | None:
    """The inbound delivery id a causation names (``inbound:<id>``), else None."""
    found = DELIVERY.match(causation or "")
    return int(found.group(1)) if found else None


class Lineage(Projection):
    name: ClassVar[str] = "lineage"
    title: ClassVar[str] = "Transaction lineage"
    version: ClassVar[int] = 1
    stores: ClassVar[tuple[str, ...]] = ("customers", "orders", "contracts", "invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = (OBJECTS, IDS, LINKS, EVENTS)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        recorded = datetime.fromisoformat(event["recorded_at"])
        kind, own = event["aggregate"], event["aggregate_id"]
        self._event(event, at, recorded, cursor)
        facts = facts_of(event)
        self._write(facts, event["event_id"], recorded, cursor)
        if event["version"] > 1:
            cursor.execute(_TOUCH, (recorded, own, kind))
        if event["type"] in _MOVED:
            cursor.execute(_MOVE, (event["data"]["customer_id"], own, kind, own))

    @staticmethod
    def _event(event: Envelope, at: Position, recorded: datetime, cursor: ViewCursor) -> None:
        provenance = event["provenance"]
        occurred = event.get("occurred_at")
        cursor.execute(
            _EVENT,
            (
                event["event_id"],
                event["aggregate_id"],
                event["aggregate"],
                event["type"],
                event["version"],
                at.store,
                at.position,
                recorded,
                datetime.fromisoformat(occurred) if occurred else None,
                provenance["source_system"],
                provenance.get("source_record_id"),
                provenance.get("source_event_id"),
                provenance.get("correlation_id"),
                provenance.get("causation_id"),
                provenance["actor"],
                delivery_of(provenance.get("causation_id")),
            ),
        )

    @staticmethod
    def _write(facts: Facts, event_id: str, recorded: datetime, cursor: ViewCursor) -> None:
        for node in facts.nodes:
            cursor.execute(
                _OBJECT,
                (
                    node.object_id,
                    node.kind,
                    node.customer_id,
                    node.parent_id,
                    node.parent_id,
                    recorded,
                    recorded,
                ),
            )
        for ref in facts.refs:
            row = (ref.external_id, ref.system, ref.id_type, ref.kind, ref.object_id, recorded)
            cursor.execute(_REF, row)
        for link in facts.links:
            values = (link.parent_id, link.parent_kind, link.child_id, link.child_kind)
            cursor.execute(_LINK, (*values, link.relation, recorded, event_id))
