"""OpenTelemetry tracing set-up for the hub process.

Why here and not at import time: the exporter depends on settings (none / console / OTLP), and
OpenTelemetry lets a process install its global tracer provider only once. Code elsewhere
just calls ``opentelemetry.trace.get_tracer(__name__)``; until :func:`configure_tracing` runs,
those tracers are no-ops, so libraries and tests pay nothing when tracing is off.
"""

from __future__ import annotations

import threading

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from adapters.settings import Settings

__all__ = ["build_tracer_provider", "configure_tracing", "shutdown_tracing"]

_OTLP_TRACES_PATH = "/v1/traces"

_lock = threading.Lock()
_provider: TracerProvider | None = None


def current_traceparent() -> str | None:
    """The active trace context (the API request's span) as W3C ``traceparent``, if any.

    Handed to the hub by the composition root: the hub stamps it on events without
    knowing OpenTelemetry."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def build_tracer_provider(settings: Settings) -> TracerProvider | None:
    """Build (but do not install) the provider the settings ask for; ``None`` when off.

    Separate from :func:`configure_tracing` so it can be tested and used without touching
    the process-wide global.
    """
    if settings.otel_exporter == "none":
        return None
    exporter: SpanExporter
    if settings.otel_exporter == "console":
        exporter = ConsoleSpanExporter(service_name=settings.service_name)
    else:
        # Imported only when used: the OTLP exporter pulls in requests and protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=_traces_endpoint(settings.otel_endpoint))
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    # Batching keeps export I/O off the request path; spans are flushed on shutdown.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _traces_endpoint(endpoint: str | None) -> str | None:
    """Turn a collector base URL into the OTLP/HTTP traces URL.

    ``None`` leaves the exporter to the standard ``OTEL_EXPORTER_OTLP_*`` variables. A signal
    path given explicitly is kept, so both ``http://c:4318`` and ``http://c:4318/v1/traces``
    work.
    """
    if endpoint is None:
        return None
    base = endpoint.rstrip("/")
    return base if base.endswith(_OTLP_TRACES_PATH) else base + _OTLP_TRACES_PATH


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """Install the global tracer provider once per process; return it (``None`` when off).

    Repeated calls return the provider already installed, whatever the settings say:
    OpenTelemetry refuses to replace a global provider, so pretending to reconfigure would
    only hide that the new settings are ignored.
    """
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        provider = build_tracer_provider(settings)
        if provider is None:
            return None
        trace.set_tracer_provider(provider)
        _provider = provider
        return provider


def shutdown_tracing() -> None:
    """Flush pending spans and stop the exporter; safe to call when tracing is off.

    The provider stays installed as the global (OpenTelemetry cannot uninstall it); spans
    started afterwards are dropped.
    """
    with _lock:
        provider = _provider
    if provider is not None:
        provider.shutdown()


_meter_provider: object | None = None


def configure_metrics(settings: Settings) -> bool:
    """Install a global meter provider exporting every 30 s (console or OTLP); once per
    process. The hub's instruments (``concord.store.appended``, ``concord.relay.published``,
    ``concord.relay.lag``, ``concord.subscriber.*``) are no-ops until this runs."""
    global _meter_provider
    if settings.otel_exporter == "none":
        return False
    with _lock:
        if _meter_provider is not None:
            return True
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            MetricExporter,
            PeriodicExportingMetricReader,
        )

        exporter: MetricExporter
        if settings.otel_exporter == "console":
            exporter = ConsoleMetricExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            base = settings.otel_endpoint.rstrip("/") if settings.otel_endpoint else None
            exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None)
        provider = MeterProvider(
            resource=Resource.create({SERVICE_NAME: settings.service_name}),
            metric_readers=[PeriodicExportingMetricReader(exporter, 30_000)],
        )
        metrics.set_meter_provider(provider)
        _meter_provider = provider
        return True
