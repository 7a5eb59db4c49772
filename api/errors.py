"""Every error as an RFC 9457 problem (``application/problem+json``).

Why one shape for everything (domain rules, validation, auth, routing, crashes): a client
needs one error parser, and each problem says *where* the input was wrong with a dotted path
(``body.lines.0.unit_price``, ``header.If-Match``, ``path.id``) so a form or a migration
report can point at the exact value.

The hub knows no HTTP: its errors carry a ``code``, a ``field`` and whether a retry can
help; the status each kind answers with is decided here (:data:`STATUS`, looked up along
the error's class hierarchy, so a new rule in ``hub`` gets its family's status). Every
problem from a hub or store error says ``retryable``: a concurrency conflict (409
``concurrent-modification``) or a busy store (503) may succeed when sent again, an invalid
state transition (409 ``invalid-transition``) never will.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from adapters.postgres.committer import EventTooLarge
from api.responses import PROBLEM_MEDIA_TYPE, ProblemResponse
from api.routes import plural
from hub.application.ports import StoreError
from hub.application.service import CommandResult, IdempotencyMismatch, UnknownCommand
from hub.domain.bounded import NO_NUL
from hub.domain.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    DomainError,
    ForeignIdentifier,
    InvalidTransition,
    MergedAway,
    NotFound,
    OwnershipViolation,
    VersionMismatch,
)

log = logging.getLogger("concord.api")

PROBLEM_BASE = "https://concord.dev/problems/"

#: Fields of a domain error that name a request header rather than a body value.
HEADER_FIELDS = frozenset(
    {
        "If-Match",
        "Idempotency-Key",
        "Concord-Source-Record-Id",
        "Concord-Source-Event-Id",
        "Concord-Correlation-Id",
        "Concord-Causation-Id",
        "Concord-Occurred-At",
    }
)

#: Short, stable titles for codes the API itself produces (domain codes get a derived one).
_TITLES = {
    "unauthenticated": "Missing or invalid API key",
    "forbidden": "Not allowed",
    "rate-limited": "Too many requests",
    "unhealthy": "PostgreSQL or NATS is unreachable",
    "field-not-owned": "Field owned by another system",
    "validation-failed": "Request validation failed",
    "malformed-json": "Malformed JSON",
    "unsupported-media-type": "Unsupported media type",
    "internal-error": "Internal server error",
}


class ProblemItem(BaseModel):
    """One wrong input: where it is (dotted path) and what is wrong with it."""

    field: str = Field(description="Dotted path, e.g. `body.lines.0.unit_price`.")
    message: str
    type: str | None = Field(default=None, description="Machine-readable error kind.")


class Problem(BaseModel):
    """RFC 9457 problem details, plus ``code`` and ``errors`` extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the problem kind; stable per `code`.")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    code: str = Field(description="Short machine-readable kind, e.g. `stale-version`.")
    errors: list[ProblemItem] = Field(default_factory=list)
    field: str | None = Field(default=None, description="Ownership problems: the field.")
    owner: str | None = Field(default=None, description="Ownership problems: its owner(s).")
    retryable: bool | None = Field(
        default=None,
        description="Refusals by the hub: whether sending the same request again can succeed "
        "(`concurrent-modification`, `store-busy`: yes; `invalid-transition`: never).",
    )
    survivor_id: str | None = Field(
        default=None, description="Merged customer: the surviving customer to address instead."
    )
    existing_id: str | None = Field(
        default=None, description="`already-exists`: the id of the aggregate already there."
    )
    location: str | None = Field(
        default=None, description="`already-exists`: its URL (also the `Location` header)."
    )


