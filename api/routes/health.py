"""``GET /v1/health``: is the hub up, and is every committed event on its way to the targets?

Who may see what: without a key, the overall status, which components are down or degraded,
and the versions — enough for a load balancer or an uptime monitor, and nothing an outsider
could use (no server versions, no store names, no subscriber names, no errors). A key with the
``read`` scope also gets ``checks``: PostgreSQL, NATS, the relay's lag per store and each
subscriber. Read, not admin: these are counts, no event contents, and every integrating system
has a reason to ask whether the hub is delivering. A key that is presented is checked like on
any other route (unknown → 401, no ``read`` scope → 403), so a typo is not silently ignored.

200 while the hub can take and keep writes (``ok`` or ``degraded``); 503 with a problem+json
body (``health`` holds the same report) when PostgreSQL or NATS is unreachable, so a load
balancer takes the instance out of rotation and a person still sees what is down.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from starlette.responses import Response

from adapters.health import check
from api.deps import API_KEY, BEARER
from api.errors import Problem, problem_body, problem_response
from api.errors import problem_responses as problems
from api.responses import PROBLEM_MEDIA_TYPE, JSONBytes
from api.routes.delivery import SubscriberLag
from api.routes.queries import api_version

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

Status = Literal["ok", "degraded", "down"]


class PostgresHealth(BaseModel):
    status: Literal["ok", "down"]
    latency_ms: float | None = Field(description="How long `SELECT 1` took on a pooled connection.")
    error: str | None = None


class NatsHealth(BaseModel):
    status: Literal["ok", "degraded", "down", "off"] = Field(
        description="`off`: this hub runs without NATS (CONCORD_NATS_URL unset); `degraded`: "
        "the stream is missing although events were published to it."
    )
    connected: bool
    server_version: str | None = None
    max_payload: int | None = Field(default=None, description="The server's `max_payload`.")
    stream: str
    stream_exists: bool | None = Field(
        default=None, description="False until the relay first starts (then it creates it)."
    )
    stream_messages: int | None = None
    stream_last_seq: int | None = None
    error: str | None = None


class StoreLag(BaseModel):
    store: str
    head: int = Field(description="The store's newest position (notification id).")
    published: int = Field(description="The relay's published position (in PostgreSQL).")
    lag: int = Field(description="Events committed but not yet in the stream.")
    stuck: str | None = Field(
        description="Why the store's next event cannot be published, if it cannot."
    )


class RelayHealth(BaseModel):
    status: Literal["ok", "degraded", "off", "unknown"] = Field(
        description="`degraded`: lag above `max_lag` or a stuck store; `unknown`: PostgreSQL "
        "is unreachable; `off`: no NATS."
    )
    running: bool | None = Field(
        default=None, description="Some process relays now (holds the relay's lock)."
    )
    lag: int | None = Field(default=None, description="Total over the stores.")
    max_lag: int = Field(description="`CONCORD_HEALTH_MAX_LAG`.")
    stuck: dict[str, str] = Field(default_factory=dict, description="Store -> why it is stuck.")
    stores: list[StoreLag] = Field(default_factory=list)
    error: str | None = None


class SubscriberHealth(SubscriberLag):
    status: Literal["ok", "degraded", "off"] = Field(
        description="`off`: no target configured; `degraded`: not running, dead letters, "
        "held aggregates, or more than `max_lag` events pending."
    )
    pending: int = Field(description="`num_pending` + `num_ack_pending`.")


class HealthChecks(BaseModel):
    postgres: PostgresHealth
    nats: NatsHealth
    relay: RelayHealth
    subscribers: list[SubscriberHealth] = Field(
        description="Every declared subscriber (empty without NATS or PostgreSQL)."
    )


class Health(BaseModel):
    status: Status = Field(
        description="`ok`; `degraded`: relay lag, a stuck store, dead letters or held "
        "aggregates, a subscriber not running; `down`: PostgreSQL or NATS unreachable (503)."
    )
    version: str
    ownership_version: int
    down: list[str] = Field(description="Unreachable components: `postgres`, `nats`.")
    degraded: list[str] = Field(
        description="Components needing attention: `nats`, `relay`, `subscriber:<name>`."
    )
    checks: HealthChecks | None = Field(
        default=None, description="The details: only for a key with the `read` scope."
    )


class HealthProblem(Problem):
    """The 503 answer: a problem+json with the health report in ``health``."""

    health: Health


def _unhealthy_response() -> dict[int | str, dict[str, Any]]:
    schema = {"$ref": "#/components/schemas/HealthProblem"}
    return {
        503: {
            "description": "PostgreSQL or NATS is unreachable (the report is in `health`)",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
    }


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["health"])
    reader = require("read")

    @router.get(
        "/health",
        response_model=Health,
        response_class=JSONBytes,
        operation_id="health",
        responses={**problems(401, 403), **_unhealthy_response()},
        # The key is optional here: `{}` in the list says "or none" (OpenAPI 3).
        openapi_extra={"security": [{}]},
        summary="PostgreSQL, NATS, relay lag and subscribers (details with a read key)",
        description="No key: the status only. A key with the `read` scope: `checks` too. "
        "200 when `ok` or `degraded`, 503 (problem+json, the report in `health`) when "
        "PostgreSQL or NATS is unreachable. Each check is bounded by "
        "`CONCORD_HEALTH_TIMEOUT_S`.",
    )
    async def health(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
        api_key: Annotated[str | None, Security(API_KEY)] = None,
    ) -> Response:
        detailed = bearer is not None or bool(api_key)
        if detailed:  # a presented key is checked as anywhere (401 / 403 / 429)
            await reader(request, bearer, api_key)
        report = await check(runtime)
        body = Health.model_validate(
            {
                **report,
                "version": api_version(),
                "ownership_version": runtime.policy.version,
                "checks": report["checks"] if detailed else None,
            }
        ).model_dump(mode="json", exclude_none=not detailed)
        if body["status"] != "down":
            return JSONBytes(body)
        detail = f"unreachable: {', '.join(body['down'])}"
        problem = problem_body(503, "unhealthy", detail, instance=request.url.path, health=body)
        return problem_response(problem, {"Retry-After": "5"})

    return router
