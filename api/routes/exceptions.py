"""The exception workbench: ``GET /v1/exceptions`` (everything stuck, grouped by object and
reason), ``GET /v1/exceptions/{id}`` and ``POST /v1/exceptions/{id}/actions`` (admin).

Why reading needs only ``read`` and acting ``admin``: the list carries no payloads or
envelopes (the source's own admin routes, linked from each item, do), so auditors and
support may watch it; an action re-sends, gives up on or decides something for good.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from adapters.exceptions.actions import ActionRefused, ActionRequest, act
from adapters.exceptions.model import ACTIONS, KINDS, REASONS
from adapters.exceptions.workbench import find_item, list_exceptions
from api.errors import input_problem
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

Reason = Literal[REASONS]  # type: ignore[valid-type]
Kind = Literal[KINDS]  # type: ignore[valid-type]
Action = Literal[ACTIONS]  # type: ignore[valid-type]
EXCEPTION_ID = Annotated[
    str,
    Path(
        min_length=4,
        max_length=400,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The item's opaque id (as listed).",
    ),
]


class ObjectModel(BaseModel):
    kind: str = Field(description=f"One of {', '.join(KINDS)}.")
    id: str = Field(description="Canonical id, or the source's id when canonical is false.")
    canonical: bool


class HistoryEntry(BaseModel):
    action: str
    note: str | None
    actor: str = Field(description="The client id of whoever acted.")
    at: datetime


class ExceptionItem(BaseModel):
    id: str = Field(description="Stable and opaque.")
    source: str
    reason: str = Field(description=f"One of {', '.join(REASONS)}.")
    object: ObjectModel
    customer_id: str | None
    summary: str
    since: datetime = Field(description="When it got stuck.")
    age_s: float
    lineage: str | None = Field(description="/v1/lineage/<canonical id>, when there is one.")
    links: dict[str, str] = Field(description="The source's own operator URLs.")
    actions: list[str] = Field(description="What POST .../actions accepts for it.")
    detail: dict[str, Any]
    history: list[HistoryEntry]
    resolved_at: datetime | None = Field(description="Resolved since it last changed.")


class ExceptionGroup(BaseModel):
    object: ObjectModel
    reason: str
    customer_id: str | None
    lineage: str | None
    count: int
    age_s: float = Field(description="Age of its oldest item.")
    items: list[ExceptionItem]


class ExceptionList(BaseModel):
    count: int = Field(description="Open items that match (before the limit).")
    counts: dict[str, int] = Field(description="Of those, per reason.")
    truncated: bool = Field(description="Cut by the limit or a source's read bound.")
    groups: list[ExceptionGroup] = Field(description="Oldest group first.")


class ActionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action = Field(description=f"One of {', '.join(ACTIONS)}; see the item's actions.")
    note: str | None = Field(
        None, max_length=2000, pattern=r"^[^\x00]*$", description="Required for resolve."
    )
    customer_id: UUID | None = Field(
        None, description="approve: the customer the source record is (if several candidates)."
    )


class ActionRecord(BaseModel):
    id: int
    exception_id: str
    object_kind: str
    object_id: str
    reason: str
    action: str
    note: str | None
    actor: str
    at: datetime


class ActionResult(BaseModel):
    exception_id: str
    action: ActionRecord
    outcome: dict[str, Any] = Field(description="What the source's operation answered.")


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["exceptions"])
    # Admin for reading too: the list gathers dead letters, held deliveries and match
    # reviews (their errors, payload details and candidates), each admin-only at its source.
    admin = require("admin")

    @router.get(
        "/exceptions",
        response_model=ExceptionList,
        response_class=JSONBytes,
        operation_id="exceptions_list",
        responses=problems(401, 403, 422),
        summary="Everything stuck, grouped by business object and reason (admin)",
    )
    def exceptions(
        caller: Annotated[Caller, Depends(admin)],
        reason: Annotated[Reason | None, Query()] = None,
        customer: Annotated[UUID | None, Query(description="Canonical customer id.")] = None,
        kind: Annotated[Kind | None, Query(description="Object kind.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        body = list_exceptions(
            runtime,
            reason=reason,
            customer=None if customer is None else str(customer),
            kind=kind,
            limit=limit,
        )
        return JSONBytes(body)

    @router.get(
        "/exceptions/{exception_id}",
        response_model=ExceptionItem,
        response_class=JSONBytes,
        operation_id="exceptions_get",
        responses=problems(401, 403, 404, 422),
        summary="One stuck item with its history (admin)",
    )
    def exception(
        caller: Annotated[Caller, Depends(admin)], exception_id: EXCEPTION_ID
    ) -> Response:
        with runtime.connection() as conn:
            item = find_item(runtime, conn, exception_id)
        if item is None:
            raise _unknown(exception_id)
        return JSONBytes(item.view(datetime.now(UTC)))

    @router.post(
        "/exceptions/{exception_id}/actions",
        response_model=ActionResult,
        response_class=JSONBytes,
        operation_id="exceptions_act",
        responses=problems(401, 403, 404, 409, 422),
        summary="Retry, resolve, replay, approve, reject or discard a stuck item (admin)",
        description="The action must be one the item lists; it is handed to the source's own "
        "operation and recorded with the caller's client id (the item's history, and an "
        "OperatorAction event in the object's lineage).",
    )
    async def act_route(
        caller: Annotated[Caller, Depends(admin)], exception_id: EXCEPTION_ID, body: ActionBody
    ) -> Response:
        request = ActionRequest(
            exception_id=exception_id,
            action=body.action,
            note=body.note,
            actor=caller.client_id,
            customer_id=body.customer_id,
        )
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(runtime.executor, act, runtime, request)
        except ActionRefused as refused:
            raise input_problem(
                refused.status, refused.code, refused.message, refused.field
            ) from None
        return JSONBytes(result)

    return router


def _unknown(exception_id: str) -> Exception:
    return input_problem(404, "not-found", f"no open exception {exception_id}", "path.exception_id")
