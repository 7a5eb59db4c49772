"""The relay resumes a catch-up promptly once NATS is back (issue: it sat out its 10 s
acknowledgement timeout, idle, with publishes lost in flight)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from pathlib import Path

from adapters.bootstrap import Runtime
from adapters.nats.relay import ACK_TIMEOUT_S, Relay
from tests.conftest import run_sync, start_nats
from tests.integration.relay_support import (
    assert_exactly_once_in_order,
    relay_settings,
    stream_messages,
    write_events,
)

#: Well under the acknowledgement timeout (what the relay used to wait) yet loose enough for
#: a busy 2-core machine: the relay retries its connection every 0.5 s.
RECOVERY_BOUND_S = 4.0


def test_catch_up_resumes_within_moments_of_nats_coming_back(
    runtime: Runtime, tmp_path: Path, stream_name: str
) -> None:
    assert RECOVERY_BOUND_S < ACK_TIMEOUT_S
    expected = write_events(runtime, 20)  # 50 events, batches of 5: a catch-up of many rounds
    data = tmp_path / "nats"
    servers = contextlib.ExitStack()
    server = servers.enter_context(start_nats(data))
    restarted = contextlib.ExitStack()
    killed = threading.Event()

    def kill_nats_mid_catch_up(point: str, count: int) -> None:
        """NATS goes away right after a batch was sent, its acknowledgements in flight."""
        if point == "after_publish_sent" and not killed.is_set():
            killed.set()
            servers.close()

    relay = Relay(
        relay_settings(
            runtime, server.url, stream_name, relay_batch=5, **server.identity_settings()
        ),
        crash_hook=kill_nats_mid_catch_up,
    )
    stop = asyncio.Event()

    async def scenario() -> tuple[float, str]:
        task = asyncio.create_task(relay.run(stop))
        try:
            while not killed.is_set():
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)  # NATS stays down a moment; the relay keeps trying
            again = await asyncio.to_thread(restarted.enter_context, start_nats(data))
            assert again.url == server.url  # the data folder remembers the port
            back = time.monotonic()
            read = functools.partial(stream_messages, again.admin_url, stream_name)
            while len(await asyncio.to_thread(read)) < expected:
                assert time.monotonic() - back < 30, "the relay never resumed"
                await asyncio.sleep(0.05)
            return time.monotonic() - back, again.admin_url
        finally:
            stop.set()
            await task

    try:
        elapsed, url_again = run_sync(scenario())
        messages = stream_messages(url_again, stream_name)
    finally:
        restarted.close()
        servers.close()  # in case the relay never got as far as the kill
    assert elapsed < RECOVERY_BOUND_S, f"caught up {elapsed:.1f} s after NATS was back"
    assert len(messages) == expected
    assert_exactly_once_in_order(runtime, messages)
