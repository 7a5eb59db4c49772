"""Command endpoints, generated from the hub's catalogue: one route per command spec.

Why generated: the catalogue is the single list of use cases; the HTTP routes, the batch
endpoint and the OpenAPI document all come from it, so they cannot disagree. One route per
spec (rather than one ``/{entity}/{id}/{command}`` route) gives every command its own typed
input schema and ``operationId`` (``orders_accept``) in OpenAPI, which client generators need.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Path, Request
from starlette.responses import Response

from api.deps import CommandContext, command_headers, create_headers
from api.errors import (
    body_locator,
    domain_headers,
    domain_problem,
    problem_response,
    result_status,
)
from api.errors import problem_responses as problems
from api.redaction import redact_body
from api.responses import JSONBytes
from api.routes import plural
from api.schemas import CommandOutcome
from hub.application.commands import Command, NoInput
from hub.application.ports import StoreError
from hub.application.service import Caller, CommandRequest, CommandResult
from hub.domain.errors import DomainError

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

#: Largest single command body: an invoice of 5,000 lines fits; bulk loads go to /v1/batch.
MAX_COMMAND_BYTES = 8 * 1024 * 1024


def command_response(result: CommandResult, location: str | None = None) -> Response:
    """The hub's result with ``ETag`` = version, ``Location`` for creations, replay marker."""
    body = result.body
    headers = {"ETag": f'"{body["version"]}"'}
    if location is not None and result.created:
        headers["Location"] = location
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONBytes(body, status_code=result_status(result), headers=headers)


def _endpoint(
    runtime: Runtime, spec: Command, require_write: Callable[..., Any]
) -> Callable[..., Awaitable[Response]]:
    """A route function for ``spec`` with a signature FastAPI can read.

    The parameters are assembled at run time (the body's type is the spec's input model),
    so the function gets an explicit ``__signature__`` rather than annotations.
    """
    collection = plural(spec.entity)
    locate = body_locator(spec.input_model.model_fields)
    takes_nothing = issubclass(spec.input_model, NoInput)

    async def endpoint(
        request: Request,
        caller: Caller,
        context: CommandContext,
        payload: Any = None,
        id: UUID | None = None,
    ) -> Response:
        if payload is None and takes_nothing:
            payload = spec.input_model()
        command = CommandRequest(
            entity=spec.entity,
            name=spec.name,
            payload=payload,
            caller=caller,
            aggregate_id=id,
            origin=context.origin,
            expected_version=context.expected_version,
            idempotency_key=context.idempotency_key,
        )
        try:
            # The hub blocks (reads, then waits for the group commit): run it on the
            # runtime's command threads, carrying the request's context (trace) along.
            # Cheaper per request than the generic thread pool of a sync route.
            context_copy = contextvars.copy_context()
            result = await asyncio.get_running_loop().run_in_executor(
                runtime.executor, context_copy.run, runtime.hub.execute, command
            )
        except (DomainError, StoreError) as refused:
            return problem_response(
                domain_problem(refused, request.url.path, locate), domain_headers(refused)
            )
        location = f"/v1/{collection}/{result.body['id']}" if spec.creates else None
        body = redact_body(runtime.policy, caller.system, spec.entity, result.body)
        return command_response(replace(result, body=body), location)

    body_type: Any = spec.input_model
    body_default: Any = Body(description=spec.input_model.__doc__ or None)
    if takes_nothing:
        body_type = spec.input_model | None
        body_default = Body(default=None, description="Nothing needed: send `{}` or no body.")
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("request", kw, annotation=Request),
        inspect.Parameter("caller", kw, annotation=Caller, default=Depends(require_write)),
        inspect.Parameter(
            "context",
            kw,
            annotation=CommandContext,
            default=Depends(create_headers if spec.creates else command_headers),
        ),
        inspect.Parameter("payload", kw, annotation=body_type, default=body_default),
    ]
    if not spec.creates:
        params.append(
            inspect.Parameter(
                "id",
                kw,
                annotation=Annotated[UUID, Path(description=f"The {spec.entity}'s id.")],
            )
        )
    endpoint.__signature__ = inspect.Signature(params, return_annotation=Response)  # type: ignore[attr-defined]
    # Domain errors raised while FastAPI parses the body (value objects such as Money check
    # themselves) reach the app-wide handler, which finds the route's locator here.
    endpoint.concord_locate = locate  # type: ignore[attr-defined]
    endpoint.__name__ = f"{collection}_{spec.name}"
    endpoint.__doc__ = spec.description or spec.summary
    return endpoint


def build(runtime: Runtime, require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1")
    require_write = require("write")
    for spec in runtime.hub.catalogue.all():
        collection = plural(spec.entity)
        if spec.creates:
            path, status = f"/{collection}", 201
            declared = problems(400, 401, 403, 404, 409, 413, 415, 422, 503)
            extra = {
                "Location": {
                    "description": "URL of the new aggregate",
                    "schema": {"type": "string"},
                }
            }
        else:
            path, status = f"/{collection}/{{id}}/{spec.name}", 200
            declared = problems(400, 401, 403, 404, 409, 412, 413, 415, 422, 503)
            extra = {}
        headers = {
            "ETag": {
                "description": "The aggregate's version after the command",
                "schema": {"type": "string"},
            },
            "Idempotent-Replayed": {
                "description": "`true` when this is a stored response",
                "schema": {"type": "string"},
            },
            **extra,
        }
        router.add_api_route(
            path,
            _endpoint(runtime, spec, require_write),
            methods=["POST"],
            status_code=status,
            response_model=CommandOutcome,
            response_class=JSONBytes,
            summary=spec.summary,
            description=(spec.description or spec.summary) + _OWNERSHIP_NOTE,
            operation_id=f"{collection}_{spec.name}",
            tags=[collection],
            responses={status: {"headers": headers}, **declared},
        )
    return router


_OWNERSHIP_NOTE = (
    "\n\nRefused with 403 `field-not-owned` if the caller's system does not own a field this "
    "command writes (see `GET /v1/ownership`); nothing is applied and a conflict is recorded."
)
