"""Retry timing shared by the live subscriber (``nak(delay)``), the release of parked events
and replays (in-process waits), so a target sees the same politeness from all three.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from adapters.connectors.port import Connector, PermanentDeliveryError, TransientDeliveryError
from adapters.nats.spec import SubscriberSpec

__all__ = ["Outcome", "backoff_delay", "deliver_with_retries", "describe"]

PERMANENT = "permanent"
EXHAUSTED = "exhausted"


def backoff_delay(
    spec: SubscriberSpec,
    attempt: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one.

    Jitter only ever shortens the scheduled delay (50-100 % with ``jitter=0.5``), so the
    schedule is an upper bound an operator can reason about; ``Retry-After`` is a floor
    that jitter never undercuts, because a target that names a time means it.
    """
    base = spec.backoff[min(max(attempt, 1), len(spec.backoff)) - 1]
    draw = (rng or random).random()
    delay = base * (1.0 - spec.jitter * draw)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def describe(error: BaseException) -> str:
    """Text stored with a failure: the connector's own message, else the exception repr."""
    message = getattr(error, "message", None)
    return str(message) if message else repr(error)


@dataclass(frozen=True)
class Outcome:
    """Result of delivering one event with in-process retries."""

    delivered: bool
    attempts: int
    reason: str | None = None
    """``permanent`` or ``exhausted`` when not delivered."""
    error: str | None = None


async def deliver_with_retries(
    spec: SubscriberSpec,
    connector: Connector,
    envelope: dict[str, Any],
    idempotency_key: str,
    *,
    on_failure: Callable[[int, str], Awaitable[None]] | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Outcome:
    """Call the connector until it confirms, a permanent error, or ``max_deliver`` attempts.

    Used where the event is no longer (or never was) an unacknowledged stream message:
    releasing parked events, retrying a dead letter, replaying. Any exception other than a
    permanent error counts as transient: a bug in a connector should be retried and then
    dead-lettered, not crash the subscriber.
    """
    error = ""
    for attempt in range(1, spec.max_deliver + 1):
        try:
            await call_target(spec, connector, envelope, idempotency_key)
        except PermanentDeliveryError as refused:
            return Outcome(False, attempt, PERMANENT, describe(refused))
        except Exception as failed:
            error = describe(failed)
            if on_failure is not None:
                await on_failure(attempt, error)
            if attempt < spec.max_deliver:
                retry_after = (
                    failed.retry_after if isinstance(failed, TransientDeliveryError) else None
                )
                await sleep(backoff_delay(spec, attempt, retry_after))
            continue
        return Outcome(True, attempt)
    return Outcome(False, spec.max_deliver, EXHAUSTED, error)


async def call_target(
    spec: SubscriberSpec, connector: Connector, envelope: dict[str, Any], idempotency_key: str
) -> None:
    """One connector call under the spec's overall deadline (a timeout is transient)."""
    try:
        await asyncio.wait_for(connector.deliver(envelope, idempotency_key), spec.call_deadline)
    except TimeoutError:
        raise TransientDeliveryError(
            f"the target did not answer within {spec.call_deadline:g} s", None
        ) from None
