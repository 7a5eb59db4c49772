"""The NATS contract: subjects, headers and the stream — versioned, documented, stable.

Subjects are ``<prefix>.v1.<aggregate>.<EventType>.<aggregate-id>`` so a subscriber can
filter by kind (``concord.v1.order.>``), by event type (``concord.v1.*.OrderPlaced.*``) or
by one entity (``concord.v1.order.*.<id>``). ``v1`` changes only with an incompatible
envelope; new event types and new optional fields are not breaking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

SUBJECT_VERSION = "v1"

#: Header names. ``Nats-Msg-Id`` is the event id, which the server deduplicates on.
MSG_ID = "Nats-Msg-Id"
POSITION = "Concord-Position"  # notification id in the aggregate type's store
STORE = "Concord-Store"
AGGREGATE = "Concord-Aggregate"
AGGREGATE_ID = "Concord-Aggregate-Id"
AGGREGATE_VERSION = "Concord-Aggregate-Version"
EVENT_TYPE = "Concord-Event-Type"
TRACEPARENT = "traceparent"

DUPLICATE_WINDOW_S = 120.0


@dataclass(frozen=True)
class Subjects:
    """Subject names under one prefix (tests use their own prefix to stay apart)."""

    prefix: str = "concord"

    @property
    def root(self) -> str:
        return f"{self.prefix}.{SUBJECT_VERSION}"

    @property
    def all(self) -> str:
        return f"{self.root}.>"

    def event(self, aggregate: str, event_type: str, aggregate_id: str) -> str:
        return f"{self.root}.{aggregate}.{event_type}.{aggregate_id}"

    def aggregate(self, aggregate: str) -> str:
        """Every event of one aggregate type (what one store publishes)."""
        return f"{self.root}.{aggregate}.>"

    def of_type(self, event_type: str) -> str:
        return f"{self.root}.*.{event_type}.*"

    def of_entity(self, aggregate: str, aggregate_id: str) -> str:
        return f"{self.root}.{aggregate}.*.{aggregate_id}"


def stream_config(
    name: str,
    subjects: Subjects,
    replicas: int = 1,
    duplicate_window_s: float = DUPLICATE_WINDOW_S,
) -> StreamConfig:
    """The events stream: file storage, no limits (PostgreSQL holds the full history too,
    but the stream's tail is how the relay knows what it already published), dedupe window
    for in-flight retries, and no message deletes so that tail stays trustworthy."""
    return StreamConfig(
        name=name,
        description="Concord events: every committed event exactly once (Nats-Msg-Id = event id)",
        subjects=[subjects.all],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=replicas,
        duplicate_window=duplicate_window_s,
        deny_delete=True,
        allow_direct=True,
    )


def headers_for(envelope: dict[str, Any], store: str, position: int) -> dict[str, str]:
    """Headers of one published event (see module docstring for their meaning)."""
    return {
        MSG_ID: envelope["event_id"],
        POSITION: str(position),
        STORE: store,
        AGGREGATE: envelope["aggregate"],
        AGGREGATE_ID: envelope["aggregate_id"],
        AGGREGATE_VERSION: str(envelope["version"]),
        EVENT_TYPE: envelope["type"],
    }