class ProblemError(Exception):
    """Raised by API code for problems that are not domain rules (auth, headers, limits)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.title = title


def input_problem(status: int, code: str, message: str, field: str) -> ProblemError:
    """A problem about one input, named by its dotted path (``body.client_id``)."""
    return ProblemError(status, code, message, errors=[{"field": field, "message": message}])


def title_for(code: str, status: int) -> str:
    if code in _TITLES:
        return _TITLES[code]
    if code:
        return code.replace("-", " ").capitalize()
    return HTTPStatus(status).phrase


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: Iterable[Mapping[str, Any]] = (),
    title: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title or title_for(code, status),
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        "errors": [dict(e) for e in errors],
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(
    body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> ProblemResponse:
    return ProblemResponse(body, status_code=int(body["status"]), headers=dict(headers or {}))


# -- domain errors ---------------------------------------------------------------------

#: HTTP status per kind of hub refusal; the most specific class along the MRO wins.
STATUS: dict[type[Exception], int] = {
    DomainError: 422,
    OwnershipViolation: 403,
    ForeignIdentifier: 403,
    NotFound: 404,
    UnknownCommand: 404,
    AlreadyExists: 409,
    InvalidTransition: 409,
    ConcurrencyConflict: 409,
    VersionMismatch: 412,
    IdempotencyMismatch: 422,
    StoreError: 503,
    EventTooLarge: 413,
}

Refusal = DomainError | StoreError


def status_of(error: Refusal) -> int:
    """The HTTP status a hub or store error answers with."""
    for cls in type(error).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 422  # pragma: no cover - DomainError and StoreError are both mapped


def result_status(result: CommandResult) -> int:
    """201 for a command that created its aggregate (also when replayed), else 200."""
    return 201 if result.created else 200


Locator = Callable[[str], str]


def default_locator(field: str) -> str:
    """Where a domain error's ``field`` lives when the route gives no better idea."""
    if field in HEADER_FIELDS:
        return f"header.{field}"
    if field in {"id", "external_id", "system", "entity"}:
        return f"path.{field}"
    return field


def body_locator(body_fields: Iterable[str], body_prefix: str = "body") -> Locator:
    """Locator for a command: its input model's fields are in the body, ``id`` in the path."""
    names = frozenset(body_fields)

    def locate(field: str) -> str:
        head = field.split(".", 1)[0]
        if head in names:
            return f"{body_prefix}.{field}"
        return default_locator(field)

    return locate


def domain_problem(
    error: Refusal, instance: str | None, locate: Locator = default_locator
) -> dict[str, Any]:
    """Problem body for a refused command or query; the message is the detail, verbatim."""
    errors = []
    if error.field:
        errors.append({"field": locate(error.field), "message": error.message, "type": error.code})
    extra: dict[str, Any] = {"retryable": error.retryable}
    if isinstance(error, OwnershipViolation):
        extra |= {"field": error.field, "owner": error.owner, "caller": error.caller}
    if isinstance(error, MergedAway):
        extra |= {"survivor_id": str(error.survivor_id)}
    if isinstance(error, AlreadyExists) and error.existing is not None:
        entity, existing_id = error.existing
        extra |= {
            "existing_id": str(existing_id),
            "location": f"/v1/{plural(entity)}/{existing_id}",
        }
    return problem_body(
        status_of(error), error.code, error.message, instance=instance, errors=errors, **extra
    )


def domain_headers(error: Refusal) -> dict[str, str]:
    """``Retry-After`` on store failures; ``Location`` of the aggregate a duplicate create found."""
    if isinstance(error, AlreadyExists) and error.existing is not None:
        entity, existing_id = error.existing
        return {"Location": f"/v1/{plural(entity)}/{existing_id}"}
    return {"Retry-After": "1"} if isinstance(error, StoreError) else {}


# -- validation errors -----------------------------------------------------------------


