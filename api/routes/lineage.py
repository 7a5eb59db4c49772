"""``GET /v1/lineage/{id}``: an object's deal graph for auditors (projection ``lineage``).

``id`` is a canonical id or any system's id (an opportunity id, an ERP order number, a
billing subscription id, an invoice or payment reference ...); the answer is every object
connected to it (each with every system's id), the links between them and every event with
its provenance, down to the inbound delivery that caused it. Read from the live lineage
tables, so it shows what BI tools see; ``as_of`` shows the graph as the hub had recorded it
by then. An id that names several objects is a 409 listing them (ask by canonical id).

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, Field
from starlette.responses import PlainTextResponse, Response

from adapters.projections.lineage_graph import MAX_EVENTS, MAX_NODES, Graph, LineageReader
from api import lineage_text
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.routes import any_id
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

Kind = Literal[
    "customer", "opportunity", "order", "contract", "invoice", "payment", "refund", "credit_note"
]


class SystemId(BaseModel):
    system: str = Field(description="crm, erp, billing, api, hub, or concord (canonical id).")
    id: str


class NodeModel(BaseModel):
    kind: Kind
    id: str = Field(description="Canonical id (an opportunity: the CRM's id).")
    ids: list[SystemId] = Field(description="Every id the systems have for it.")


class EdgeModel(BaseModel):
    from_kind: Kind
    from_id: str = Field(description="The earlier object (order of a contract ...).")
    to_kind: Kind
    to_id: str = Field(description="The object that came from it.")
    event_id: str = Field(description="The event that made the link.")


class EventModel(BaseModel):
    event_id: str
    kind: str
    object_id: str
    type: str = Field(description="The event type, or OperatorAction (actor: who acted).")
    version: int
    recorded_at: datetime
    occurred_at: datetime | None
    store: str
    position: int
    source_system: str
    source_record_id: str | None
    source_event_id: str | None = Field(description="The inbound delivery's event id.")
    correlation_id: str | None
    causation_id: str | None
    actor: str
    caused_by_event: str | None = Field(
        description="The event whose command caused this one (its causation_id), if any."
    )
    delivery_id: int | None = Field(
        description="The inbound delivery behind it: named by causation_id inbound:<id>, or "
        "behind the chain of events that caused it."
    )
    delivery_via: str | None = Field(
        description="When the delivery caused an earlier event of that chain: that event."
    )
    delivery: str | None = Field(description="The delivery's URL: /v1/inbound/<id>.")
    action: str | None = Field(
        None, description="OperatorAction: what an operator did (the exception workbench)."
    )
    reason: str | None = Field(None, description="OperatorAction: the item's reason.")
    note: str | None = Field(None, description="OperatorAction: the operator's note.")
    exception_id: str | None = Field(None, description="OperatorAction: the workbench item.")


class LineageModel(BaseModel):
    id: str = Field(description="The id asked for.")
    root: NodeModel = Field(description="The object it names.")
    as_of: datetime | None
    truncated: bool = Field(
        description=f"The graph was cut at {MAX_NODES} nodes or {MAX_EVENTS} events."
    )
    nodes: list[NodeModel]
    edges: list[EdgeModel]
    events: list[EventModel] = Field(description="Oldest first (recorded_at, store, position).")


def _body(asked: str, graph: Graph, as_of: datetime | None) -> dict[str, Any]:
    nodes = [{"kind": k, "id": i, "ids": ids} for (k, i), ids in graph.nodes.items()]
    return {
        "id": asked,
        "root": nodes[0],
        "as_of": as_of,
        "truncated": graph.truncated,
        "nodes": nodes,
        "edges": graph.edges,
        "events": [
            {
                **e,
                "delivery": None if e["delivery_id"] is None else f"/v1/inbound/{e['delivery_id']}",
            }
            for e in graph.events
        ],
    }


def _not_found(asked: str) -> ProblemError:
    return ProblemError(404, "not-found", f"no object has the id {asked!r} (yet)")


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["lineage"])
    reader = require("read")
    schema = runtime.settings.schema_name
    text = {"text/plain": {"schema": {"type": "string"}}}

    @router.get(
        "/lineage/{id}",
        response_model=LineageModel,
        response_class=JSONBytes,
        operation_id="lineage_get",
        responses={
            200: {"content": text, "description": "The graph (text for dot and mermaid)."},
            **problems(401, 403, 404, 409, 422),
        },
        summary="Lineage: the deal graph of an object, with every id and event",
    )
    def lineage(
        caller: Annotated[Caller, Depends(reader)],
        id: Annotated[
            str,
            any_id(
                "A canonical id or any system's id. 409 if it names several "
                "objects (the problem lists them)."
            ),
        ],
        as_of: Annotated[
            AwareDatetime | None,
            Query(
                description="Only events recorded at or before this instant (RFC 3339 with "
                "offset), and the objects and links they had made; 404 if the object did not "
                "exist yet."
            ),
        ] = None,
        format: Annotated[
            Literal["json", "dot", "mermaid"],
            Query(description="json, or the graph as Graphviz DOT or a Mermaid flowchart."),
        ] = "json",
    ) -> Response:
        with runtime.connection() as conn:
            view = LineageReader(conn, schema, as_of)
            if not view.built():
                raise _not_found(id)
            found = view.candidates(id)
            if not found:
                raise _not_found(id)
            if len(found) > 1:
                names = [f"{c.kind} {c.id} ({c.system} id)" for c in found]
                errors = [{"field": "path.id", "message": n, "type": "ambiguous-id"} for n in names]
                detail = f"the id {id!r} names {len(found)} objects: {'; '.join(names)}"
                raise ProblemError(409, "ambiguous-id", detail, errors=errors)
            graph = view.graph((found[0].kind, found[0].id))
        if format == "dot":
            return PlainTextResponse(lineage_text.dot(graph))
        if format == "mermaid":
            return PlainTextResponse(lineage_text.mermaid(graph))
        return JSONBytes(_body(id, graph, as_of))

    return router
