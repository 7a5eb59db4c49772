"""Replay: deliver a subscriber's events again from a stream position, a time, or for one
aggregate — through the same handlers, so the target's idempotency keys make it safe.

Why an ephemeral *ordered* consumer and not the durable one: a replay must not move the
live subscriber's position or steal its messages, and it should leave nothing behind on the
server. The ordered consumer delivers in stream order, recreates itself on a gap, and goes
away when unsubscribed. Events are delivered one at a time in stream order (per-aggregate
order holds trivially); failures are retried in process with the subscriber's backoff and
then reported — not dead-lettered, because the live copy of each event already went through
the normal path and a replay is an operator's explicit, supervised action.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from adapters.nats.personal import EnvelopeOpener, OpeningConnector
from adapters.nats.retry import deliver_with_retries
from adapters.nats.spec import MalformedEvent, SubscriberSpec, parse_delivery
from adapters.nats.subjects import Subjects

__all__ = ["ReplayFailure", "ReplayRequest", "ReplayResult", "replay"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``; ``total`` may grow if events are published meanwhile."""


@dataclass(frozen=True)
class ReplayRequest:
    """Where to start (at most one of ``start_seq`` / ``since``) and an optional entity."""

    start_seq: int | None = None
    since: datetime | None = None
    aggregate: tuple[str, str] | None = None
    """``(entity, aggregate_id)``, e.g. ``("order", "3f2c...")``."""

    def __post_init__(self) -> None:
        if self.start_seq is not None and self.since is not None:
            raise ValueError("give a start position or a start time, not both")
        if self.start_seq is not None and self.start_seq < 1:
            raise ValueError("stream positions start at 1")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("the start time needs a timezone (e.g. 2026-11-01T00:00:00Z)")
        if self.start_seq is None and self.since is None and self.aggregate is None:
            raise ValueError("say where to replay from: a position, a time or an aggregate")


@dataclass(frozen=True)
class ReplayFailure:
    stream_seq: int
    event_id: str
    error: str


@dataclass
class ReplayResult:
    subscriber: str
    delivered: int = 0
    skipped: int = 0
    """Events the subscriber does not handle (type without handler, outside its filters)."""
    failures: list[ReplayFailure] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "subscriber": self.subscriber,
            "delivered": self.delivered,
            "skipped": self.skipped,
            "failed": len(self.failures),
            "failures": [f.__dict__ for f in self.failures[:100]],
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        }


async def replay(
    js: JetStreamContext,
    stream: str,
    spec: SubscriberSpec,
    subjects: Subjects,
    request: ReplayRequest,
    *,
    progress: Progress | None = None,
    idle_timeout: float = 5.0,
    opener: EnvelopeOpener | None = None,
) -> ReplayResult:
    """Replay ``spec``'s events per ``request``; returns counts and failures.

    Ends when the consumer reports nothing pending (the stream's end as of then).
    """
    filters = (
        [subjects.of_entity(*request.aggregate)]
        if request.aggregate
        else list(spec.filter_subjects)
    )
    config = ConsumerConfig(
        description=f"replay of {spec.name}",
        filter_subjects=filters if len(filters) > 1 else None,
    )
    if request.start_seq is not None:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = request.start_seq
    elif request.since is not None:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = request.since
    else:
        config.deliver_policy = DeliverPolicy.ALL
    result = ReplayResult(spec.name)
    sub = await js.subscribe(
        filters[0], stream=stream, ordered_consumer=True, config=config, pending_msgs_limit=4096
    )
    try:
        info = await sub.consumer_info()
        total = (info.num_pending or 0) + (info.delivered.consumer_seq if info.delivered else 0)
        done = 0
        if progress is not None:
            progress(0, total)
        while total > done:
            try:
                msg = await sub.next_msg(timeout=idle_timeout)
            except (nats.errors.TimeoutError, TimeoutError):
                info = await sub.consumer_info()
                if info.num_pending == 0 and sub.pending_msgs == 0:
                    break
                continue
            meta = msg.metadata
            done += 1
            total = done + meta.num_pending
            await _deliver_one(spec, msg.subject, msg.data, meta.sequence.stream, result, opener)
            if progress is not None:
                progress(done, total)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return result


async def _deliver_one(
    spec: SubscriberSpec,
    subject: str,
    data: bytes,
    seq: int,
    result: ReplayResult,
    opener: EnvelopeOpener | None = None,
) -> None:
    if result.first_seq is None:
        result.first_seq = seq
    result.last_seq = seq
    if not spec.receives(subject):
        result.skipped += 1
        return
    try:
        d = parse_delivery(subject, data, seq)
    except MalformedEvent as bad:
        result.failures.append(ReplayFailure(seq, "", str(bad)))
        return
    connector = spec.handler_for(d.event_type)
    if connector is None:
        result.skipped += 1
        return
    if opener is not None:  # personal fields opened for the target (``[erased]`` if erased)
        connector = OpeningConnector(connector, opener)
    outcome = await deliver_with_retries(spec, connector, d.envelope, d.event_id)
    if outcome.delivered:
        result.delivered += 1
    else:
        result.failures.append(ReplayFailure(seq, d.event_id, outcome.error or ""))
