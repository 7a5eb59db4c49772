"""A caller's trace runs from its HTTP request through the store to the NATS message."""

from __future__ import annotations

from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider

from adapters.nats.relay import Relay
from api.app import create_app
from tests.conftest import run_sync
from tests.e2e.conftest import Api
from tests.integration.relay_support import relay_settings, stream_messages

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_request_trace_continues_into_the_published_event(
    api: Api, nats_url: str, stream_name: str
) -> None:
    with TestClient(create_app(api.runtime, tracer_provider=TracerProvider())) as http:
        created = http.post(
            "/v1/customers",
            json={"legal_name": "Traced Through"},
            headers={**api.headers("crm"), "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"},
        )
    assert created.status_code == 201
    run_sync(Relay(relay_settings(api.runtime, nats_url, stream_name)).catch_up())
    published = [
        m
        for m in stream_messages(nats_url, stream_name)
        if m["envelope"]["aggregate_id"] == created.json()["id"]
    ]
    assert len(published) == 1
    header = published[0]["headers"]["traceparent"]
    assert header.split("-")[1] == TRACE_ID
    # The trace context is transport metadata, not part of the event's public data.
    assert "traceparent" not in published[0]["envelope"]["data"]