def dotted(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def validation_items(errors: Iterable[Any], prefix: str = "") -> list[dict[str, Any]]:
    """pydantic errors as problem items; ``prefix`` re-roots their paths (batch lines)."""
    items = []
    for error in errors:
        path = dotted(error.get("loc", ()))
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        message = str(error.get("msg", "invalid"))
        if error.get("type") == "extra_forbidden":
            message = "unknown field (not part of this request's schema)"
        elif (error.get("ctx") or {}).get("pattern") == NO_NUL:
            message = "must not contain a NUL character (\\u0000)"
        items.append({"field": path, "message": message, "type": error.get("type")})
    return items


def validation_problem(
    error: ValidationError | RequestValidationError, instance: str | None, prefix: str = ""
) -> dict[str, Any]:
    items = validation_items(error.errors(), prefix)
    first = items[0] if items else {"field": "", "message": "invalid"}
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    detail = f"{first['field']}: {first['message']}{more}"
    # Domain value rules checked during parsing (money's currency and scale) keep their own
    # code, so a client sees the same "invalid-value" however deep the value sat.
    code = (
        "invalid-value"
        if all(i.get("type") == "invalid-value" for i in items)
        else ("validation-failed")
    )
    return problem_body(422, code, detail, instance=instance, errors=items)


# -- handlers --------------------------------------------------------------------------


def _instance(request: Request) -> str:
    return request.url.path


async def _api_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    body = problem_body(
        exc.status,
        exc.code,
        exc.detail,
        instance=_instance(request),
        errors=exc.errors,
        title=exc.title,
    )
    return problem_response(body, exc.headers)


async def _domain_error(request: Request, exc: Exception) -> Response:
    """Hub and store errors outside a command's own handling (queries, body parsing)."""
    assert isinstance(exc, DomainError | StoreError)
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    locate = getattr(endpoint, "concord_locate", default_locator)
    return problem_response(domain_problem(exc, _instance(request), locate), domain_headers(exc))


async def _request_validation(request: Request, exc: Exception) -> Response:
    """422 with every error's path; malformed JSON is 400 and a non-JSON body is 415."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    instance = _instance(request)
    bad_json = [e for e in errors if e.get("type") == "json_invalid"]
    if bad_json:
        where = bad_json[0].get("loc", ("body",))
        reason = (bad_json[0].get("ctx") or {}).get("error", "JSON decode error")
        position = where[1] if len(where) > 1 else "?"
        return problem_response(
            problem_body(
                400,
                "malformed-json",
                f"the request body is not valid JSON: {reason} at character {position}",
                instance=instance,
                errors=[{"field": "body", "message": str(reason), "type": "json_invalid"}],
            )
        )
    if isinstance(getattr(exc, "body", None), bytes | bytearray):
        # FastAPI passes the raw bytes on when the Content-Type is not JSON.
        return problem_response(
            problem_body(
                415,
                "unsupported-media-type",
                "send the command as JSON with 'Content-Type: application/json'",
                instance=instance,
                errors=[{"field": "header.Content-Type", "message": "expected application/json"}],
            )
        )
    return problem_response(validation_problem(exc, instance))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (404 unknown path, 405 wrong method) and Starlette's own (413)."""
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    codes = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}
    code = codes.get(status, HTTPStatus(status).phrase.lower().replace(" ", "-"))
    detail = str(exc.detail) if exc.detail else HTTPStatus(status).phrase
    if status == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
    headers = dict(exc.headers or {})
    if status == 405:
        allowed = _allowed_methods(request) or headers.get("allow") or headers.get("Allow", "")
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        headers["Allow"] = allowed
        detail = f"{request.method} is not allowed here; allowed: {allowed or 'none'}"
    return problem_response(
        problem_body(status, code, detail, instance=_instance(request)), headers
    )


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path.

    Starlette answers 405 with the methods of the first route whose path matched, so with
    ``GET /v1/keys`` and ``POST /v1/keys`` declared as two routes, ``Allow`` named only one.
    """
    probe = {**request.scope, "method": "CONCORD-PROBE"}
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        match, _ = route.matches(probe)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _leaf_routes(routes: Iterable[Any]) -> Iterable[Any]:
    """Routes with methods, looking inside included routers (FastAPI wraps each one)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


async def _unexpected(request: Request, exc: Exception) -> Response:
    """500 that names a reference to look up in the log, and nothing of the exception."""
    reference = uuid.uuid4().hex[:12]
    log.error(
        "unhandled error %s on %s %s", reference, request.method, request.url.path, exc_info=exc
    )
    return problem_response(
        problem_body(
            500,
            "internal-error",
            f"the server failed to handle this request; it was logged as {reference}",
            instance=_instance(request),
            reference=reference,
        ),
        # The server may be in a bad state for this connection (a half-read body): tell the
        # client it ends here, so it does not send the next request into a reset.
        {"Connection": "close"},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _api_problem)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(StoreError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring problem+json for these statuses."""
    descriptions = {
        400: "Malformed request (bad JSON, bad header)",
        401: "Missing or invalid API key",
        403: "Scope missing, or a field owned by another system",
        404: "No such aggregate, command or endpoint",
        409: "Concurrent modification or invalid state transition",
        412: "If-Match names a stale version",
        413: "Request body too large",
        415: "Unsupported media type",
        422: "Invalid input, rule violated, or Idempotency-Key reused",
        429: "Rate limit of this client (or of failed authentications) reached; see Retry-After",
        500: "Internal error",
        503: "Store busy; retry",
    }
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": descriptions.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
        }
        for status in statuses
    }
