"""Replaying a subscriber from a stream position, from a time and for one aggregate: the
target sees every replayed event again with the same idempotency key, and no new effect."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from adapters.nats.replay import ReplayRequest
from adapters.nats.runner import replay_subscriber
from adapters.settings import Settings
from hub.application.views import event_id
from tests.conftest import run_sync
from tests.integration.subscriber_support import (
    http_spec,
    make_settings,
    new_id,
    running,
    stream_and_target,
    wait_until,
)


@pytest.fixture
def settings(database_url: str, nats_url: str, pg_schema: str, stream_name: str) -> Settings:
    return make_settings(database_url, nats_url, pg_schema, stream_name)


def test_replay_from_position_time_and_aggregate(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a, b, c = new_id(), new_id(), new_id()
            await stream.publish("order", a, 1)
            await stream.publish("order", a, 2)
            await stream.publish("order", b, 1)
            await asyncio.sleep(0.05)  # the stream stamps messages; keep T strictly between
            since = datetime.now(UTC)
            await asyncio.sleep(0.05)
            fourth = await stream.publish("order", a, 3)
            await stream.publish("invoice", c, 1)
            async with running(settings, http_spec("erp", target, stream)):
                await wait_until("five effects", lambda: len(target.effects) == 5)
            effects = dict(target.effects)

            async def replay(request: ReplayRequest) -> tuple[dict[str, object], list[str]]:
                before = len(target.calls)
                seen: list[tuple[int, int]] = []
                result = await replay_subscriber(
                    settings,
                    "erp",
                    request,
                    progress=lambda d, t: seen.append((d, t)),
                    specs={"erp": http_spec("erp", target, stream)},
                )
                assert seen and seen[-1][0] == seen[-1][1] == result.delivered
                new_calls = target.calls[before:]
                assert all(c.replayed for c in new_calls)  # same keys: nothing applied again
                return result.as_dict(), [c.key for c in new_calls]

            summary, keys = await replay(ReplayRequest(start_seq=fourth))
            assert summary["delivered"] == 2 and summary["failed"] == 0
            assert keys == [event_id(a, 3), event_id(c, 1)]
            assert summary["first_seq"] == fourth

            summary, keys = await replay(ReplayRequest(since=since))
            assert keys == [event_id(a, 3), event_id(c, 1)]

            summary, keys = await replay(ReplayRequest(aggregate=("order", a)))
            assert keys == [event_id(a, v) for v in (1, 2, 3)]

            summary, keys = await replay(ReplayRequest(aggregate=("order", a), start_seq=2))
            assert keys == [event_id(a, v) for v in (2, 3)]

            assert target.effects == effects  # effect count unchanged, call count up
            assert len(target.calls) == 5 + 2 + 2 + 3 + 2

    run_sync(main())


def test_replay_reports_failures_and_validates_its_request(settings: Settings) -> None:
    async def main() -> None:
        async with stream_and_target(settings) as (stream, target):
            a = new_id()
            await stream.publish("customer", a, 1)
            await stream.publish("customer", a, 2)
            target.fail_aggregate(a, status=400, count=1)
            result = await replay_subscriber(
                settings,
                "erp",
                ReplayRequest(start_seq=1),
                specs={"erp": http_spec("erp", target, stream)},
            )
            assert result.delivered == 1 and len(result.failures) == 1
            assert result.failures[0].event_id == event_id(a, 1)
            assert "400" in result.failures[0].error
            empty = await replay_subscriber(
                settings,
                "erp",
                ReplayRequest(aggregate=("customer", new_id())),
                specs={"erp": http_spec("erp", target, stream)},
            )
            assert empty.delivered == 0 and empty.first_seq is None

    run_sync(main())
    with pytest.raises(ValueError, match="not both"):
        ReplayRequest(start_seq=1, since=datetime.now(UTC))
    with pytest.raises(ValueError, match="timezone"):
        ReplayRequest(since=datetime(2026, 1, 1))  # naive on purpose
    with pytest.raises(ValueError, match="where to replay"):
        ReplayRequest()
