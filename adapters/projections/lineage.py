"""Reading the lineage projection: resolve any id to its objects, walk the connected graph,
and gather every event of it with provenance and the inbound delivery that caused it.

Why a bounded breadth-first walk of ``lineage_links`` (indexed on both ends) instead of a
stored graph per deal: links arrive from different stores in any order, so a precomputed
component would have to be merged and split as they come; walking a deal of a dozen objects
is a few index lookups per level. Customers are not walked through (every deal of a
customer would join one graph): they appear as nodes of the objects that name them, and a
walk that starts at a customer starts from its objects. ``as_of`` hides every row recorded
after it, so the graph is the one an auditor could have seen then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection, sql
from psycopg.rows import dict_row

from adapters.projections.schema import exists

MAX_NODES = 200
MAX_EVENTS = 2000
#: How far a chain of events caused by events is followed back to a delivery.
MAX_CAUSATION_HOPS = 5
#: Kinds that belong to one deal (a customer's node is shown, never walked through).
_WALKED = frozenset(
    {"opportunity", "order", "contract", "invoice", "payment", "credit_note", "refund"}
)


@dataclass
class Graph:
    matched: list[tuple[str, str]]
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


class Reader:
    """The lineage tables of one schema, read on a caller's connection."""

    def __init__(self, conn: Connection[Any], schema: str, as_of: datetime | None) -> None:
        self.conn = conn
        self.schema = schema
        self.as_of = as_of

    def built(self) -> bool:
        return exists(self.conn, self.schema, "lineage_events")

    def _rows(
        self, statement: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        tables = {
            name: sql.Identifier(self.schema, f"lineage_{name}")
            for name in ("objects", "ids", "links", "events")
        }
        query = sql.SQL(statement).format(**tables)
        with self.conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(query, params).fetchall()

    def resolve(self, key: str, system: str | None) -> list[dict[str, Any]]:
        """Objects ``key`` names: a canonical id (any kind), or any system's id of one."""
        return self._rows(
            "SELECT DISTINCT kind, object_id, system, id_type FROM ("
            "SELECT kind, object_id, 'concord' AS system, 'canonical' AS id_type "
            "FROM {objects} WHERE object_id = %(key)s AND %(system)s::text IS NULL "
            "AND (%(as_of)s::timestamptz IS NULL OR created_at <= %(as_of)s) "
            "UNION ALL SELECT kind, object_id, system, id_type FROM {ids} "
            "WHERE external_id = %(key)s AND (%(system)s::text IS NULL OR system = %(system)s) "
            "AND (%(as_of)s::timestamptz IS NULL OR seen_at <= %(as_of)s)) found "
            "ORDER BY kind, object_id, system, id_type LIMIT 50",
            {"key": key, "system": system, "as_of": self.as_of},
        )

    def graph(self, starts: list[tuple[str, str]]) -> Graph:
        graph = Graph(matched=starts)
        kinds: dict[str, str] = dict((object_id, kind) for kind, object_id in starts)
        frontier = [o for k, o in starts if k in _WALKED]
        for kind, customer in starts:
            if kind == "customer":
                frontier += self._objects_of(customer, kinds)
        edges: dict[tuple[str, str, str], dict[str, Any]] = {}
        while frontier and not graph.truncated:
            found = self._links(frontier)
            frontier = []
            for link in found:
                edges[(link["parent_id"], link["child_id"], link["relation"])] = link
                for end in ("parent", "child"):
                    object_id, kind = link[f"{end}_id"], link[f"{end}_kind"]
                    if object_id in kinds:
                        continue
                    if len(kinds) >= MAX_NODES:
                        graph.truncated = True
                        break
                    kinds[object_id] = kind
                    if kind in _WALKED:
                        frontier.append(object_id)
        graph.edges = sorted(
            (e for e in edges.values() if e["parent_id"] in kinds and e["child_id"] in kinds),
            key=lambda e: (e["linked_at"], e["parent_id"], e["child_id"], e["relation"]),
        )
        self._customers(kinds, graph)
        graph.nodes = self._nodes(kinds)
        graph.events = self._events(
            [o for o, k in kinds.items() if k not in ("credit_note", "refund")], graph
        )
        return graph

    def _objects_of(self, customer: str, kinds: dict[str, str]) -> list[str]:
        found = self._rows(
            "SELECT object_id, kind FROM {objects} WHERE customer_id = %s::uuid "
            "AND (%s::timestamptz IS NULL OR created_at <= %s) ORDER BY created_at LIMIT %s",
            (customer, self.as_of, self.as_of, MAX_NODES),
        )
        for row in found:
            kinds.setdefault(row["object_id"], row["kind"])
        return [row["object_id"] for row in found if row["kind"] in _WALKED]

    def _links(self, ids: list[str]) -> list[dict[str, Any]]:
        where = "(%(as_of)s::timestamptz IS NULL OR linked_at <= %(as_of)s)"
        columns = "parent_id, parent_kind, child_id, child_kind, relation, linked_at, event_id"
        return self._rows(
            f"SELECT {columns} FROM {{links}} WHERE parent_id = ANY(%(ids)s) AND {where} "
            f"UNION SELECT {columns} FROM {{links}} WHERE child_id = ANY(%(ids)s) AND {where}",
            {"ids": ids, "as_of": self.as_of},
        )

    def _customers(self, kinds: dict[str, str], graph: Graph) -> None:
        """The customers of the deal's objects, as nodes with a ``customer_of`` edge each."""
        rows = self._rows(
            "SELECT object_id, kind, customer_id::text AS customer_id, created_at "
            "FROM {objects} WHERE object_id = ANY(%s) AND customer_id IS NOT NULL "
            "AND kind IN ('opportunity', 'order', 'contract', 'invoice', 'payment') "
            "AND (%s::timestamptz IS NULL OR created_at <= %s) ORDER BY created_at, object_id",
            (list(kinds), self.as_of, self.as_of),
        )
        for row in rows:
            if row["customer_id"] not in kinds and len(kinds) >= MAX_NODES:
                graph.truncated = True
                continue
            kinds.setdefault(row["customer_id"], "customer")
            graph.edges.append(
                {
                    "parent_id": row["customer_id"],
                    "parent_kind": "customer",
                    "child_id": row["object_id"],
                    "child_kind": row["kind"],
                    "relation": "customer_of",
                    "linked_at": row["created_at"],
                    "event_id": None,
                }
            )

    def _nodes(self, kinds: dict[str, str]) -> list[dict[str, Any]]:
        params = (list(kinds), self.as_of, self.as_of)
        objects = self._rows(
            "SELECT object_id, kind, customer_id, parent_id, created_at, last_event_at "
            "FROM {objects} WHERE object_id = ANY(%s) "
            "AND (%s::timestamptz IS NULL OR created_at <= %s)",
            params,
        )
        ids = self._rows(
            "SELECT object_id, kind, system, external_id AS id, id_type AS type, seen_at "
            "FROM {ids} WHERE object_id = ANY(%s) "
            "AND (%s::timestamptz IS NULL OR seen_at <= %s) ORDER BY seen_at, system, external_id",
            params,
        )
        known = {(o["object_id"], o["kind"]): o for o in objects}
        nodes = []
        for object_id, kind in kinds.items():
            row = known.get((object_id, kind), {})
            nodes.append(
                {
                    "id": object_id,
                    "kind": kind,
                    "customer_id": row.get("customer_id"),
                    "parent_id": row.get("parent_id"),
                    "created_at": row.get("created_at"),
                    "last_event_at": row.get("last_event_at"),
                    "ids": [
                        {k: i[k] for k in ("system", "id", "type", "seen_at")}
                        for i in ids
                        if i["object_id"] == object_id and i["kind"] == kind
                    ],
                }
            )
        return sorted(nodes, key=lambda n: (n["created_at"] is None, n["created_at"], n["id"]))

    def _events(self, objects: list[str], graph: Graph) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT * FROM {events} WHERE object_id = ANY(%s) "
            "AND (%s::timestamptz IS NULL OR recorded_at <= %s) "
            "ORDER BY recorded_at, store, position LIMIT %s",
            (objects, self.as_of, self.as_of, MAX_EVENTS + 1),
        )
        if len(rows) > MAX_EVENTS:
            graph.truncated = True
            rows = rows[:MAX_EVENTS]
        self._deliveries(rows)
        return rows

    def _deliveries(self, rows: list[dict[str, Any]]) -> None:
        """Give each event the delivery behind it: its own, or (for an event a command
        caused by another event) the one behind the chain of causing events."""
        known = {str(r["event_id"]): r for r in rows}
        for row in rows:
            row["caused_by_event"] = _event_id(row["causation_id"])
            row["delivery_via"] = None
        hops = {
            i: row["caused_by_event"]
            for i, row in enumerate(rows)
            if row["delivery_id"] is None and row["caused_by_event"]
        }
        for _ in range(MAX_CAUSATION_HOPS):
            missing = sorted({str(c) for c in hops.values()} - set(known))
            if missing:
                for found in self._rows(
                    "SELECT event_id, causation_id, delivery_id FROM {events} "
                    "WHERE event_id = ANY(%s::uuid[])",
                    (missing,),
                ):
                    known[str(found["event_id"])] = found
            following: dict[int, UUID] = {}
            for i, cause_id in hops.items():
                cause = known.get(str(cause_id))
                if cause is None:
                    continue
                if cause["delivery_id"] is not None:
                    rows[i]["delivery_id"] = cause["delivery_id"]
                    rows[i]["delivery_via"] = cause["event_id"]
                elif (earlier := _event_id(cause["causation_id"])) is not None:
                    following[i] = earlier
            hops = following


def _event_id(causation: str | None) -> UUID | None:
    try:
        return UUID(causation) if causation and len(causation) == 36 else None
    except ValueError:
        return None
