"""Reading the lineage view: resolve any system's id to an object, then walk its links.

Why the graph is assembled here rather than stored: the projection writes only facts
(ids, links, events) so that every interleaving of its stores converges (see
``projections.lineage``); a deal's graph is whatever those facts connect, optionally as
they stood at an instant (``as_of``: only rows made by events recorded by then).

Why customers are not walked through: every object of a customer links to it, so walking
through a customer would turn one deal's lineage into the customer's whole history; a
customer is a node of the graph (with its ids) but the walk continues from it only when it
is where the lookup started, or a customer merged with one the walk continues from (a
customer-to-customer link is a merge: the duplicate and its survivor are one customer, so a
lookup by the duplicate's ids reaches the survivor's graph). The walk is bounded (nodes and
events), and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from psycopg import Connection, sql

from adapters.exceptions.history import actions_on_objects
from adapters.projections.schema import exists

Node = tuple[str, str]
"""(kind, id) of an object."""

MAX_NODES = 500
MAX_EVENTS = 5000
#: How many events a chain of events caused by events is followed back to a delivery.
MAX_CAUSATION_HOPS = 5
#: ``causation_id`` of an event an inbound delivery caused (see adapters/inbound/log.py).
DELIVERY = re.compile(r"^inbound:([0-9]{1,18})$")
EVENT_COLUMNS = (
    "event_id",
    "kind",
    "object_id",
    "type",
    "version",
    "recorded_at",
    "occurred_at",
    "store",
    "position",
    "source_system",
    "source_record_id",
    "source_event_id",
    "correlation_id",
    "causation_id",
    "actor",
)


@dataclass(frozen=True)
class Candidate:
    system: str
    external_id: str
    kind: str
    id: str


@dataclass
class Graph:
    root: Node
    nodes: dict[Node, list[dict[str, str]]] = field(default_factory=dict)
    edges: list[dict[str, str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False


class LineageReader:
    """Queries over the live lineage tables of one schema, on the caller's connection."""

    def __init__(self, conn: Connection[Any], schema: str, as_of: datetime | None) -> None:
        self.conn = conn
        self.schema = schema
        self.as_of = as_of

    def built(self) -> bool:
        return all(
            exists(self.conn, self.schema, t)
            for t in ("lineage_ids", "lineage_links", "lineage_events")
        )

    def _rows(
        self, table: str, select: str, where: str, params: list[Any], tail: str = ""
    ) -> list[Any]:
        """``SELECT select FROM table WHERE where`` (and, as of an instant, only rows made
        by then), then ``tail`` (ORDER BY/LIMIT, its parameters last in ``params``)."""
        condition = where
        if self.as_of is not None:
            condition += " AND recorded_at <= %s"
            params = [*params[: where.count("%s")], self.as_of, *params[where.count("%s") :]]
        query = sql.SQL("SELECT {} FROM {} WHERE {} {}").format(
            sql.SQL(select), sql.Identifier(self.schema, table), sql.SQL(condition), sql.SQL(tail)
        )
        return self.conn.execute(query, params).fetchall()

    def candidates(self, external_id: str) -> list[Candidate]:
        """Every object some system (or Concord) calls ``external_id``."""
        rows = self._rows(
            "lineage_ids",
            "system, external_id, kind, object_id",
            "external_id = %s",
            [external_id],
        )
        first = {(r[2], r[3]): Candidate(*r) for r in sorted(rows, reverse=True)}
        return sorted(first.values(), key=lambda c: (c.kind, c.id))

    def graph(self, root: Node, max_nodes: int = MAX_NODES, max_events: int = MAX_EVENTS) -> Graph:
        graph = Graph(root)
        graph.nodes[root] = []
        frontier = [root]
        seen_edges: set[tuple[Node, Node]] = set()
        while frontier:
            wanted = set(frontier)
            ids = sorted({n[1] for n in frontier})
            rows = self._rows(
                "lineage_links",
                "child_kind, child_id, parent_kind, parent_id, event_id",
                "(child_id = ANY(%s) OR parent_id = ANY(%s))",
                [ids, ids],
            )
            frontier = []
            for child_kind, child_id, parent_kind, parent_id, event_id in sorted(rows):
                child, parent = (child_kind, child_id), (parent_kind, parent_id)
                if child not in wanted and parent not in wanted:
                    continue
                merge = child_kind == parent_kind == "customer"
                for node in (child, parent):
                    if node in graph.nodes:
                        continue
                    if len(graph.nodes) >= max_nodes:
                        graph.truncated = True
                        continue
                    graph.nodes[node] = []
                    if node[0] != "customer" or merge:
                        frontier.append(node)
                known = child in graph.nodes and parent in graph.nodes
                if known and (child, parent) not in seen_edges:
                    seen_edges.add((child, parent))
                    graph.edges.append(_edge(child, parent, event_id))
        self._fill(graph, max_events)
        return graph

    def _fill(self, graph: Graph, max_events: int) -> None:
        """The nodes' ids and the events of their aggregates (oldest first, bounded)."""
        ids = sorted({n[1] for n in graph.nodes})
        for system, external_id, kind, object_id in sorted(
            self._rows(
                "lineage_ids",
                "system, external_id, kind, object_id",
                "object_id = ANY(%s)",
                [ids],
            )
        ):
            if (kind, object_id) in graph.nodes:
                graph.nodes[(kind, object_id)].append({"system": system, "id": external_id})
        rows = self._rows(
            "lineage_events",
            ", ".join(EVENT_COLUMNS),
            "object_id = ANY(%s)",
            [ids, max_events + 1],
            "ORDER BY recorded_at, store, position LIMIT %s",
        )
        if len(rows) > max_events:
            graph.truncated = True
            rows = rows[:max_events]
        for row in rows:
            event = dict(zip(EVENT_COLUMNS, row, strict=True))
            if (event["kind"], event["object_id"]) in graph.nodes:
                graph.events.append(event)
        self._deliveries(graph.events)
        self._operator_actions(graph)

    def _operator_actions(self, graph: Graph) -> None:
        """What operators did on the graph's objects (the exception workbench), as
        ``OperatorAction`` events among the others: on an object by its canonical id or any
        system's id, or on an inbound delivery that caused one of the graph's events."""
        owner: dict[tuple[str, str], Node] = {}
        for node, ids in graph.nodes.items():
            owner[node] = node
            for known in ids:
                owner.setdefault((node[0], known["id"]), node)
        for event in graph.events:
            if event.get("delivery_id") is not None:
                node = (event["kind"], event["object_id"])
                owner.setdefault(("delivery", str(event["delivery_id"])), node)
        found = actions_on_objects(self.conn, self.schema, (key[1] for key in owner), self.as_of)
        added = [
            operator_event(action, owner[key])
            for action in found
            if (key := (action["object_kind"], action["object_id"])) in owner
        ]
        if added:
            graph.events = sorted([*graph.events, *added], key=lambda e: e["recorded_at"])

    def _deliveries(self, events: list[dict[str, Any]]) -> None:
        """Each event's inbound delivery: named by its causation (``inbound:<id>``), or, for
        an event a command caused by another event (a process manager's step), the delivery
        behind that chain of events (``delivery_via`` names the event it caused)."""
        known: dict[str, tuple[str | None, int | None]] = {}
        for event in events:
            event["caused_by_event"] = event_cause(event["causation_id"])
            event["delivery_id"] = delivery_of(event["causation_id"])
            event["delivery_via"] = None
            known[str(event["event_id"])] = (event["causation_id"], event["delivery_id"])
        hops = {
            i: e["caused_by_event"]
            for i, e in enumerate(events)
            if e["delivery_id"] is None and e["caused_by_event"]
        }
        for _ in range(MAX_CAUSATION_HOPS):
            missing = sorted({c for c in hops.values() if c not in known})
            if missing:
                for event_id, causation in self._rows(
                    "lineage_events",
                    "event_id, causation_id",
                    "event_id = ANY(%s::uuid[])",
                    [missing],
                ):
                    known[str(event_id)] = (causation, delivery_of(causation))
            following: dict[int, str] = {}
            for i, cause in hops.items():
                causation, delivery = known.get(cause, (None, None))
                if delivery is not None:
                    events[i]["delivery_id"], events[i]["delivery_via"] = delivery, cause
                elif (earlier := event_cause(causation)) is not None:
                    following[i] = earlier
            hops = following


