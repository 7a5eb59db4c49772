"""One OpenTelemetry span per HTTP request (tracer ``concord.api``).

Why our own middleware rather than FastAPI's built-in telemetry: we want exactly one server
span per request carrying Concord's attributes (route template, client id, correlation id)
that the store's save spans nest under, and nothing else on the hot path. The tracer is a
no-op until the CLI installs a provider (``adapters.telemetry.configure_tracing``), so tests
and embedded use pay almost nothing. An incoming W3C ``traceparent`` is continued, so a
caller's trace runs on into the hub.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import SPAN_KEY

TRACER_NAME = "concord.api"


class TracingMiddleware:
    """Pure ASGI (no ``BaseHTTPMiddleware``): it must not add a task or copy the body."""

    def __init__(self, app: ASGIApp, tracer_provider: TracerProvider | None = None) -> None:
        self.app = app
        # None: the global provider (a proxy until the CLI configures one). Tests pass their
        # own provider, since the global one can be installed only once per process.
        self.tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        with self.tracer.start_as_current_span(
            f"{method} {scope['path']}",
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            recording = span.is_recording()
            if recording:
                span.set_attribute("http.request.method", method)
                span.set_attribute("url.path", scope["path"])
                correlation = headers.get("concord-correlation-id")
                if correlation:
                    span.set_attribute("concord.correlation_id", correlation)
            scope[SPAN_KEY] = span
            status: dict[str, Any] = {}

            async def send_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, send_status)
            finally:
                if recording:
                    route = getattr(scope.get("route"), "path", None)
                    if route:
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    code = status.get("code", 500)
                    span.set_attribute("http.response.status_code", code)
                    if code >= 500:
                        span.set_status(Status(StatusCode.ERROR))
