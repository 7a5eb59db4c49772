"""Tracing set-up: which exporter the settings select (without touching the global)."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from adapters.settings import Settings
from adapters.telemetry import _traces_endpoint, build_tracer_provider


def test_off_by_default() -> None:
    assert build_tracer_provider(Settings()) is None


def test_console_exporter_carries_service_name() -> None:
    provider = build_tracer_provider(Settings(otel_exporter="console", service_name="hub-x"))
    assert provider is not None
    try:
        assert provider.resource.attributes["service.name"] == "hub-x"
        processors = provider._active_span_processor._span_processors
        assert isinstance(processors[0].span_exporter, ConsoleSpanExporter)  # type: ignore[attr-defined]
    finally:
        provider.shutdown()


def test_otlp_endpoint_gets_traces_path() -> None:
    assert _traces_endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert _traces_endpoint("http://c:4318/v1/traces/") == "http://c:4318/v1/traces"
    assert _traces_endpoint(None) is None
    provider = build_tracer_provider(
        Settings(otel_exporter="otlp", otel_endpoint="http://127.0.0.1:4318")
    )
    assert provider is not None
    provider.shutdown()
