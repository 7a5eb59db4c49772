"""The relay on real PostgreSQL and NATS: every committed event in the stream exactly once,
in per-aggregate order, across crashes at every point, NATS restarts, and downtime longer
than the stream's duplicate window."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from adapters.bootstrap import Runtime
from adapters.nats.relay import Relay
from adapters.nats.subjects import AGGREGATE_ID, AGGREGATE_VERSION, EVENT_TYPE, POSITION
from hub.application.personal import open_envelope
from tests.conftest import run_sync, start_nats
from tests.integration.relay_support import (
    assert_exactly_once_in_order,
    relay_settings,
    running_relay,
    settled_stream,
    start_relay,
    stream_messages,
    wait_for_count,
    write_events,
)


def test_catch_up_publishes_every_event_once_with_envelope_and_headers(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    expected = write_events(runtime, 6)
    settings = relay_settings(runtime, nats_url, stream_name)
    assert run_sync(Relay(settings).catch_up()) == expected
    messages = stream_messages(nats_url, stream_name)
    assert len(messages) == expected
    assert_exactly_once_in_order(runtime, messages)
    first = messages[0]
    env = first["envelope"]
    assert first["subject"] == (
        f"{stream_name.lower()}.v1.{env['aggregate']}.{env['type']}.{env['aggregate_id']}"
    )
    assert first["headers"][AGGREGATE_ID] == env["aggregate_id"]
    assert first["headers"][AGGREGATE_VERSION] == str(env["version"])
    assert first["headers"][EVENT_TYPE] == env["type"]
    assert int(first["headers"][POSITION]) >= 1
    # The envelope is exactly what the history API shows, once its personal fields
    # (published sealed, never in clear) are opened with the customer's key.
    history = runtime.hub.history(env["aggregate"], env["aggregate_id"])
    assert history[0] != env and env["data"]["legal_name"].startswith("pii:v1:")
    assert runtime.committer.personal is not None
    open_envelope(runtime.committer.personal, env)
    assert history[0] == env
    # A second catch-up finds nothing new: the stream, not a cursor, says what is done.
    assert run_sync(Relay(settings).catch_up()) == 0


@pytest.mark.parametrize(
    "crash_at", ["after_publish_sent:1", "after_publish_sent:2", "after_acks:1", "after_acks:3"]
)
def test_kill_9_at_any_point_then_restart_publishes_exactly_once(
    runtime: Runtime, nats_url: str, stream_name: str, crash_at: str
) -> None:
    expected = write_events(runtime, 10)  # 25 events, 4 stores, batches of 4
    settings = relay_settings(runtime, nats_url, stream_name, relay_batch=4)
    crashed = start_relay(settings, CONCORD_RELAY_CRASH_AT=crash_at)
    assert crashed.wait(timeout=60) == 137  # it died at the crash point (os._exit)
    # Commits while the relay is down ("after commit, before publish").
    expected += write_events(runtime, 2)
    with running_relay(settings):
        messages = settled_stream(nats_url, stream_name, expected)
    assert len(messages) == expected
    assert_exactly_once_in_order(runtime, messages)


def test_relay_down_longer_than_the_duplicate_window_duplicates_nothing(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    expected = write_events(runtime, 4)
    settings = relay_settings(
        runtime, nats_url, stream_name, relay_batch=3, nats_duplicate_window_s=1.0
    )
    # Crash after the acks but before the position is written to PostgreSQL.
    assert start_relay(settings, CONCORD_RELAY_CRASH_AT="after_acks:2").wait(timeout=60) == 137
    time.sleep(2.5)  # past the server's dedupe window: only reconciliation can help now
    with running_relay(settings):
        messages = settled_stream(nats_url, stream_name, expected)
    assert len(messages) == expected
    assert_exactly_once_in_order(runtime, messages)


def test_live_relay_follows_commits_and_survives_a_nats_restart(
    runtime: Runtime, tmp_path: Path, stream_name: str
) -> None:
    """NATS killed mid-stream and restarted on the same port and store: nothing lost or
    doubled, and the relay resumes by itself."""
    data = tmp_path / "nats"
    with start_nats(data) as server:
        settings = relay_settings(
            runtime, server.url, stream_name, relay_batch=5, **server.identity_settings()
        )
        relay = running_relay(settings)
        relay.__enter__()
        expected = write_events(runtime, 4)
        wait_for_count(server.admin_url, stream_name, expected)
    # The server is gone; commits go on (PostgreSQL only) ...
    try:
        expected += write_events(runtime, 4)
        with start_nats(data) as again:  # the same port: the data folder remembers it
            assert again.url == server.url
            expected += write_events(runtime, 2)
            messages = settled_stream(again.admin_url, stream_name, expected, timeout=60)
    finally:
        relay.__exit__(None, None, None)
    assert len(messages) == expected
    assert_exactly_once_in_order(runtime, messages)


def test_commit_to_stream_is_pushed_by_notify(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    """A live relay is woken by the stores' NOTIFY: with the safety-net poll pushed out to an
    hour, every commit still reaches the stream (the wait below would time out otherwise)."""
    settings = relay_settings(runtime, nats_url, stream_name)
    relay = Relay(settings)
    relay.poll_interval_s = 3600.0
    stop = asyncio.Event()

    async def scenario() -> None:
        task = asyncio.create_task(relay.run(stop))
        await asyncio.wait_for(relay.ready.wait(), 30)
        await asyncio.sleep(0.2)  # the relay is now waiting on LISTEN
        for _ in range(5):
            before = relay.stats.published
            written = await asyncio.to_thread(write_events, runtime, 1)

            async def arrived(target: int = before + written) -> None:
                while relay.stats.published < target:
                    await asyncio.sleep(0.005)

            await asyncio.wait_for(arrived(), 10)
        stop.set()
        await task

    run_sync(scenario())
    assert_exactly_once_in_order(runtime, stream_messages(nats_url, stream_name))


def test_relay_survives_its_database_connections_being_killed(
    runtime: Runtime, nats_url: str, stream_name: str, database_url: str
) -> None:
    """PostgreSQL restarts or kills the relay's sessions (LISTEN included): the relay
    reconnects, takes the lead again and publishes what was committed meanwhile."""
    import psycopg

    settings = relay_settings(runtime, nats_url, stream_name)
    relay = Relay(settings)
    stop = asyncio.Event()

    async def scenario() -> int:
        task = asyncio.create_task(relay.run(stop))
        await asyncio.wait_for(relay.ready.wait(), 30)
        expected = await asyncio.to_thread(write_events, runtime, 2)
        with psycopg.connect(database_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'concord-relay' AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 2
        expected += await asyncio.to_thread(write_events, runtime, 2)

        async def all_published() -> None:
            while len(await asyncio.to_thread(stream_messages, nats_url, stream_name)) < expected:
                await asyncio.sleep(0.1)

        await asyncio.wait_for(all_published(), 30)
        stop.set()
        await task
        return expected

    expected = run_sync(scenario())
    messages = stream_messages(nats_url, stream_name)
    assert len(messages) == expected
    assert_exactly_once_in_order(runtime, messages)


def test_a_second_catch_up_beside_a_live_relay_is_refused(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    from adapters.nats.relay import RelayBusy

    settings = relay_settings(runtime, nats_url, stream_name)
    live = Relay(settings)
    stop = asyncio.Event()

    async def scenario() -> None:
        task = asyncio.create_task(live.run(stop))
        await asyncio.wait_for(live.ready.wait(), 30)
        try:
            with pytest.raises(RelayBusy):
                await Relay(settings).catch_up()
        finally:
            stop.set()
            await task

    run_sync(scenario())
