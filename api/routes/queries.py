"""Read endpoints: state, as-of state, history, lookup by external id, policy, schemas.

Sync ``def`` routes: the hub and the store are synchronous (psycopg pool), so FastAPI runs
them on its thread pool instead of blocking the event loop.

No ``from __future__ import annotations`` here: the route signatures use values from the
enclosing builder (the key dependency, the entity name), and FastAPI can only resolve
annotations that are real objects or module-level names.
"""

from collections.abc import Callable
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime
from starlette.responses import Response

from api.errors import problem_responses as problems
from api.redaction import redact_body
from api.responses import JSONBytes
from api.routes import article, plural
from api.schemas import AggregateWithRefs, EventSchemas, History, LookupResult
from hub.application.service import Caller
from hub.domain.bounded import NO_NUL
from hub.domain.errors import NotFound
from hub.domain.ownership import OwnershipPolicy
from hub.domain.provenance import System

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime


def api_version() -> str:
    try:
        return version("concord-hub")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.1.0"


def entities(runtime: "Runtime") -> list[str]:
    """Entities with commands, in catalogue order (the URL collections)."""
    seen: dict[str, None] = {}
    for spec in runtime.hub.catalogue.all():
        seen.setdefault(spec.entity, None)
    return list(seen)


def _state_route(runtime: "Runtime", entity: str, reader: Any) -> Callable[..., Response]:
    def get_state(
        id: Annotated[UUID, Path(description=f"The {entity}'s canonical id.")],
        caller: Annotated[Caller, Depends(reader)],
        as_of: Annotated[
            AwareDatetime | None,
            Query(
                description="Show the state as it was at this instant (the hub's recorded "
                "time, ISO 8601 with offset), for audits. 404 if it did not exist yet."
            ),
        ] = None,
        business_date: Annotated[
            date | None,
            Query(
                description="Show what is in force on this business date (ISO 8601 date): a "
                "contract's amendments effective later stay in `scheduled_changes`. Default: "
                "the day of `as_of`, or today (UTC)."
            ),
        ] = None,
    ) -> Response:
        view = runtime.hub.get(entity, id, as_of, business_date)
        view["external_ids"] = runtime.xref.external_ids(id)
        view = redact_body(runtime.policy, caller.system, entity, view)
        return JSONBytes(view, headers={"ETag": f'"{view["version"]}"'})

    get_state.__name__ = f"{plural(entity)}_get"
    return get_state


#: Events per history page unless ``limit`` says otherwise, and the most it may say.
HISTORY_PAGE = 100
HISTORY_PAGE_MAX = 1000
#: Versions are PostgreSQL ``integer`` columns.
MAX_VERSION = 2**31 - 1


def _history_route(runtime: "Runtime", entity: str, reader: Any) -> Callable[..., Response]:
    def get_history(
        request: Request,
        id: Annotated[UUID, Path(description=f"The {entity}'s canonical id.")],
        caller: Annotated[Caller, Depends(reader)],
        after_version: Annotated[
            int,
            Query(
                ge=0,
                le=MAX_VERSION,
                description="Only events after this version (0: from the first); pass the "
                "previous page's `version` to read on.",
            ),
        ] = 0,
        limit: Annotated[
            int,
            Query(
                ge=1,
                le=HISTORY_PAGE_MAX,
                description=f"Events per page (default {HISTORY_PAGE}, at most "
                f"{HISTORY_PAGE_MAX}).",
            ),
        ] = HISTORY_PAGE,
    ) -> Response:
        # One more than asked tells whether another page follows without an extra query.
        events = runtime.hub.history(entity, id, after_version=after_version, limit=limit + 1)
        page, more = events[:limit], len(events) > limit
        last = page[-1]["version"] if page else after_version
        following = None
        headers = {"ETag": f'"{last}"'}
        if more:
            following = f"{request.url.path}?after_version={last}&limit={limit}"
            headers["Link"] = f'<{following}>; rel="next"'
        body = {"id": str(id), "entity": entity, "version": last, "events": page}
        body["next"] = following
        body = redact_body(runtime.policy, caller.system, entity, body)
        return JSONBytes(body, headers=headers)

    get_history.__name__ = f"{plural(entity)}_events"
    return get_history


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1")
    reader = require("read")
    known = entities(runtime)

    for entity in known:
        collection = plural(entity)
        router.add_api_route(
            f"/{collection}/{{id}}",
            _state_route(runtime, entity, reader),
            methods=["GET"],
            response_model=AggregateWithRefs,
            response_class=JSONBytes,
            operation_id=f"{collection}_get",
            tags=[collection],
            summary=f"Get {article(entity)} (current, or as of a past instant)",
            responses=problems(401, 403, 404, 422),
        )
        router.add_api_route(
            f"/{collection}/{{id}}/events",
            _history_route(runtime, entity, reader),
            methods=["GET"],
            response_model=History,
            response_class=JSONBytes,
            operation_id=f"{collection}_events",
            tags=[collection],
            summary=f"Events of {article(entity)}, oldest first, with provenance (paginated)",
            description=f"Pages of `limit` events (default {HISTORY_PAGE}, at most "
            f"{HISTORY_PAGE_MAX}) after `after_version`; `next` (and the `Link: <...>; "
            'rel="next"` header) is the URL of the following page, null on the last one.',
            responses=problems(401, 403, 404, 422),
        )

    @router.get(
        "/lookup/{system}/{entity}/{external_id:path}",
        response_model=LookupResult,
        response_class=JSONBytes,
        operation_id="lookup",
        tags=["lookup"],
        responses=problems(401, 403, 404, 422),
        summary="Find an aggregate by the id another system knows it by",
    )
    def lookup(
        system: Annotated[System, Path(description="The system whose id this is.")],
        entity: Annotated[str, Path(description=f"One of: {', '.join(known)}.")],
        external_id: Annotated[
            str, Path(description="That system's id.", max_length=255, pattern=NO_NUL)
        ],
        caller: Annotated[Caller, Depends(reader)],
    ) -> Response:
        if entity not in known:
            raise NotFound(
                f"unknown entity {entity!r}; use one of {', '.join(known)}", field="entity"
            )
        found = runtime.hub.lookup(system.value, entity, external_id)
        body = {
            "id": str(found),
            "system": system.value,
            "entity": entity,
            "external_id": external_id,
            "aggregate": runtime.hub.get(entity, found),
        }
        return JSONBytes(redact_body(runtime.policy, caller.system, entity, body))

    @router.get(
        "/ownership",
        response_model=OwnershipPolicy,
        response_class=JSONBytes,
        operation_id="ownership_get",
        tags=["ownership"],
        responses=problems(401, 403),
        summary="The system-of-record ownership policy in force (with its version)",
    )
    def ownership(caller: Annotated[Caller, Depends(reader)]) -> Response:
        return JSONBytes(runtime.policy.model_dump(mode="json"))

    @router.get(
        "/schemas/events",
        response_model=EventSchemas,
        response_class=JSONBytes,
        operation_id="event_schemas",
        tags=["schemas"],
        responses=problems(401, 403),
        summary="JSON Schema of every event type, keyed by type name",
    )
    def event_schemas(caller: Annotated[Caller, Depends(reader)]) -> Response:
        return JSONBytes(runtime.event_schemas())

    return router
