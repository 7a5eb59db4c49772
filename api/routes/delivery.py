"""Operator endpoints for subscribers: lag, dead letters (list, show, retry, discard) and
replays (``admin`` only).

Why admin: these act on what external systems receive (a replay re-sends history, a discard
gives up on an event for good) and dead letters carry full event envelopes.

Replays run as background jobs in the API process: ``POST`` answers 202 with a job whose
progress ``GET /v1/replays/{id}`` reports, because a long replay outlives an HTTP request.
Jobs live in memory (a restart forgets them; the replay itself is safe to repeat, since
targets deduplicate by event id).

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import asyncio
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from adapters.connectors.http import HttpConnector
from adapters.nats.dead_letters import (
    DeadLetterError,
    MalformedDeadLetter,
    discard,
    get_dead_letter,
    list_dead_letters,
    request_retry,
)
from adapters.nats.registry import DECLARATIONS, build_specs
from adapters.nats.replay import ReplayRequest
from adapters.nats.runner import replay_subscriber, subscriber_lag
from api.errors import ProblemError, input_problem
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime


class SubscriberLag(BaseModel):
    subscriber: str
    configured: bool = Field(description="A target is configured (CONCORD_TARGETS).")
    running: bool = Field(description="Some process runs this subscriber now.")
    exists: bool | None = Field(
        description="Its durable consumer exists in the stream (null: NATS did not answer)."
    )
    num_pending: int | None = Field(description="Events not yet fetched.")
    num_ack_pending: int | None = Field(
        description="Fetched, not yet confirmed (incl. retries waiting for their backoff)."
    )
    num_redelivered: int | None
    num_waiting: int | None
    delivered_stream_seq: int | None
    ack_floor_stream_seq: int | None
    dead_letters: int = Field(description="Open dead letters.")
    parked: int = Field(description="Events held behind a failing event of their aggregate.")
    held_aggregates: int
    retrying_aggregates: int


class SubscriberList(BaseModel):
    items: list[SubscriberLag]


class ParkedEvent(BaseModel):
    stream_seq: int
    event_id: str
    event_type: str
    version: int
    parked_at: datetime


class DeadLetter(BaseModel):
    id: int
    subscriber: str
    event_id: str
    event_type: str
    aggregate: str
    aggregate_id: str
    version: int
    stream_seq: int
    subject: str
    reason: str = Field(description="`permanent`, `exhausted` or `malformed`.")
    error: str
    attempts: int
    first_failed_at: datetime
    last_failed_at: datetime
    status: str = Field(
        description="`dead`, `retry_requested`, `retrying`, `delivered`, `discarded`."
    )
    resolved_at: datetime | None
    resolved_by: str | None
    parked_behind: int


class DeadLetterDetail(DeadLetter):
    envelope: dict[str, Any]
    parked: list[ParkedEvent]


class DeadLetterList(BaseModel):
    items: list[DeadLetter]


_POSITION = {"from_position": {"type": "integer"}}
_SINCE = {"since": {"type": "string"}}
_REPLAY_FROM: dict[str, Any] = {
    "anyOf": [
        {"required": ["from_position"], "properties": _POSITION},
        {"required": ["since"], "properties": _SINCE},
        {"required": ["aggregate"], "properties": {"aggregate": {"type": "string"}}},
    ],
    "not": {"required": ["from_position", "since"], "properties": {**_POSITION, **_SINCE}},
}


class ReplayBody(BaseModel):
    """Where to replay from: a stream position or a time, and/or one aggregate.

    At least one of the three, and not both a position and a time (``ReplayRequest``
    refuses either with 422): stated as ``anyOf`` / ``not`` so a client knows it up front.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_REPLAY_FROM)

    from_position: int | None = Field(default=None, ge=1, description="Stream sequence.")
    since: AwareDatetime | None = None
    aggregate: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[a-z]+:[0-9A-Za-z-]{1,64}$",
        description="`<entity>:<id>`, e.g. `order:3f2c...`.",
    )


