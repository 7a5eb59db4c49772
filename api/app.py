"""The FastAPI application: ``create_app(runtime)`` wires routes, errors and tracing.

Why a factory taking a runtime: the composition root (``adapters.bootstrap``) owns every
connection; the app only borrows it. Tests build a runtime on their own database schema and
wrap it in an app; the CLI does the same after starting the embedded servers. Nothing here
reads settings or opens connections at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from opentelemetry.trace import TracerProvider

from api import docs_pages, errors
from api.deps import authenticator
from api.errors import Problem
from api.limits import BodyLimitMiddleware
from api.rate_limits import RequestLimits
from api.responses import JSONBytes
from api.routes import (
    admin,
    batch,
    commands,
    delivery,
    exceptions,
    health,
    inbound,
    lineage,
    listing,
    mappings,
    matches,
    metrics,
    processes,
    projections,
    queries,
    reconciliation,
    slas,
)
from api.routes.commands import MAX_COMMAND_BYTES
from api.routes.health import HealthProblem
from api.routes.queries import api_version
from api.schemas import BatchLine
from api.telemetry import TracingMiddleware
from hub.domain.bounded import NO_NUL
from hub.domain.money import EXPONENTS

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

DESCRIPTION = """\
Concord keeps ERP, CRM and billing systems in agreement through one event-sourced canonical
model (customers, contracts, orders, invoices, payments).

* **Auth**: `Authorization: Bearer <key>` (or `X-API-Key`). Keys belong to one system
  (crm / erp / billing / admin) and carry scopes: `read` for GETs, `write` for commands,
  `admin` for keys, conflicts and dead letters (required whatever the system).
  `concord keys create --system crm` makes one. Over a client's rate limit (or after too
  many failed authentications from one address): 429 with `Retry-After`.
* **Personal data** fields a caller's system may not read (`personal_data` in
  `GET /v1/ownership`) are returned as `"redacted"`.
* **Commands** are `POST`s: creation on the collection (`POST /v1/orders` → 201 + `Location`),
  others on the aggregate (`POST /v1/orders/{id}/accept`). Every command takes
  `Idempotency-Key` and, on existing aggregates, `If-Match` (the `ETag` version; stale → 412).
  Concurrent writers: one wins, the other gets 409.
* **Ownership**: a command writing a field its caller's system does not own is refused with
  403 (`field-not-owned`, naming the field and owner) and recorded as a conflict.
