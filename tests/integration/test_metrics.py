"""The hub's metrics reach an OpenTelemetry reader: events appended per store, published by
the relay, and the relay's lag (committed but not yet in the stream)."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from adapters.bootstrap import Runtime
from adapters.nats.relay import Relay
from tests.conftest import run_sync
from tests.integration.commands import new_customer, new_order
from tests.integration.relay_support import relay_settings

_reader = InMemoryMetricReader()
_installed: list[bool] = []


def reader() -> InMemoryMetricReader:
    """Install one global meter provider for the test session (OpenTelemetry allows one)."""
    if not _installed:
        metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))
        _installed.append(True)
    return _reader


def points(name: str, stream: str | None = None) -> dict[str, Any]:
    """Latest value per ``store`` attribute of one metric (of one stream, if given)."""
    data = reader().get_metrics_data()
    found: dict[str, Any] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        attributes = point.attributes or {}
                        if stream is None or attributes.get("stream") == stream:
                            found[str(attributes.get("store"))] = point.value
    return found


def test_appended_published_and_lag(runtime: Runtime, nats_url: str, stream_name: str) -> None:
    reader()
    before_appended = points("concord.store.appended")
    customer = new_customer(runtime)
    new_order(runtime, customer)
    appended = points("concord.store.appended")
    assert appended["customers"] - before_appended.get("customers", 0) == 1
    assert appended["orders"] - before_appended.get("orders", 0) == 1

    before_published = points("concord.relay.published")
    relay = Relay(relay_settings(runtime, nats_url, stream_name))
    assert run_sync(relay.catch_up()) == 2
    published = points("concord.relay.published")
    assert published["customers"] - before_published.get("customers", 0) == 1
    assert published["orders"] - before_published.get("orders", 0) == 1
    assert relay.stats.lag["customers"] == 0 and relay.stats.lag["orders"] == 0
    assert points("concord.relay.lag", stream_name)["customers"] == 0
