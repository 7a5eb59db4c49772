"""Subscribers against real NATS JetStream and real PostgreSQL, with the sandbox target:
retries with backoff, Retry-After, dead letters, per-aggregate holds and their release,
crash before ack, restart, and running one instance at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from adapters.connectors.http import HttpConnector
from adapters.connectors.port import Connector
from adapters.nats.dead_letters import (
    DeadLetterConflict,
    discard,
    get_dead_letter,
    list_dead_letters,
    request_retry,
)
from adapters.nats.runner import subscriber_lag
from adapters.settings import Settings
from hub.application.views import event_id
from tests.conftest import run_sync
from tests.integration.subscriber_support import (
    db_rows,
    fast_spec,
    http_spec,
    make_settings,
    new_id,
    running,
    stream_and_target,
    wait_rows,
    wait_until,
)


@pytest.fixture
def settings(database_url: str, nats_url: str, pg_schema: str, stream_name: str) -> Settings:
    return make_settings(database_url, nats_url, pg_schema, stream_name)


def _conn(settings: Settings) -> psycopg.Connection[Any]:
    assert settings.database_url
    return psycopg.connect(settings.database_url, autocommit=True)


def test_transient_errors_are_retried_with_backoff_then_delivered_once(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            customer = new_id()
            target.fail_next(2, status=503)
            await stream.publish("customer", customer, 1)
            async with running(settings, http_spec("erp", target, stream)):
                await wait_until("the effect", lambda: target.effects)
                key = event_id(customer, 1)
                calls = target.calls_for(key)
                assert [c.status for c in calls] == [503, 503, 201]  # delivered 3 times
                assert list(target.effects) == [key]  # idempotency key = event id; one effect
                # Backoff lower bounds: 50-100 % of 0.05 s, then of 0.1 s.
                assert calls[1].at - calls[0].at >= 0.025
                assert calls[2].at - calls[1].at >= 0.05
                await wait_rows(
                    settings,
                    "the hold to be lifted",
                    "SELECT * FROM concord_delivery_holds",
                    until=lambda r: not r,
                )
            assert db_rows(settings, "SELECT count(*) FROM concord_dead_letters") == [(0,)]

    run_sync(main())


def test_retry_after_is_honoured(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            order = new_id()
            target.fail_next(1, status=429, retry_after=1)
            await stream.publish("order", order, 1)
            async with running(settings, http_spec("erp", target, stream, backoff=(0.01,))):
                await wait_until("the effect", lambda: target.effects)
            first, second = target.calls_for(event_id(order, 1))
            assert first.status == 429 and second.status == 201
            assert second.at - first.at >= 0.95  # the schedule said 0.01 s; the target said 1 s

    run_sync(main())


def test_transient_failure_holds_later_events_of_that_aggregate_only(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a, b = new_id(), new_id()
            target.fail_aggregate(a, status=500, count=3)
            for version in (1, 2, 3):
                await stream.publish("order", a, version)
                await stream.publish("order", b, version)
            async with running(settings, http_spec("erp", target, stream, max_deliver=6)):
                await wait_until("all six effects", lambda: len(target.effects) == 6)
            assert target.versions(a) == [1, 2, 3]
            assert target.versions(b) == [1, 2, 3]
            # A's v2 and v3 were never sent while v1 was failing: they waited (parked).
            a_calls = [c.version for c in target.calls if c.aggregate_id == a]
            assert a_calls == [1, 1, 1, 1, 2, 3]
            # B was not held up behind A: its effects came before A's first success.
            first_a = target.effects[event_id(a, 1)].seq
            assert all(target.effects[event_id(b, v)].seq < first_a for v in (1, 2, 3))

    run_sync(main())


def test_permanent_error_dead_letters_holds_aggregate_and_retry_releases_in_order(
    settings: Settings,
) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a, b = new_id(), new_id()
            target.fail_aggregate(a, status=422)
            for version in (1, 2, 3):
                await stream.publish("customer", a, version)
            await stream.publish("customer", b, 1)
            async with running(settings, http_spec("erp", target, stream)):
                await wait_until("B delivered", lambda: target.versions(b) == [1])
                rows = await wait_rows(
                    settings,
                    "two parked events",
                    "SELECT version FROM concord_parked ORDER BY stream_seq",
                    until=lambda r: len(r) == 2,
                )
                assert rows == [(2,), (3,)]
            # The subscriber is stopped; its state is in PostgreSQL.
            with _conn(settings) as conn:
                (letter,) = list_dead_letters(conn, settings.schema_name)
                assert letter["aggregate_id"] == a and letter["version"] == 1
                assert letter["reason"] == "permanent" and "422" in letter["error"]
                assert letter["attempts"] == 1 and letter["status"] == "dead"
                assert letter["parked_behind"] == 2
                detail = get_dead_letter(conn, settings.schema_name, letter["id"])
                assert detail["envelope"]["event_id"] == event_id(a, 1)
                assert [p["version"] for p in detail["parked"]] == [2, 3]
                target.heal_aggregate(a)
                request_retry(conn, settings.schema_name, letter["id"], actor="test")
                with pytest.raises(DeadLetterConflict):
                    request_retry(conn, settings.schema_name, letter["id"])
            assert len(target.calls_for(event_id(a, 2))) == 0  # held, never sent
            await stream.publish("customer", a, 4)  # arrives while A is held: parked too
            async with running(settings, http_spec("erp", target, stream)):
                await wait_until("A released", lambda: target.versions(a) == [1, 2, 3, 4])
                await wait_rows(
                    settings,
                    "the hold to be lifted",
                    "SELECT * FROM concord_delivery_holds",
                    until=lambda r: not r,
                )
            with _conn(settings) as conn:
                done = get_dead_letter(conn, settings.schema_name, letter["id"])
                assert done["status"] == "delivered" and done["resolved_at"]
                assert list_dead_letters(conn, settings.schema_name) == []
            assert db_rows(settings, "SELECT count(*) FROM concord_parked") == [(0,)]

    run_sync(main())


def test_discarding_a_dead_letter_releases_the_parked_events(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a = new_id()
            target.fail_aggregate(a, status=400, count=1)
            for version in (1, 2, 3):
                await stream.publish("invoice", a, version)
            async with running(settings, http_spec("erp", target, stream)):
                await wait_rows(
                    settings,
                    "two parked events",
                    "SELECT 1 FROM concord_parked",
                    until=lambda r: len(r) == 2,
                )
                with _conn(settings) as conn:
                    (letter,) = list_dead_letters(conn, settings.schema_name)
                    discarded = discard(conn, settings.schema_name, letter["id"], actor="test")
                    assert discarded["status"] == "discarded"
                await wait_until("the rest released", lambda: target.versions(a) == [2, 3])
                await wait_rows(
                    settings,
                    "the hold to be lifted",
                    "SELECT * FROM concord_delivery_holds",
                    until=lambda r: not r,
                )

    run_sync(main())


def test_exhausted_deliveries_become_a_dead_letter(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a, b = new_id(), new_id()
            target.fail_aggregate(a, status=500)
            await stream.publish("payment", a, 1)
            await stream.publish("payment", a, 2)
            await stream.publish("payment", b, 1)
            async with running(settings, http_spec("erp", target, stream, max_deliver=3)):
                rows = await wait_rows(
                    settings,
                    "a dead letter",
                    "SELECT version, reason, attempts, error FROM concord_dead_letters",
                    until=lambda r: len(r) == 1,
                )
                await wait_until("B delivered", lambda: target.versions(b) == [1])
            assert rows[0][:3] == (1, "exhausted", 3) and "500" in rows[0][3]
            assert len(target.calls_for(event_id(a, 1))) == 3
            assert target.calls_for(event_id(a, 2)) == []  # parked behind the dead letter

    run_sync(main())


class _DiesAfterTheCall(Connector):
    """Delivers, then hangs forever as if the process died before acknowledging."""

    def __init__(self, inner: Connector, key: str, called: asyncio.Event) -> None:
        self.inner, self.key, self.called = inner, key, called

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        await self.inner.deliver(envelope, idempotency_key)
        if idempotency_key == self.key:
            self.called.set()
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_crash_after_the_target_call_before_ack_yields_one_effect(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a = new_id()
            await stream.publish("order", a, 1)
            key = event_id(a, 1)
            called = asyncio.Event()
            dying = _DiesAfterTheCall(HttpConnector(target.url), key, called)
            async with running(
                settings, http_spec("erp", target, stream, ack_wait=1.0, handlers={"*": dying})
            ) as task:
                await asyncio.wait_for(called.wait(), 10)
                task.cancel()  # "kill": no ack, no clean shutdown
            assert len(target.effects) == 1
            await stream.publish("order", a, 2)
            async with running(settings, http_spec("erp", target, stream, ack_wait=1.0)):
                await wait_until("v1 again and v2", lambda: len(target.calls) == 3)
            calls = target.calls_for(key)
            assert [c.replayed for c in calls] == [False, True]  # same key twice
            assert len(target.effects) == 2  # one effect per event
            # The in-doubt v1 went again before v2 (per-aggregate order across the crash).
            assert [c.version for c in target.calls] == [1, 1, 2]

    run_sync(main())


def test_restart_resumes_from_the_durable_position(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            ids = [new_id() for _ in range(3)]
            for aggregate_id in ids:
                await stream.publish("contract", aggregate_id, 1)
            async with running(settings, http_spec("erp", target, stream)):
                await wait_until("three effects", lambda: len(target.effects) == 3)
            for aggregate_id in ids:
                await stream.publish("contract", aggregate_id, 2)
            async with running(settings, http_spec("erp", target, stream)):
                await wait_until("six effects", lambda: len(target.effects) == 6)
            assert len(target.calls) == 6  # nothing delivered twice across the restart

    run_sync(main())


def test_one_instance_per_subscriber_and_lag_report(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            bad = new_id()
            target.fail_aggregate(bad, status=400)
            await stream.publish("order", bad, 1)
            await stream.publish("order", bad, 2)
            ids = [new_id() for _ in range(20)]
            for aggregate_id in ids:
                await stream.publish("order", aggregate_id, 1)
            first = http_spec("erp", target, stream)
            second = http_spec("erp", target, stream)
            async with running(settings, first), running(settings, second):
                await wait_until("20 effects", lambda: len(target.effects) == 20)
                report = await wait_until_lag(settings, first)
            assert len(target.calls) == 21  # each event once (+1 refused); the 2nd stood by
            erp = report["erp"]
            assert erp["running"] is True and erp["exists"] is True
            assert erp["num_pending"] == 0 and erp["num_ack_pending"] == 0
            assert erp["dead_letters"] == 1 and erp["parked"] == 1
            assert erp["held_aggregates"] == 1
            idle = await subscriber_lag(settings, ["erp"], specs={"erp": first})
            assert idle["erp"]["running"] is False

    run_sync(main())


async def wait_until_lag(settings: Settings, spec: Any) -> dict[str, Any]:
    for _ in range(200):
        report = await subscriber_lag(settings, ["erp"], specs={"erp": spec})
        if report["erp"]["parked"] == 1 and report["erp"]["num_ack_pending"] == 0:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"lag never settled: {report}")


def test_malformed_message_is_set_aside_and_others_flow(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a = new_id()
            await stream.publish_raw(f"order.OrderPlaced.{a}", b"not json")
            await stream.publish("order", a, 1)
            async with running(settings, http_spec("erp", target, stream)):
                await wait_until("the good event", lambda: target.versions(a) == [1])
            rows = db_rows(settings, "SELECT reason, status FROM concord_dead_letters")
            assert rows == [("malformed", "dead")]  # open: listed for an operator

    run_sync(main())


class _SlowFor(Connector):
    """A target that answers every event at once except the first of ``slow``, which it
    answers only when told to: a slow call (three NetSuite calls, a payment waiting)."""

    def __init__(self, slow: str) -> None:
        self.slow = slow
        self.release = asyncio.Event()
        self.started: list[tuple[str, int]] = []
        self.done: list[tuple[str, int]] = []

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        key = (str(envelope["aggregate_id"]), int(envelope["version"]))
        self.started.append(key)
        if key == (self.slow, 1):
            await self.release.wait()
        self.done.append(key)


def test_a_slow_delivery_does_not_hold_up_other_aggregates_fetched_after_it(
    settings: Settings,
) -> None:
    """Fetching went on only when the whole previous batch was delivered, so every deal
    waited for the slowest delivery fetched with it; now only the slow aggregate's own later
    events wait (in order)."""

    async def main() -> None:
        async with stream_and_target(settings) as (stream, _):
            a, b = new_id(), new_id()
            target = _SlowFor(a)
            spec = fast_spec("erp", target, stream)
            async with running(settings, spec):
                await stream.publish("order", a, 1)
                await wait_until("A's slow call", lambda: (a, 1) in target.started)
                await stream.publish("order", b, 1)
                await stream.publish("order", a, 2)
                await stream.publish("order", b, 2)
                try:
                    await wait_until("B, fetched later", lambda: (b, 2) in target.done)
                finally:
                    target.release.set()
                await wait_until("A's later event", lambda: (a, 2) in target.done)
            assert (a, 2) not in target.started[: target.started.index((b, 2))]  # A waited
            assert [k for k in target.done if k[0] == a] == [(a, 1), (a, 2)]
            assert [k for k in target.done if k[0] == b] == [(b, 1), (b, 2)]

    run_sync(main())