class ReplayJob(BaseModel):
    id: str
    subscriber: str
    status: Literal["running", "done", "failed"]
    done: int
    total: int
    started_at: datetime
    finished_at: datetime | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


def _need_nats(runtime: "Runtime") -> None:
    if not runtime.settings.nats_url:
        raise ProblemError(
            503, "nats-not-configured", "this hub runs without NATS (CONCORD_NATS_URL is not set)"
        )


def _connect(runtime: "Runtime") -> AbstractContextManager[psycopg.Connection[Any]]:
    """A pooled connection for an operator request (tuple rows, as the queries expect).
    The tables exist: ``open_runtime`` created them when the API started."""
    return runtime.connection()


def _dead_letter_problem(error: DeadLetterError) -> ProblemError:
    if isinstance(error, MalformedDeadLetter):
        return ProblemError(error.status, "dead-letter-malformed", str(error))
    code = {404: "dead-letter-not-found", 409: "dead-letter-state"}.get(error.status, "bad-request")
    return ProblemError(error.status, code, str(error))


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["subscribers"])
    admin = require("admin")
    jobs: dict[str, dict[str, Any]] = {}
    running: set[asyncio.Task[None]] = set()
    schema = runtime.settings.schema_name

    @router.get(
        "/subscribers",
        response_model=SubscriberList,
        response_class=JSONBytes,
        operation_id="subscribers_list",
        responses=problems(401, 403, 503),
        summary="Every declared subscriber with its lag (stream counters + held events)",
    )
    async def subscribers(caller: Annotated[Caller, Depends(admin)]) -> Response:
        _need_nats(runtime)
        report = await subscriber_lag(runtime)
        return JSONBytes({"items": list(report.values())})

    @router.get(
        "/dead-letters",
        response_model=DeadLetterList,
        response_class=JSONBytes,
        operation_id="dead_letters_list",
        responses=problems(401, 403, 422),
        summary="Dead letters, newest first (open ones by default)",
    )
    def dead_letters(
        caller: Annotated[Caller, Depends(admin)],
        subscriber: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[
            Literal["open", "all", "dead", "retry_requested", "retrying", "delivered", "discarded"],
            Query(description="`open` = dead, retry_requested or retrying."),
        ] = "open",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, description="Page: ids below this.")] = None,
    ) -> Response:
        with _connect(runtime) as conn:
            items = list_dead_letters(
                conn,
                schema,
                subscriber=subscriber,
                status=None if status == "all" else status,
                limit=limit,
                before_id=before,
            )
        return JSONBytes({"items": items})

    @router.get(
        "/dead-letters/{id}",
        response_model=DeadLetterDetail,
        response_class=JSONBytes,
        operation_id="dead_letters_get",
        responses=problems(401, 403, 404, 422),
        summary="One dead letter with its envelope and the events parked behind it",
    )
    def dead_letter(
        id: Annotated[int, Path(ge=1)], caller: Annotated[Caller, Depends(admin)]
    ) -> Response:
        try:
            with _connect(runtime) as conn:
                return JSONBytes(get_dead_letter(conn, schema, id))
        except DeadLetterError as error:
            raise _dead_letter_problem(error) from None

    @router.post(
        "/dead-letters/{id}/retry",
        status_code=202,
        response_model=DeadLetterDetail,
        response_class=JSONBytes,
        operation_id="dead_letters_retry",
        responses=problems(401, 403, 404, 409, 422),
        summary="Deliver again (by the running subscriber), then release what waits behind",
    )
    def retry(
        id: Annotated[int, Path(ge=1)], caller: Annotated[Caller, Depends(admin)]
    ) -> Response:
        try:
            with _connect(runtime) as conn:
                body = request_retry(conn, schema, id, actor=caller.client_id)
        except DeadLetterError as error:
            raise _dead_letter_problem(error) from None
        return JSONBytes(body, status_code=202)

    @router.post(
        "/dead-letters/{id}/discard",
        response_model=DeadLetterDetail,
        response_class=JSONBytes,
        operation_id="dead_letters_discard",
        responses=problems(401, 403, 404, 409, 422),
        summary="Give up on this event for its target; release what waits behind it",
    )
    def discard_route(
        id: Annotated[int, Path(ge=1)], caller: Annotated[Caller, Depends(admin)]
    ) -> Response:
        try:
            with _connect(runtime) as conn:
                return JSONBytes(discard(conn, schema, id, actor=caller.client_id))
        except DeadLetterError as error:
            raise _dead_letter_problem(error) from None

    @router.post(
        "/subscribers/{name}/replay",
        status_code=202,
        response_model=ReplayJob,
        response_class=JSONBytes,
        operation_id="subscribers_replay",
        responses=problems(401, 403, 404, 409, 422, 503),
        summary="Re-send a subscriber's events from a position, a time, or for one aggregate",
    )
    async def replay(
        name: Annotated[str, Path(max_length=64)],
        body: ReplayBody,
        caller: Annotated[Caller, Depends(admin)],
    ) -> Response:
        _need_nats(runtime)
        try:
            aggregate = None
            if body.aggregate:
                entity, _, aggregate_id = body.aggregate.partition(":")
                aggregate = (entity, aggregate_id)
            request = ReplayRequest(
                start_seq=body.from_position, since=body.since, aggregate=aggregate
            )
        except ValueError as invalid:
            raise input_problem(422, "invalid-replay", str(invalid), "body") from None
        if name not in {d.name for d in DECLARATIONS}:
            raise ProblemError(
                404,
                "unknown-subscriber",
                f"no subscriber {name!r}; declared: {', '.join(d.name for d in DECLARATIONS)}",
            )
        urls = runtime.settings.target_urls()
        if name not in urls:
            raise ProblemError(
                409,
                "subscriber-not-configured",
                f"subscriber {name!r} has no target: set CONCORD_TARGETS={name}=http://host/path",
            )
        secrets = runtime.settings.target_secret_map().get(name, ())
        connector = HttpConnector(urls[name], secrets=secrets)
        known = build_specs(runtime.settings, connectors={name: connector})
        job_id = uuid.uuid4().hex[:12]
        job: dict[str, Any] = {
            "id": job_id,
            "subscriber": name,
            "status": "running",
            "done": 0,
            "total": 0,
            "started_at": datetime.now(UTC),
            "finished_at": None,
            "result": None,
            "error": None,
        }
        jobs[job_id] = job

        def progress(done: int, total: int) -> None:
            job["done"], job["total"] = done, total

        async def work() -> None:
            try:
                result = await replay_subscriber(
                    runtime, name, request, progress=progress, specs=known
                )
                job["result"], job["status"] = result.as_dict(), "done"
            except Exception as failed:
                job["error"], job["status"] = repr(failed), "failed"
            finally:
                job["finished_at"] = datetime.now(UTC)

        task = asyncio.create_task(work())
        running.add(task)
        task.add_done_callback(running.discard)
        return JSONBytes(job, status_code=202, headers={"Location": f"/v1/replays/{job_id}"})

    @router.get(
        "/replays/{id}",
        response_model=ReplayJob,
        response_class=JSONBytes,
        operation_id="replays_get",
        responses=problems(401, 403, 404),
        summary="Progress and result of a replay started over the API",
    )
    async def replay_job(
        id: Annotated[str, Path(max_length=32)], caller: Annotated[Caller, Depends(admin)]
    ) -> Response:
        job = jobs.get(id)
        if job is None:
            raise ProblemError(
                404,
                "replay-not-found",
                f"no replay job {id!r} (jobs are kept until the API restarts)",
            )
        return JSONBytes(job)

    return router
