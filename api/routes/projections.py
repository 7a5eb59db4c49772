"""``GET /v1/projections`` and ``POST /v1/projections/{name}/rebuild``: the read models' state.

Read from PostgreSQL on every call (the runners may run in another process): per upstream
store the position, the store's head and the lag in events and seconds; the state (running,
catching_up, rebuilding, failed with the event and reason, stopped); a rebuild's progress.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field
from starlette.responses import Response

from adapters.projections.status import ProjectionStatus, projection_status, request_rebuild
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.service import Caller
from projections.registry import all_projections, by_name

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime


class StoreLagModel(BaseModel):
    store: str = Field(description="Upstream store (its events table is `<store>_events`).")
    position: int = Field(description="Last event of the store applied to the live view.")
    head: int = Field(description="The store's newest event position.")
    lag_events: int = Field(description="Events committed but not yet in the view.")
    lag_seconds: float = Field(description="Age of the oldest of them (0 when none).")


class FailureModel(BaseModel):
    store: str
    position: int
    event_id: str
    reason: str = Field(description="The error the event raised.")
    at: datetime


class RebuildModel(BaseModel):
    version: int = Field(description="Code version being built into the shadow tables.")
    done: int
    total: int = Field(description="Events in the upstream stores when the rebuild began.")
    started_at: datetime | None = None


class ProjectionModel(BaseModel):
    name: str
    title: str
    code_version: int = Field(description="Version of the code in this process.")
    version: int | None = Field(description="Version the live tables were built by.")
    state: Literal["running", "catching_up", "rebuilding", "failed", "stopped"]
    runner: bool = Field(description="Some process holds this projection's runner lock.")
    tables: list[str]
    lag_events: int
    stores: list[StoreLagModel]
    failure: FailureModel | None = None
    rebuild: RebuildModel | None = None
    rebuild_requested: bool
    rebuilt_at: datetime | None = None


class ProjectionList(BaseModel):
    items: list[ProjectionModel]


def _body(status: ProjectionStatus) -> dict[str, Any]:
    return {**asdict(status), "lag_events": status.lag_events}


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["projections"])
    reader, admin = require("read"), require("admin")
    schema = runtime.settings.schema_name

    @router.get(
        "/projections",
        response_model=ProjectionList,
        response_class=JSONBytes,
        operation_id="projections_list",
        responses=problems(401, 403),
        summary="Every projection: positions, lag (events and seconds), state, rebuilds",
    )
    def projections(caller: Annotated[Caller, Depends(reader)]) -> Response:
        with runtime.connection() as conn:
            found = projection_status(conn, schema, all_projections())
        return JSONBytes({"items": [_body(s) for s in found]})

    @router.post(
        "/projections/{name}/rebuild",
        status_code=202,
        response_model=ProjectionModel,
        response_class=JSONBytes,
        operation_id="projections_rebuild",
        responses=problems(401, 403, 404, 422),
        summary="Rebuild a projection into shadow tables; swapped in once caught up",
        description="The runner (wherever it runs) is woken and rebuilds from position 0 "
        "while the live tables keep serving; follow `rebuild` in `GET /v1/projections`.",
    )
    def rebuild(
        name: Annotated[str, Path(max_length=63, pattern=r"^[a-z][a-z0-9_]*$")],
        caller: Annotated[Caller, Depends(admin)],
    ) -> Response:
        projection = by_name(name)
        if projection is None:
            known = ", ".join(p.name for p in all_projections())
            raise ProblemError(
                404, "projection-not-found", f"no projection named {name!r} (known: {known})"
            )
        with runtime.connection() as conn:
            request_rebuild(conn, schema, projection)
            (found,) = projection_status(conn, schema, [projection])
        return JSONBytes(_body(found), status_code=202)

    return router