def operator_event(action: dict[str, Any], node: Node) -> dict[str, Any]:
    """A recorded workbench action as an event of ``node`` in the lineage."""
    delivery = int(action["object_id"]) if action["object_kind"] == "delivery" else None
    return {
        "event_id": str(uuid5(NAMESPACE_URL, f"concord:operator-action:{action['id']}")),
        "kind": node[0],
        "object_id": node[1],
        "type": "OperatorAction",
        "version": 0,
        "recorded_at": action["at"],
        "occurred_at": action["at"],
        "store": "concord_exception_actions",
        "position": action["id"],
        "source_system": "concord",
        "source_record_id": action["exception_id"],
        "source_event_id": None,
        "correlation_id": None,
        "causation_id": None,
        "actor": action["actor"],
        "caused_by_event": None,
        "delivery_id": delivery,
        "delivery_via": None,
        "action": action["action"],
        "reason": action["reason"],
        "note": action["note"],
        "exception_id": action["exception_id"],
    }


def delivery_of(causation: str | None) -> int | None:
    """The inbound delivery id a causation names (``inbound:<id>``), else None."""
    found = DELIVERY.match(causation or "")
    return int(found.group(1)) if found else None


def event_cause(causation: str | None) -> str | None:
    """The causation as an event id (a canonical event's uuid), else None."""
    if not causation or len(causation) != 36:
        return None
    try:
        return str(UUID(causation))
    except ValueError:
        return None


def _edge(child: Node, parent: Node, event_id: Any) -> dict[str, str]:
    return {
        "from_kind": parent[0],
        "from_id": parent[1],
        "to_kind": child[0],
        "to_id": child[1],
        "event_id": str(event_id),
    }
