"""The match review queue (``admin``): uncertain customer matches waiting for a person.

An inbound customer that might be one Concord knows (a legal-form or punctuation variant of
a name, a typo) is neither linked on a guess nor created as a duplicate: its delivery is held
and listed here. ``link`` says it is that customer, ``new`` that it is nobody Concord knows,
``merge`` that two customers Concord holds are one (the merged one follows its survivor,
both lineages stay) and the source record is the survivor. Each decision releases the held
delivery, which is translated again and follows it.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from adapters.inbound.review_decisions import (
    DecisionRefused,
    live_customer,
    pending_review,
    settle_review,
)
from adapters.inbound.reviews import Review
from api.errors import ProblemError, input_problem
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.customers import MergeCustomer
from hub.application.service import Caller, CommandRequest

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime


class MatchCandidate(BaseModel):
    customer_id: UUID
    reason: str


class MatchReview(BaseModel):
    id: int
    source: str = Field(description="The source system (stripe, salesforce, …).")
    external_id: str = Field(description="The source's record id.")
    delivery_id: int | None = Field(description="The held delivery (GET /v1/inbound/{id}).")
    candidates: list[MatchCandidate]
    status: Literal["pending", "linked", "new"]
    customer_id: UUID | None = Field(description="The customer it was linked to.")
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime


class MatchList(BaseModel):
    items: list[MatchReview]
    next: str | None


class LinkDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: UUID = Field(description="The customer the source record is.")


class MergeDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    survivor_id: UUID = Field(description="The customer that stays (the record is linked to it).")
    merged_id: UUID = Field(description="The duplicate, merged into the survivor.")


REVIEW_ID = Annotated[int, Path(ge=1, le=2**62)]


def _problem(refused: DecisionRefused) -> ProblemError:
    return input_problem(refused.status, refused.code, refused.message, refused.field)


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["matches"])
    admin = require("admin")
    reviews = runtime.inbound.reviews
    assert reviews is not None

    def pending(review_id: int) -> Review:
        try:
            return pending_review(reviews, review_id)
        except DecisionRefused as refused:
            raise _problem(refused) from None

    def customer_exists(customer_id: UUID, field: str) -> None:
        try:
            live_customer(runtime.hub, customer_id, field)
        except DecisionRefused as refused:
            raise _problem(refused) from None

    async def settle(review_id: int, status: str, customer: UUID | None, actor: str) -> Response:
        loop = asyncio.get_running_loop()
        try:
            decided = await loop.run_in_executor(
                runtime.executor,
                lambda: settle_review(reviews, runtime.inbound, review_id, status, customer, actor),
            )
        except DecisionRefused as refused:
            raise _problem(refused) from None
        return JSONBytes(decided.view())

    @router.get(
        "/matches",
        response_model=MatchList,
        response_class=JSONBytes,
        operation_id="matches_list",
        responses=problems(401, 403, 422),
        summary="Uncertain customer matches, oldest first (admin)",
    )
    def list_matches(
        caller: Annotated[Caller, Depends(admin)],
        request: Request,
        status: Annotated[Literal["pending", "linked", "new"] | None, Query()] = "pending",
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        rows = reviews.list(status, after, limit)
        following = None
        if len(rows) == limit:
            following = str(request.url.include_query_params(after=rows[-1].id))
        return JSONBytes({"items": [r.view() for r in rows], "next": following})

    @router.get(
        "/matches/{id}",
        response_model=MatchReview,
        response_class=JSONBytes,
        operation_id="matches_get",
        responses=problems(401, 403, 404, 422),
        summary="One match review (admin)",
    )
    def get_match(caller: Annotated[Caller, Depends(admin)], id: REVIEW_ID) -> Response:
        review = reviews.get(id)
        if review is None:
            raise input_problem(404, "not-found", f"no match review {id}", "path.id")
        return JSONBytes(review.view())

    @router.post(
        "/matches/{id}/link",
        response_model=MatchReview,
        response_class=JSONBytes,
        operation_id="matches_link",
        responses=problems(401, 403, 404, 409, 422),
        summary="Approve: the source record is this customer (admin)",
    )
    async def link(
        caller: Annotated[Caller, Depends(admin)], id: REVIEW_ID, body: LinkDecision
    ) -> Response:
        pending(id)
        customer_exists(body.customer_id, "body.customer_id")
        return await settle(id, "linked", body.customer_id, caller.client_id)

    @router.post(
        "/matches/{id}/new",
        response_model=MatchReview,
        response_class=JSONBytes,
        operation_id="matches_new",
        responses=problems(401, 403, 404, 409, 422),
        summary="Reject: the source record is nobody Concord knows (admin)",
    )
    async def new(caller: Annotated[Caller, Depends(admin)], id: REVIEW_ID) -> Response:
        pending(id)
        return await settle(id, "new", None, caller.client_id)

    @router.post(
        "/matches/{id}/merge",
        response_model=MatchReview,
        response_class=JSONBytes,
        operation_id="matches_merge",
        responses=problems(401, 403, 404, 409, 422),
        summary="Merge two customers Concord holds; the source record is the survivor (admin)",
    )
    async def merge(
        caller: Annotated[Caller, Depends(admin)], id: REVIEW_ID, body: MergeDecision
    ) -> Response:
        pending(id)
        if body.survivor_id == body.merged_id:
            raise input_problem(
                422, "validation-failed", "survivor and merged customer are one", "body.merged_id"
            )
        customer_exists(body.survivor_id, "body.survivor_id")
        customer_exists(body.merged_id, "body.merged_id")
        request = CommandRequest(
            entity="customer",
            name="merge",
            payload=MergeCustomer(target_customer_id=body.survivor_id),
            caller=caller,
            aggregate_id=body.merged_id,
        )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(runtime.executor, runtime.hub.execute, request)
        return await settle(id, "linked", body.survivor_id, caller.client_id)

    return router
