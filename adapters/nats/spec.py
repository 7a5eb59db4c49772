"""What a subscriber is: its name, what it receives, who handles each event type, and its
retry budget — plus the parsed form of one received event.

Why a plain frozen dataclass: subscribers are declared (erp, crm, billing, and more later)
and built by the composition root from settings; tests declare their own with millisecond
backoffs. Keeping the declaration free of NATS and PostgreSQL objects lets the same spec
drive the durable consumer, the replay and the lag report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.connectors.port import Connector

__all__ = ["Delivery", "MalformedEvent", "SubscriberSpec", "parse_delivery", "subject_matches"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ANY_TYPE = "*"


@dataclass(frozen=True, eq=False)
class SubscriberSpec:
    """One target system's subscription.

    ``handlers`` maps an event type (``OrderPlaced``) or ``"*"`` to the connector that
    delivers it; events of other types are acknowledged without a call. ``name`` is also the
    durable consumer's name in the stream.

    Retry budget: a message is tried at most ``max_deliver`` times. Before attempt *n + 1*
    the subscriber waits ``backoff[n - 1]`` seconds (the last entry repeats), randomised by
    ``jitter`` (0.5 → between 50 % and 100 % of it) so a recovering target is not hit by
    every retry at once, and never less than the target's ``Retry-After``. The schedule is
    applied with ``nak(delay)``, because JetStream's consumer ``BackOff`` does not apply to
    naks; ``ack_wait`` only matters when a subscriber dies mid-call.
    """

    name: str
    filter_subjects: tuple[str, ...]
    handlers: Mapping[str, Connector]
    max_deliver: int = 6
    backoff: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0, 1800.0)
    jitter: float = 0.5
    ack_wait: float = 30.0
    batch: int = 128
    concurrency: int = 32
    """Aggregates handled at once within a fetched batch (one aggregate is always serial)."""
    fetch_timeout: float = 1.0
    """Longest wait for new messages; also how quickly a stop request is noticed."""
    control_interval: float = 1.0
    """How often operator requests (retry, discard) are picked up from PostgreSQL."""
    call_deadline: float = 120.0
    """Longest a single target call may take, whatever the connector's own timeouts (a
    target trickling bytes would otherwise hold its aggregate, and the batch, forever)."""
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    personal_data: bool = True
    """Whether the target needs customers' personal fields: they are opened with the key
    just before each call; a target that does not need them gets ``[withheld]``."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"subscriber name {self.name!r}: use letters, digits, - and _")
        if not self.filter_subjects:
            raise ValueError(f"subscriber {self.name!r} needs at least one filter subject")
        if self.max_deliver < 1:
            raise ValueError(f"subscriber {self.name!r}: max_deliver must be >= 1")
        if not self.backoff or any(b < 0 for b in self.backoff):
            raise ValueError(f"subscriber {self.name!r}: backoff needs non-negative delays")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"subscriber {self.name!r}: jitter must be within 0..1")
        if self.ack_wait <= 0 or self.fetch_timeout <= 0 or self.control_interval <= 0:
            raise ValueError(f"subscriber {self.name!r}: waits must be positive")
        if self.batch < 1 or self.concurrency < 1:
            raise ValueError(f"subscriber {self.name!r}: batch and concurrency must be >= 1")

    def handler_for(self, event_type: str) -> Connector | None:
        return self.handlers.get(event_type) or self.handlers.get(ANY_TYPE)

    def receives(self, subject: str) -> bool:
        """True if ``subject`` passes this subscriber's filters (used by replays)."""
        return any(subject_matches(pattern, subject) for pattern in self.filter_subjects)

    def connectors(self) -> list[Connector]:
        """Distinct connectors, for closing them once."""
        seen: dict[int, Connector] = {}
        for connector in self.handlers.values():
            seen.setdefault(id(connector), connector)
        return list(seen.values())


class MalformedEvent(ValueError):
    """A message on the events stream that is not a Concord envelope."""


@dataclass(frozen=True)
class Delivery:
    """One received event: routing facts from the subject, the envelope from the body."""

    subject: str
    stream_seq: int
    aggregate: str
    aggregate_id: str
    event_type: str
    event_id: str
    version: int
    envelope: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        """Ordering key: events with the same key are delivered in stream order."""
        return (self.aggregate, self.aggregate_id)


def parse_delivery(subject: str, data: bytes, stream_seq: int) -> Delivery:
    """Parse ``<prefix>.v1.<aggregate>.<EventType>.<id>`` and its JSON envelope.

    The subject is read from the right so a prefix with dots still works.
    """
    tokens = subject.split(".")
    if len(tokens) < 5:
        raise MalformedEvent(f"subject {subject!r} is not <prefix>.v1.<aggregate>.<type>.<id>")
    aggregate, event_type, aggregate_id = tokens[-3], tokens[-2], tokens[-1]
    try:
        envelope = orjson.loads(data)
        event_id = str(envelope["event_id"])
        version = int(envelope["version"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as bad:
        raise MalformedEvent(f"message {stream_seq} is not an event envelope: {bad!r}") from bad
    if not isinstance(envelope, dict):
        raise MalformedEvent(f"message {stream_seq} is not a JSON object")
    return Delivery(
        subject, stream_seq, aggregate, aggregate_id, event_type, event_id, version, envelope
    )


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    want = pattern.split(".")
    have = subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(have) == len(want)
