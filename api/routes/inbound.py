"""Inbound webhooks (``POST /v1/webhooks/<system>``) and the inbound log (admin).

Webhooks authenticate by the source system's own scheme (Stripe-Signature, HubSpot v3,
HMAC of the body, HTTP Basic), never by a Concord API key: the systems cannot send one.
A delivery answers 2xx only once it is durable (logged, and committed or held), so a
retrying source (Stripe, HubSpot, Chargebee) stops retrying only when nothing can be lost.

The log carries raw payloads with personal data, so reading it needs the ``admin`` scope.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from adapters.inbound.log import Delivery
from adapters.inbound.service import (
    Malformed,
    NotConfigured,
    Outcome,
    UnknownSystem,
    Unverified,
)
from adapters.inbound.source import Incoming
from api.deps import too_many
from api.errors import ProblemError, input_problem
from api.errors import problem_responses as problems
from api.rate_limits import RateLimiter
from api.responses import JSONBytes
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

#: Largest webhook body: a Salesforce CDC array of a bulk import or a Stripe invoice with
#: many lines stays far below it.
MAX_WEBHOOK_BYTES = 4 * 1024 * 1024

SYSTEM = Annotated[str, Path(pattern=r"^[a-z]{2,20}$", description="Source system (stripe, …).")]


class EventOutcome(BaseModel):
    event_id: str
    delivery_id: int = Field(description="Row of the inbound log (GET /v1/inbound/{id}).")
    status: Literal["applied", "duplicate", "held", "ignored", "refused"]
    detail: dict[str, Any] | None = None
    waiting_for: str | None = Field(None, description="The dependency a held event waits for.")
    events: list[dict[str, Any]] = Field(default_factory=list)
    conflicts: int = Field(0, description="Ownership refusals recorded as conflicts.")


class WebhookResult(BaseModel):
    results: list[EventOutcome]


class WaitingFor(BaseModel):
    system: str
    entity: str
    external_id: str


class DeliverySummary(BaseModel):
    id: int
    system: str
    event_id: str
    event_type: str
    received_at: datetime
    occurred_at: datetime | None
    status: str
    detail: dict[str, Any] | None
    waiting_for: WaitingFor | None
    attempts: int
    updated_at: datetime
    age_s: float | None = Field(None, description="Seconds since it was received (held list).")


class DeliveryList(BaseModel):
    items: list[DeliverySummary]
    next: str | None = Field(description="The next page, when this one is full.")


class DeliveryDetail(DeliverySummary):
    headers: dict[str, Any] = Field(description="As received, without credentials.")
    body: str | None = Field(description="The exact payload (UTF-8); null once erased.")
    body_sha256: str
    verification: str


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: AwareDatetime = Field(description="Re-run deliveries received at or after this.")
    system: str | None = Field(None, pattern=r"^[a-z]{2,20}$")


class DiscardRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")


class ReplayResult(BaseModel):
    counts: dict[str, int] = Field(description="Deliveries by what became of them.")


def _status(outcomes: list[Outcome]) -> int:
    states = {o.status for o in outcomes}
    if "refused" in states:
        return 422
    if states & {"held", "ignored"}:
        return 202
    return 200


def build(
    runtime: "Runtime",
    require: Callable[[str], Callable[..., Any]],
    failed_auth: RateLimiter | None = None,
) -> APIRouter:
    """``failed_auth`` throttles addresses that keep failing verification (429, as for
    failed API keys), so nobody can hunt for a secret at full speed."""
    router = APIRouter(prefix="/v1")
    throttle = failed_auth or RateLimiter(0, 1)
    admin = require("admin")
    service = runtime.inbound

    @router.post(
        "/webhooks/{system}",
        tags=["inbound"],
        response_model=WebhookResult,
        response_class=JSONBytes,
        operation_id="webhook_receive",
        status_code=200,
        responses={
            202: {"model": WebhookResult, "description": "Held or ignored (logged)."},
            **problems(401, 404, 413, 422, 429, 503),
        },
        summary="Receive a source system's webhook delivery, in its own shape",
        # The body is read raw (signatures are over the exact bytes), verified, then parsed
        # by the system's adapter: FastAPI must not parse it first.
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The system's payload, exactly as it sends it.",
                "content": {"application/json": {"schema": {}}},
            }
        },
        description=(
            "Authenticated by the system's own signature (see the README, 'Inbound'). 200: "
            "applied or a duplicate; 202: held for a dependency or ignored; 422: refused "
            "(the payload is malformed or says what cannot be true; logged). Nothing is "
            "stored for a delivery that fails verification."
        ),
    )
    async def receive(
        system: SYSTEM,
        request: Request,
    ) -> Response:
        address = request.client.host if request.client else "unknown"
        throttled = throttle.check(address)
        if throttled is not None:
            raise too_many(throttled, f"failed webhook verifications from {address}")
        raw = await request.body()
        incoming = Incoming(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            body=raw,
            received_at=datetime.now(UTC),
        )
        loop = asyncio.get_running_loop()
        try:
            outcomes = await loop.run_in_executor(
                runtime.executor, service.receive, system, incoming
            )
        except UnknownSystem as unknown:
            raise input_problem(404, "unknown-system", str(unknown), "path.system") from None
        except (NotConfigured, Unverified) as unverified:
            throttled = throttle.take(address)
            if throttled is not None:
                raise too_many(throttled, f"failed webhook verifications from {address}") from None
            challenge = unverified.challenge if isinstance(unverified, Unverified) else None
            raise ProblemError(
                401,
                "webhook-unverified",
                str(unverified),
                headers={"WWW-Authenticate": challenge} if challenge else None,
            ) from None
        except Malformed as bad:
            raise input_problem(422, "validation-failed", bad.message, bad.field) from None
        results = [o.view() for o in outcomes]
        status = _status(outcomes)
        if status == 422:
            refused = next(o for o in outcomes if o.status == "refused")
            detail = refused.detail or {}
            raise ProblemError(
                422,
                str(detail.get("code") or "refused"),
                f"event {refused.event_id} was refused: {detail.get('detail')}",
                errors=[{"field": detail.get("field") or "body", "message": detail.get("detail")}],
            )
        return JSONBytes({"results": results}, status_code=status)

    @router.get(
        "/inbound",
        tags=["inbound"],
        response_model=DeliveryList,
        response_class=JSONBytes,
        operation_id="inbound_list",
        responses=problems(401, 403, 422),
        summary="The inbound log, oldest first (admin)",
    )
    def list_inbound(
        caller: Annotated[Caller, Depends(admin)],
        request: Request,
        status: Annotated[
            Literal["received", "applied", "held", "ignored", "refused", "discarded"] | None,
            Query(),
        ] = None,
        system: Annotated[str | None, Query(pattern=r"^[a-z]{2,20}$")] = None,
        after: Annotated[int, Query(ge=0, le=2**62, description="Page after this id.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        rows = service.log.list(status=status, system=system, after_id=after, limit=limit)
        return JSONBytes(_page(request, rows, limit, with_age=False))

    @router.get(
        "/inbound/held",
        tags=["inbound"],
        response_model=DeliveryList,
        response_class=JSONBytes,
        operation_id="inbound_held",
        responses=problems(401, 403, 422),
        summary="Held deliveries: what each waits for, and for how long (admin)",
    )
    def held(
        caller: Annotated[Caller, Depends(admin)],
        request: Request,
        after: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        rows = service.log.list(status="held", after_id=after, limit=limit)
        return JSONBytes(_page(request, rows, limit, with_age=True))

    @router.get(
        "/inbound/{delivery_id}",
        tags=["inbound"],
        response_model=DeliveryDetail,
        response_class=JSONBytes,
        operation_id="inbound_get",
        responses=problems(401, 403, 404, 422),
        summary="One logged delivery with its exact payload (admin)",
    )
    def get_delivery(
        caller: Annotated[Caller, Depends(admin)],
        delivery_id: Annotated[int, Path(ge=1, le=2**62)],
    ) -> Response:
        row = service.log.get(delivery_id)
        if row is None:
            raise input_problem(
                404, "not-found", f"no inbound delivery {delivery_id}", "path.delivery_id"
            )
        body = row.summary() | {
            "headers": row.headers,
            "body": None if row.body is None else row.body.decode("utf-8", "replace"),
            "body_sha256": row.body_sha256,
            "verification": row.verification,
        }
        return JSONBytes(body)

    @router.post(
        "/inbound/{delivery_id}/discard",
        tags=["inbound"],
        response_model=DeliverySummary,
        response_class=JSONBytes,
        operation_id="inbound_discard",
        responses=problems(401, 403, 404, 409, 422),
        summary="Give up on a held or refused delivery for good (admin)",
        description=(
            "It stays in the log with who discarded it and why, and never runs again: a "
            "redelivery of the same source event answers 200 duplicate."
        ),
    )
    def discard(
        caller: Annotated[Caller, Depends(admin)],
        delivery_id: Annotated[int, Path(ge=1, le=2**62)],
        body: DiscardRequest,
    ) -> Response:
        row = service.log.discard(delivery_id, caller.client_id, body.reason)
        if row is None:
            found = service.log.get(delivery_id)
            if found is None:
                raise input_problem(
                    404, "not-found", f"no inbound delivery {delivery_id}", "path.delivery_id"
                )
            raise input_problem(
                409,
                "not-discardable",
                f"delivery {delivery_id} is {found.status}: only held, refused or received "
                "deliveries can be discarded",
                "path.delivery_id",
            )
        return JSONBytes(row.summary())

    @router.post(
        "/inbound/replay",
        tags=["inbound"],
        response_model=ReplayResult,
        response_class=JSONBytes,
        operation_id="inbound_replay",
        responses=problems(401, 403, 422, 503),
        summary="Re-translate logged deliveries (after a translator or mapping fix)",
        description=(
            "Runs every delivery received since `since` through translation again; ones "
            "applied before keep their single effect (their receipt is found)."
        ),
    )
    async def replay(caller: Annotated[Caller, Depends(admin)], body: ReplayRequest) -> Response:
        loop = asyncio.get_running_loop()
        counts = await loop.run_in_executor(
            runtime.executor, lambda: service.replay(since=body.since, system=body.system)
        )
        return JSONBytes({"counts": counts})

    return router


def _page(request: Request, rows: list[Delivery], limit: int, *, with_age: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    items = []
    for row in rows:
        item = row.summary()
        if with_age:
            item["age_s"] = round((now - row.received_at).total_seconds(), 3)
        items.append(item)
    following = None
    if len(rows) == limit:
        following = str(request.url.include_query_params(after=rows[-1].id))
    return {"items": items, "next": following}