* **Errors** are RFC 9457 `application/problem+json` with an `errors` list of dotted paths.
"""


def create_app(
    runtime: Runtime,
    *,
    tracer_provider: TracerProvider | None = None,
    owns_runtime: bool = False,
) -> FastAPI:
    """The ``/v1`` API over one runtime (which the caller keeps and closes, unless
    ``owns_runtime``: then the app's shutdown closes it, as in a uvicorn worker).

    ``tracer_provider`` defaults to OpenTelemetry's global one (set by the CLI from settings).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """Release held deliveries while serving; on the way out, close the operator
        endpoints' NATS connection on its own loop."""
        releaser = asyncio.create_task(release_held(runtime))
        try:
            yield
        finally:
            releaser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await releaser
            await runtime.close_nats()
            if owns_runtime:
                runtime.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Concord",
        version=api_version(),
        description=DESCRIPTION,
        default_response_class=JSONBytes,
        docs_url=None,  # served from the package by api.docs_pages (no CDN)
        redoc_url=None,
        # One span per request from our own middleware (see api.telemetry), not FastAPI's.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.runtime = runtime
    errors.install(app)
    docs_pages.install(app)
    app.add_middleware(
        BodyLimitMiddleware,
        default=MAX_COMMAND_BYTES,
        per_path={"/v1/batch": batch.MAX_BYTES},
        per_prefix={"/v1/webhooks/": inbound.MAX_WEBHOOK_BYTES},
    )
    # Added last, so it runs first: the span also covers refused (too large) requests.
    app.add_middleware(TracingMiddleware, tracer_provider=tracer_provider)

    limits = RequestLimits.from_settings(runtime.settings)
    require = authenticator(runtime.keys, limits)
    # Each router carries the /v1 prefix itself (not via a parent router), so a matched
    # route's ``path`` is the full template that tracing reports as ``http.route``.
    for module in (
        commands,
        listing,
        queries,
        batch,
        admin,
        delivery,
        health,
        matches,
        mappings,
        projections,
        reconciliation,
        lineage,
        slas,
        metrics,
        processes,
        exceptions,
    ):
        app.include_router(module.build(runtime, require))
    # Webhooks authenticate by each system's signature, throttled like failed keys.
    app.include_router(inbound.build(runtime, require, limits.failed_auth))

    def openapi() -> dict[str, Any]:
        """The generated document plus the shared Problem and BatchLine schemas.

        Routes declare problem responses by ``$ref`` (``application/problem+json``), which
        FastAPI does not add to the components by itself.
        """
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=_tags(runtime),
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            template = "#/components/schemas/{model}"
            for model in (Problem, BatchLine, HealthProblem):
                schema = model.model_json_schema(ref_template=template)
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            _problem_422(document)
            _problem_429(document)
            _stated_constraints(document)
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def release_held(runtime: Runtime) -> None:
    """Apply held inbound deliveries whose dependency arrived some other way than through a
    webhook (an API command, a batch): every ``CONCORD_INBOUND_RELEASE_INTERVAL_S``, if any
    delivery is held. Every API worker runs it; concurrent releases are safe (a released
    delivery commits once, by its receipt)."""
    interval = runtime.settings.inbound_release_interval_s
    if interval <= 0:
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            await loop.run_in_executor(runtime.executor, runtime.inbound.release_if_held)
        except Exception:  # the next round tries again; a failure must not stop serving
            logging.getLogger("concord.inbound").exception("releasing held deliveries failed")


def _problem_422(document: dict[str, Any]) -> None:
    """Replace FastAPI's default 422 (``HTTPValidationError``) with our problem+json."""
    ours = errors.problem_responses(422)[422]
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                responses["422"] = ours


def _problem_429(document: dict[str, Any]) -> None:
    """Every route that takes a key may answer 429 (rate limits are applied with the key)."""
    ours = errors.problem_responses(429)[429]
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if "401" in responses or 401 in responses:
                responses.setdefault("429", ours)


def _stated_constraints(document: dict[str, Any]) -> None:
    """Say in the document what the server enforces but pydantic's schema leaves out.

    * An optional header or query parameter is absent, never JSON ``null``: FastAPI writes
      ``anyOf [..., {"type": "null"}]``, which invites clients to send the text ``null``.
    * A ``currency`` is one of the ISO 4217 codes Concord knows (``hub.domain.money``).
    * No path or query value may hold a NUL character (``api.limits`` refuses it with 422
      before routing), so every free-text parameter carries the ``NO_NUL`` pattern.
    """
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                options = [o for o in schema.get("anyOf", []) if o.get("type") != "null"]
                if "anyOf" in schema and len(options) == 1:
                    del schema["anyOf"]
                    schema.update(options[0])
                free_text = schema.get("type") == "string" and not (
                    {"pattern", "enum", "format", "const"} & set(schema)
                )
                if parameter.get("in") in ("path", "query") and free_text:
                    schema["pattern"] = NO_NUL
    codes = sorted(EXPONENTS)
    for schema in document.get("components", {}).get("schemas", {}).values():
        currency = schema.get("properties", {}).get("currency")
        for option in [] if currency is None else [currency, *currency.get("anyOf", [])]:
            if option.get("type") == "string":
                option["enum"] = codes


def _tags(runtime: Runtime) -> list[dict[str, str]]:
    names = {s.entity for s in runtime.hub.catalogue.all()}
    tags = [
        {"name": f"{e}s", "description": f"{e.capitalize()} commands and queries"}
        for e in sorted(names)
    ]
    tags += [
        {"name": "batch", "description": "Bulk NDJSON ingest (per-line results)"},
        {"name": "lookup", "description": "Find aggregates by another system's id"},
        {"name": "ownership", "description": "System-of-record policy"},
        {"name": "schemas", "description": "Event JSON Schemas"},
        {"name": "admin", "description": "Keys and conflicts (admin only)"},
        {
            "name": "subscribers",
            "description": "Lag, dead letters and replays of the NATS subscribers (admin only)",
        },
        {
            "name": "health",
            "description": "Liveness and delivery health: PostgreSQL, NATS, relay, subscribers",
        },
        {"name": "matches", "description": "Customer match review queue (admin only)"},
        {"name": "mappings", "description": "The product catalogue: SKUs and every system's ids"},
        {
            "name": "inbound",
            "description": "Source systems' webhooks and the inbound log (log: admin only)",
        },
    ]
    return tags
