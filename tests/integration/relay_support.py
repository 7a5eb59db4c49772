"""Helpers for relay tests: settings for a test's stream, reading the stream back, events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nats
import orjson

from adapters.bootstrap import Runtime
from adapters.settings import Settings
from tests.conftest import run_sync
from tests.integration.commands import new_customer, new_order, run

ROOT = Path(__file__).resolve().parents[2]


def relay_settings(runtime: Runtime, nats_url: str, stream: str, **extra: Any) -> Settings:
    return Settings(
        database_url=runtime.settings.database_url,
        schema_name=runtime.settings.schema_name,
        nats_url=nats_url,
        nats_stream=stream,
        nats_subject_prefix=stream.lower(),
        **extra,
    )


def relay_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for ``python -m adapters.nats.relay`` with these settings."""
    env = dict(os.environ)
    env.update(
        CONCORD_DATABASE_URL=str(settings.database_url),
        CONCORD_SCHEMA=settings.schema_name,
        CONCORD_NATS_URL=str(settings.nats_url),
        CONCORD_NATS_STREAM=settings.nats_stream,
        CONCORD_NATS_SUBJECT_PREFIX=settings.nats_subject_prefix,
        CONCORD_RELAY_BATCH=str(settings.relay_batch),
        CONCORD_NATS_DUPLICATE_WINDOW_S=str(settings.nats_duplicate_window_s),
    )
    identity = {
        "CONCORD_NATS_RELAY_USER": settings.nats_relay_user,
        "CONCORD_NATS_RELAY_PASSWORD": settings.nats_relay_password,
    }
    env.update({k: v for k, v in identity.items() if v is not None})
    env.update(extra)
    return env


def start_relay(settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "adapters.nats.relay"], cwd=ROOT, env=relay_env(settings, **extra)
    )


@contextmanager
def running_relay(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A relay process for the block; stopped with SIGTERM (as an operator would) after."""
    relay = start_relay(settings)
    try:
        yield relay
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            relay.kill()
            raise


def settled_stream(
    nats_url: str, stream: str, expected: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The stream once it holds ``expected`` messages and half a second more has shown that
    nothing extra (a duplicate) follows."""
    wait_for_count(nats_url, stream, expected, timeout)
    time.sleep(0.5)
    return stream_messages(nats_url, stream)


def stream_messages(nats_url: str, stream: str) -> list[dict[str, Any]]:
    """Every message in the stream, in stream order: headers + decoded envelope."""

    async def read() -> list[dict[str, Any]]:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return []
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                if info.state.messages == 0:
                    break
                msg = await js.get_msg(stream, seq)
                out.append(
                    {
                        "seq": seq,
                        "subject": msg.subject,
                        "headers": msg.headers or {},
                        "envelope": orjson.loads(msg.data or b"{}"),
                    }
                )
            return out
        finally:
            await nc.close()

    return run_sync(read())


def wait_for_count(
    nats_url: str, stream: str, count: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        messages = stream_messages(nats_url, stream)
        if len(messages) >= count:
            return messages
        time.sleep(0.2)
    raise AssertionError(f"stream has {len(messages)} messages, expected {count}")


def committed_event_ids(runtime: Runtime) -> list[str]:
    """Every committed event id, across all stores."""
    ids: list[str] = []
    for store in runtime.stores.values():
        for n in store.recorder.select_notifications(start=None, limit=1_000_000):
            from hub.application.views import event_id

            ids.append(event_id(n.originator_id, n.originator_version))
    return ids


def write_events(runtime: Runtime, customers: int) -> int:
    """Customers with an order each, half accepted: several stores, several versions."""
    count = 0
    for i in range(customers):
        customer = new_customer(runtime, f"Customer {i}")
        order = new_order(runtime, customer)
        count += 2
        if i % 2 == 0:
            number = f"SO-{order.hex[:12]}"  # ERP order numbers are unique per order
            run(runtime, "order", "accept", {"erp_order_number": number}, aggregate_id=order)
            count += 1
    return count


def assert_exactly_once_in_order(runtime: Runtime, messages: list[dict[str, Any]]) -> None:
    ids = [m["headers"]["Nats-Msg-Id"] for m in messages]
    assert len(ids) == len(set(ids)), "an event was published twice"
    assert sorted(ids) == sorted(committed_event_ids(runtime)), "published != committed"
    last_version: dict[str, int] = {}
    for m in messages:
        env = m["envelope"]
        assert env["event_id"] == m["headers"]["Nats-Msg-Id"]
        previous = last_version.get(env["aggregate_id"], 0)
        assert env["version"] == previous + 1, f"out of order for {env['aggregate_id']}"
        last_version[env["aggregate_id"]] = env["version"]
