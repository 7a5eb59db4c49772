"""List and search endpoints (``GET /v1/<kind>``) and the API's index of links (``GET /v1``).

Why a separate module: queries.py reads one aggregate; these read the aggregate index
(``adapters.postgres.index``), kept in the same transaction as the events, with keyset
paging. Answers carry links, not state: a client follows ``url`` to the aggregate, whose
read path applies erasure and the read policy in one place.

No ``from __future__ import annotations``: FastAPI must resolve the route annotations,
which use values of the builder (the key dependency, each kind's status type).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime
from starlette.responses import Response

from adapters.postgres.index import BadCursor, IndexRow, ListQuery, decode_cursor, encode_cursor
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.routes import plural
from api.routes.queries import entities
from api.schemas import AggregateList, ApiIndex
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

MAX_LIMIT = 500
#: Cursors are base64url; the bound keeps a forged one from costing anything to refuse.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"


def _status_type(runtime: "Runtime", entity: str) -> Any:
    """The kind's own status enum, so OpenAPI lists the values a filter can take."""
    field = runtime.hub.aggregates[entity].model_fields.get("status")
    return str if field is None or field.annotation is None else field.annotation


def _item(row: IndexRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "entity": row.entity,
        "version": row.version,
        "customer_id": None if row.customer_id is None else str(row.customer_id),
        "status": row.status,
        "created_at": row.created_at,
        "modified_at": row.modified_at,
        "url": f"/v1/{plural(row.entity)}/{row.id}",
    }


def _list_route(runtime: "Runtime", entity: str, reader: Any) -> Callable[..., Response]:
    status_type = _status_type(runtime, entity)
    whose = (
        "Only children of this customer (its `parent_customer_id`)."
        if entity == "customer"
        else f"Only {plural(entity)} of this customer."
    )

    def list_aggregates(
        request: Request,
        caller: Annotated[Caller, Depends(reader)],
        customer_id: Annotated[UUID | None, Query(description=whose)] = None,
        # The kind's enum, chosen at run time (mypy cannot see a type in a variable).
        status: Annotated[
            status_type | None,  # type: ignore[valid-type]
            Query(description="Only in this status."),
        ] = None,
        updated_since: Annotated[
            AwareDatetime | None,
            Query(description="Only changed at or after this instant (ISO 8601 with offset)."),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(
                pattern=CURSOR_PATTERN,
                description="Opaque: the `next` link of the previous page carries it.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
    ) -> Response:
        try:
            after = None if cursor is None else decode_cursor(cursor)
        except BadCursor as bad:
            raise ProblemError(
                422,
                "invalid-cursor",
                str(bad),
                errors=[{"field": "query.cursor", "message": str(bad), "type": "invalid-cursor"}],
            ) from None
        query = ListQuery(
            entity=entity,
            customer_id=customer_id,
            status=None if status is None else str(status),
            updated_since=updated_since,
            after=after,
            limit=limit,
        )
        rows = runtime.committer.list_aggregates(query)
        following = None
        if len(rows) == limit:  # maybe more: the next page starts after the last row
            url = request.url.include_query_params(cursor=encode_cursor(rows[-1]))
            following = f"{url.path}?{url.query}"
        return JSONBytes({"items": [_item(r) for r in rows], "next": following})

    list_aggregates.__name__ = f"{plural(entity)}_list"
    return list_aggregates


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1")
    reader = require("read")
    kinds = entities(runtime)

    for entity in kinds:
        collection = plural(entity)
        router.add_api_route(
            f"/{collection}",
            _list_route(runtime, entity, reader),
            methods=["GET"],
            response_model=AggregateList,
            response_class=JSONBytes,
            operation_id=f"{collection}_list",
            tags=[collection],
            summary=f"List {collection}, oldest change first (filters, cursor paging)",
            responses=problems(401, 403, 422),
        )

    @router.get(
        "",
        response_model=ApiIndex,
        response_class=JSONBytes,
        operation_id="index",
        tags=["health"],
        summary="Links to every part of the API (no key needed)",
    )
    def api_index() -> Response:
        links = {plural(e): f"/v1/{plural(e)}" for e in kinds}
        links.update(
            {
                "aggregate": "/v1/{kind}/{id}",
                "events": "/v1/{kind}/{id}/events",
                "lookup": "/v1/lookup/{system}/{entity}/{external_id}",
                "batch": "/v1/batch",
                "ownership": "/v1/ownership",
                "event_schemas": "/v1/schemas/events",
                "health": "/v1/health",
                "keys": "/v1/keys",
                "conflicts": "/v1/conflicts",
                "subscribers": "/v1/subscribers",
                "dead_letters": "/v1/dead-letters",
                "openapi": "/openapi.json",
                "docs": "/docs",
                "redoc": "/redoc",
            }
        )
        return JSONBytes({"name": "Concord", "links": links})

    return router
