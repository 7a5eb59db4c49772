"""``GET /v1/lineage/{id}``: the whole transaction graph around any id, for auditors.

Any canonical id (customer, order, contract, invoice, payment, a credit note's or refund's
event id) or any system's id (CRM opportunity id, ERP order or document number, billing
subscription id, invoice source number, payment or refund reference, credit note number)
finds its object; the answer is every object connected to it (opportunity to order to
contracts, invoices, payments, refunds and credit notes), with all their system ids, the
links, and every event with its provenance and the inbound delivery that caused it.

An id that names several objects of one graph (a CRM opportunity id is also its order's
source record id) answers that graph; one that names objects of different graphs is
ambiguous: 409 with the candidates listed (``?system=`` narrows it), never a guess.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, Field
from starlette.responses import PlainTextResponse, Response

from adapters.projections.lineage import MAX_EVENTS, MAX_NODES, Graph, Reader
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.service import Caller
from projections.lineage.render import dot, mermaid

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

MAX_ID_LENGTH = 255
DOT_MEDIA_TYPE = "text/vnd.graphviz"
Kind = Literal[
    "customer", "opportunity", "order", "contract", "invoice", "payment", "credit_note", "refund"
]


class SystemIdModel(BaseModel):
    system: str = Field(description="crm, erp, billing, api or hub.")
    id: str
    type: str = Field(description="What the id is (lineage_ids.id_type).")
    seen_at: datetime


class NodeModel(BaseModel):
    id: str = Field(description="Canonical id (an opportunity: its CRM id).")
    kind: Kind
    customer_id: UUID | None
    parent_id: UUID | None = Field(description="A credit note's invoice, a refund's payment.")
    created_at: datetime | None = Field(description="Null for an object only linked to yet.")
    last_event_at: datetime | None
    ids: list[SystemIdModel] = Field(description="Every system's id of the object.")


class EdgeModel(BaseModel):
    parent_id: str
    parent_kind: Kind
    child_id: str
    child_kind: Kind
    relation: str = Field(
        description="placed_from, contracted, invoiced, paid_by, credited, refunded, "
        "merged_into or customer_of."
    )
    linked_at: datetime
    event_id: UUID | None = Field(description="The event that stated the link.")


class ProvenanceModel(BaseModel):
    source_system: str
    source_record_id: str | None
    source_event_id: str | None
    correlation_id: str | None
    causation_id: str | None
    actor: str
    occurred_at: datetime | None


class EventModel(BaseModel):
    event_id: UUID
    object_id: str
    kind: Kind
    type: str
    version: int
    store: str
    position: int
    recorded_at: datetime
    provenance: ProvenanceModel
    caused_by_event: UUID | None = Field(description="The event whose command caused it.")
    delivery_id: int | None = Field(description="The inbound delivery behind it, if any.")
    delivery_via: UUID | None = Field(
        description="When the delivery caused an earlier event of its causation chain: that one."
    )
    delivery: str | None = Field(description="Link to the delivery: /v1/inbound/<id>.")


class MatchModel(BaseModel):
    kind: Kind
    object_id: str


class LineageGraph(BaseModel):
    id: str = Field(description="The id asked for.")
    as_of: datetime | None
    matched: list[MatchModel] = Field(description="The object(s) the id names.")
    nodes: list[NodeModel] = Field(description=f"At most {MAX_NODES}.")
    edges: list[EdgeModel]
    events: list[EventModel] = Field(description=f"At most {MAX_EVENTS}, oldest first.")
    truncated: bool = Field(description="True when the node or event cap cut the graph.")
    limits: dict[str, int] = Field(description="The caps: nodes and events.")


_PROVENANCE = (
    "source_system",
    "source_record_id",
    "source_event_id",
    "correlation_id",
    "causation_id",
    "actor",
    "occurred_at",
)


def _event(row: dict[str, Any]) -> dict[str, Any]:
    delivery = row["delivery_id"]
    return {
        **{k: row[k] for k in ("event_id", "object_id", "kind", "type", "version", "store")},
        "position": row["position"],
        "recorded_at": row["recorded_at"],
        "provenance": {k: row[k] for k in _PROVENANCE},
        "caused_by_event": row["caused_by_event"],
        "delivery_id": delivery,
        "delivery_via": row["delivery_via"],
        "delivery": None if delivery is None else f"/v1/inbound/{delivery}",
    }


def _body(key: str, as_of: datetime | None, graph: Graph) -> dict[str, Any]:
    return {
        "id": key,
        "as_of": as_of,
        "matched": [{"kind": k, "object_id": o} for k, o in graph.matched],
        "nodes": graph.nodes,
        "edges": graph.edges,
        "events": [_event(row) for row in graph.events],
        "truncated": graph.truncated,
        "limits": {"nodes": MAX_NODES, "events": MAX_EVENTS},
    }


def _graph(store: Reader, key: str, system: str | None) -> Graph:
    """The graph of the object(s) ``key`` names. Several objects are one answer when they
    are of one graph (an opportunity id is also its order's source record id); objects of
    different graphs are ambiguous (409 listing them), never a guess."""
    found = store.resolve(key, system)
    objects = sorted({(row["kind"], row["object_id"]) for row in found})
    if not objects:
        raise ProblemError(404, "not-found", f"no object has the id {key!r}")
    graph = store.graph(objects[:1])
    reached = {node["id"] for node in graph.nodes}
    if all(object_id in reached for _, object_id in objects):
        graph.matched = objects
        return graph
    candidates = [
        {
            "field": "path.id",
            "message": f"{r['system']} {r['id_type']} of {r['kind']} {r['object_id']}",
        }
        for r in found
    ]
    raise ProblemError(
        409,
        "ambiguous-id",
        f"{key!r} names objects of {len(objects)} different graphs; pass ?system= or a "
        "canonical id",
        errors=candidates,
    )


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["lineage"])
    reader = require("read")
    schema = runtime.settings.schema_name
    text = {"schema": {"type": "string"}}

    @router.get(
        "/lineage/{id}",
        response_model=LineageGraph,
        response_class=JSONBytes,
        operation_id="lineage_get",
        responses={
            200: {"content": {DOT_MEDIA_TYPE: text, "text/plain": text}},
            **problems(401, 403, 404, 409, 422),
        },
        summary="The transaction graph around any id: objects, every system id, events",
        description="`id`: a canonical id of any kind or any system's id of an object. "
        "409 `ambiguous-id` lists the candidates when an id names objects of different "
        "graphs (narrow with `system`). `format=dot` answers text/vnd.graphviz, `format=mermaid` "
        "text/plain.",
    )
    def lineage(
        caller: Annotated[Caller, Depends(reader)],
        id: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)],
        as_of: Annotated[
            AwareDatetime | None,
            Query(description="RFC 3339 with offset: the graph as recorded at that instant."),
        ] = None,
        format: Annotated[
            Literal["json", "dot", "mermaid"], Query(description="json (default), dot, mermaid.")
        ] = "json",
        system: Annotated[
            Literal["crm", "erp", "billing", "api", "hub"] | None,
            Query(description="Only external ids of this system (not canonical ids)."),
        ] = None,
    ) -> Response:
        with runtime.connection() as conn:
            store = Reader(conn, schema, as_of)
            if not store.built():
                raise ProblemError(404, "not-found", f"no object has the id {id!r}")
            graph = _graph(store, id, system)
        if format == "dot":
            return PlainTextResponse(dot(graph.nodes, graph.edges), media_type=DOT_MEDIA_TYPE)
        if format == "mermaid":
            return PlainTextResponse(mermaid(graph.nodes, graph.edges))
        return JSONBytes(_body(id, as_of, graph))

    return router
