"""Property: any interleaving of appends, relay crashes (at any point) and restarts ends with
the stream holding exactly the committed events — none lost, none twice, in order."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Runtime
from adapters.nats.relay import Relay
from tests.conftest import run_sync
from tests.integration.relay_support import (
    assert_exactly_once_in_order,
    relay_settings,
    stream_messages,
    write_events,
)


class SimulatedCrash(Exception):
    """Raised from the relay's crash hook: the relay stops mid-flight, like a kill."""


def crash_at(point: str, nth: int):  # type: ignore[no-untyped-def]
    remaining = [nth]

    def hook(at: str, count: int) -> None:
        if at == point:
            remaining[0] -= 1
            if remaining[0] <= 0:
                raise SimulatedCrash(point)

    return hook


append = st.tuples(st.just("append"), st.integers(1, 3))
crash = st.tuples(st.sampled_from(["after_publish_sent", "after_acks"]), st.integers(1, 3))
restart = st.tuples(st.just("restart"), st.just(0))
operations = st.lists(st.one_of(append, crash, restart), min_size=1, max_size=8)


@pytest.fixture
def streams(nats_url: str) -> Iterator[list[str]]:
    created: list[str] = []
    yield created

    async def delete() -> None:
        nc = await nats.connect(nats_url)
        for name in created:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(name)
        await nc.close()

    run_sync(delete())


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_appended_equals_published(
    runtime: Runtime, nats_url: str, streams: list[str], ops: list[tuple[str, int]]
) -> None:
    stream = f"P_{uuid.uuid4().hex[:10].upper()}"
    streams.append(stream)
    config = relay_settings(runtime, nats_url, stream, relay_batch=2)
    for action, n in ops:
        if action == "append":
            write_events(runtime, n)
        elif action == "restart":
            run_sync(Relay(config).catch_up())
        else:
            with contextlib.suppress(SimulatedCrash):
                run_sync(Relay(config, crash_hook=crash_at(action, n)).catch_up())
    run_sync(Relay(config).catch_up())
    assert_exactly_once_in_order(runtime, stream_messages(nats_url, stream))
