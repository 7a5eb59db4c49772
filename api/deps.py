"""Request dependencies: who is calling (API keys and scopes) and command headers.

Why scopes are checked here and ownership in the hub: a scope says what kind of call a key
may make at all (read / write / admin), which the API knows from the route alone; ownership
depends on the fields a command writes, which only the hub's catalogue knows, and must be
enforced the same way for HTTP, batch and (later) inbound webhooks.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime

from adapters.keys import KeyRing
from api.errors import ProblemError
from api.rate_limits import Limited, RequestLimits
from hub.application.service import MAX_SOURCE_CLOCK_AHEAD, Caller, Origin

BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="`Authorization: Bearer cnc_...` (create one with `concord keys create`).",
)
API_KEY = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="apiKey",
    description="The same key in an `X-API-Key` header, for clients that cannot set Bearer.",
)

_CHALLENGE = 'Bearer realm="concord"'
SPAN_KEY = "concord.span"


def _note_caller(request: Request, caller: Caller) -> None:
    """Put the client on the request's trace span (set up by the tracing middleware)."""
    span = request.scope.get(SPAN_KEY)
    if span is not None and span.is_recording():
        span.set_attribute("concord.client_id", caller.client_id)
        span.set_attribute("concord.system", caller.system)


def authenticator(
    keys: KeyRing, limits: RequestLimits | None = None
) -> Callable[[str], Callable[..., Awaitable[Caller]]]:
    """Build ``require(scope)`` dependencies for one key ring and its rate limits.

    Async on purpose: checking a key is a hash and a few comparisons, cheaper than the
    thread-pool hop a sync dependency would cost on every request.
    """
    limits = limits or RequestLimits.off()

    def require(scope: str) -> Callable[..., Awaitable[Caller]]:
        async def dependency(
            request: Request,
            bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
            api_key: Annotated[str | None, Security(API_KEY)] = None,
        ) -> Caller:
            address = request.client.host if request.client else "unknown"
            throttled = limits.failed_auth.check(address)
            if throttled is not None:
                raise too_many(throttled, f"failed authentications from {address}")
            presented = bearer.credentials if bearer is not None else api_key
            caller = keys.authenticate(presented) if presented else None
            if caller is None:
                throttled = limits.failed_auth.take(address)
                if throttled is not None:
                    raise too_many(throttled, f"failed authentications from {address}")
                raise _unauthenticated(presented)
            _note_caller(request, caller)
            throttled = limits.clients.take(caller.client_id)
            if throttled is not None:
                raise too_many(throttled, f"requests of client {caller.client_id}")
            if not allowed(caller, scope):
                raise ProblemError(
                    403,
                    "forbidden",
                    f"this key ({caller.client_id}, system {caller.system}) lacks the "
                    f"{scope!r} scope needed here; it has: "
                    f"{', '.join(sorted(caller.scopes)) or 'none'}",
                    headers={"WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope"'},
                )
            return caller

        return dependency

    return require


def _unauthenticated(presented: str | None) -> ProblemError:
    if not presented:
        return ProblemError(
            401,
            "unauthenticated",
            "no API key: send 'Authorization: Bearer <key>' (or 'X-API-Key: <key>'); "
            "create a key with `concord keys create --system <crm|erp|billing>`",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    return ProblemError(
        401,
        "unauthenticated",
        "the API key is not valid (unknown, revoked or expired); check for copy errors or "
        "create a new key with `concord keys create`",
        headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
    )


def too_many(limited: Limited, what: str) -> ProblemError:
    """429 with ``Retry-After``: how long until the bucket holds a token again."""
    return ProblemError(
        429,
        "rate-limited",
        f"too many {what}: the limit is {limited.rate_per_s:g} per second (bursts of "
        f"{limited.burst}); retry after {limited.retry_after_s} s",
        headers={"Retry-After": str(limited.retry_after_s)},
    )


def allowed(caller: Caller, scope: str) -> bool:
    """The key must hold the scope, whatever its system.

    Why not "admin-system keys may do admin things": an ``admin`` key handed out with only
    ``read`` (an auditor's) would then mint keys with every scope.
    """
    return scope in caller.scopes


# -- command headers -------------------------------------------------------------------

_ETAG = re.compile(r'^\s*(?:W/)?"?\s*(\d{1,18})\s*"?\s*$')


def parse_if_match(value: str | None) -> int | None:
    """``3``, ``"3"`` and ``W/"3"`` all mean version 3; ``*`` means "whatever exists"."""
    if value is None or value.strip() in {"", "*"}:
        return None
    match = _ETAG.match(value)
    if match is None:
        raise ProblemError(
            400,
            "invalid-if-match",
            f'If-Match must be an aggregate version such as "3" (as sent in ETag), not {value!r}',
            errors=[
                {
                    "field": "header.If-Match",
                    "message": "expected a version number",
                    "type": "invalid-if-match",
                }
            ],
        )
    return int(match.group(1))


@dataclass(frozen=True)
class CommandContext:
    """Everything a command takes from headers: provenance, idempotency, expected version."""

    origin: Origin
    idempotency_key: str | None
    expected_version: int | None


_IDEMPOTENCY_DOC = (
    "Makes retries safe: the same key with the same request returns the first response "
    "(with `Idempotent-Replayed: true`) and writes nothing; the same key with a different "
    "request is refused with 422 `idempotency-key-reused`. Keys are scoped per API client "
    "(the key's `client_id`): two clients may use the same key without meeting, and a "
    "client's key is remembered for good (it names the command's stored answer). Up to 255 "
    "characters, e.g. the source system's event or record id."
)

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255, description=_IDEMPOTENCY_DOC),
]
SourceRecordId = Annotated[
    str | None,
    Header(
        alias="Concord-Source-Record-Id",
        max_length=255,
        description="The record's id in the calling system. On create, the canonical id is "
        "derived from it, so re-sending the same record reaches the same aggregate.",
    ),
]
SourceEventId = Annotated[
    str | None,
    Header(
        alias="Concord-Source-Event-Id",
        max_length=255,
        description="The source system's event id (deduplication, audit).",
    ),
]
CorrelationId = Annotated[
    str | None,
    Header(
        alias="Concord-Correlation-Id",
        max_length=255,
        description="The business transaction, e.g. the CRM opportunity id.",
    ),
]
CausationId = Annotated[
    str | None,
    Header(
        alias="Concord-Causation-Id",
        max_length=255,
        description="The event or request that caused this command.",
    ),
]
OccurredAt = Annotated[
    AwareDatetime | None,
    Header(
        alias="Concord-Occurred-At",
        description="When it happened at the source (ISO 8601 with offset). An older "
        "source time than the aggregate holds for a field does not overwrite it (recorded as "
        f"stale). At most {int(MAX_SOURCE_CLOCK_AHEAD.total_seconds()) // 60} minutes after "
        "the hub's clock: a later time is refused with 422 `invalid-value` (field "
        "`occurred_at`), since a source cannot report the future.",
    ),
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        # The form parse_if_match accepts, stated so clients and fuzzers know it.
        pattern=r'^\s*(?:\*|(?:W/)?"?\s*\d{1,18}\s*"?)?\s*$',
        description='Expected current version (the ETag, e.g. `"3"`); 412 if stale.',
    ),
]


async def create_headers(
    idempotency_key: IdempotencyKey = None,
    source_record_id: SourceRecordId = None,
    source_event_id: SourceEventId = None,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
    occurred_at: OccurredAt = None,
) -> CommandContext:
    """Headers of a creation command (no If-Match: there is no version yet).

    Async, like every dependency here, because it only parses: a sync dependency would cost
    a thread-pool hop per request.
    """
    origin = Origin(
        source_record_id=source_record_id,
        source_event_id=source_event_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        occurred_at=occurred_at,
    )
    return CommandContext(origin, idempotency_key, None)


async def command_headers(
    idempotency_key: IdempotencyKey = None,
    if_match: IfMatch = None,
    source_record_id: SourceRecordId = None,
    source_event_id: SourceEventId = None,
    correlation_id: CorrelationId = None,
    causation_id: CausationId = None,
    occurred_at: OccurredAt = None,
) -> CommandContext:
    """Headers of a command on an existing aggregate."""
    origin = Origin(
        source_record_id=source_record_id,
        source_event_id=source_event_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
        occurred_at=occurred_at,
    )
    return CommandContext(origin, idempotency_key, parse_if_match(if_match))
