"""The dispatcher's loop pauses between rounds that only retried (no busy loop while the
hub refuses for a while), and goes again at once after a round that moved something."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adapters.process import dispatcher
from adapters.process.dispatcher import Dispatched, dispatcher_service


def _rounds(monkeypatch: pytest.MonkeyPatch, outcomes: list[Dispatched], seconds: float) -> int:
    calls = [0]

    def dispatch_once(runtime: Any, *, stale_check: bool = True) -> list[Dispatched]:
        calls[0] += 1
        return []

    def compensate_once(runtime: Any) -> list[Dispatched]:
        return list(outcomes)

    monkeypatch.setattr(dispatcher, "dispatch_once", dispatch_once)
    monkeypatch.setattr(dispatcher, "compensate_once", compensate_once)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(dispatcher_service(None, interval_s=0.2)(stop))  # type: ignore[arg-type]
        await asyncio.sleep(seconds)
        stop.set()
        await task

    asyncio.run(main())
    return calls[0]


def test_a_round_that_only_retried_waits_for_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    retrying = [Dispatched("q2c:compensation:1", "retrying", "the store is away")]
    assert _rounds(monkeypatch, retrying, 1.0) <= 10  # ~5 at 0.2 s; a busy loop: thousands


def test_a_round_that_moved_something_goes_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _rounds(monkeypatch, [Dispatched("q2c:1", "done")], 0.5) > 10
