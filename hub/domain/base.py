"""Aggregate and event base classes, on pydantic and the eventsourcing library's protocols.

Why pydantic events instead of the library's dataclass events: every event type gets a JSON
Schema for free (published to NATS subscribers), nested values such as money and order lines
validate on the way in and out of the store, and unknown fields are refused.

Aggregates are plain (mutable) pydantic models whose command methods check rules and then
*record* past-tense events through :meth:`Aggregate._record`; an event's ``apply`` is the only
code that changes state, so replaying history rebuilds exactly the same aggregate.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID, uuid5

from eventsourcing.domain import OriginatorIDError, OriginatorVersionError
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from hub.domain.provenance import Provenance, Stamp

EVENT_NAMESPACE = UUID("0b4f3b7e-3d7a-4f0e-8a51-6c2d9e1f7a44")


class DomainEvent(BaseModel):
    """Something that happened to one aggregate. ``timestamp`` is the hub's recorded-at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    provenance: Provenance
    traceparent: str | None = None

    class_version: ClassVar[int] = 1
    #: Dotted paths (in the stored state) of a person's data: the store seals them with the
    #: aggregate's own key, so destroying that key erases them everywhere (crypto-shredding).
    personal_fields: ClassVar[tuple[str, ...]] = ()
    #: True for the event that erases the aggregate's personal data: its commit destroys the key.
    erases_personal_data: ClassVar[bool] = False

    def mutate(self, aggregate: Any) -> Any:
        """Apply to ``aggregate`` after checking it is the next event of that aggregate."""
        if aggregate is None:
            raise AssertionError(f"{type(self).__name__} cannot start an aggregate")
        if self.originator_id != aggregate.id:
            raise OriginatorIDError(self.originator_id, aggregate.id)
        if self.originator_version != aggregate.version + 1:
            raise OriginatorVersionError(self.originator_version, aggregate.version + 1)
        self.apply(aggregate)
        aggregate.version = self.originator_version
        aggregate.modified_on = self.timestamp
        self.note_source_time(aggregate)
        return aggregate

    def apply(self, aggregate: Any) -> None:
        """Change the aggregate's state; events that only record a fact leave it as is."""

    def source_fields(self) -> list[str]:
        """Aggregate fields this event set from its source (their source time is kept)."""
        return []

    def note_source_time(self, aggregate: Aggregate) -> None:
        """Remember when, by the source's clock, each field this event set was said."""
        occurred = self.provenance.occurred_at
        fields = self.source_fields()
        if occurred is not None and fields:
            aggregate.source_occurred_at = {
                **aggregate.source_occurred_at,
                **dict.fromkeys(fields, occurred),
            }

    @property
    def event_id(self) -> UUID:
        """Stable id of this event (``Nats-Msg-Id``, idempotency key at targets).

        Derived from aggregate id and version, which the store's primary key makes unique,
        so a republished or replayed event always carries the same id.
        """
        return uuid5(EVENT_NAMESPACE, f"{self.originator_id}:{self.originator_version}")

    def external_refs(self) -> list[tuple[str, str]]:
        """``(system, external id)`` pairs this event ties to its aggregate (cross-reference)."""
        return []

    @classmethod
    def type_name(cls) -> str:
        """Stable public name of the event type, e.g. ``OrderPlaced``."""
        return cls.__name__

    def data(self) -> dict[str, Any]:
        """The event's own fields as JSON-ready values (without the envelope fields)."""
        return self.model_dump(
            mode="json",
            exclude={
                "originator_id",
                "originator_version",
                "timestamp",
                "provenance",
                "traceparent",
            },
        )


class CreationEvent(DomainEvent):
    """The first event of an aggregate: it constructs the aggregate instead of changing it."""

    def external_refs(self) -> list[tuple[str, str]]:
        record = self.provenance.source_record_id
        return [(self.provenance.source_system.value, record)] if record else []

    def mutate(self, aggregate: Any) -> Any:
        if aggregate is not None:
            raise AssertionError(f"{type(self).__name__} must be the first event")
        if self.originator_version != 1:
            raise OriginatorVersionError(self.originator_version, 1)
        aggregate = self.create()
        self.note_source_time(aggregate)
        return aggregate

    def create(self) -> Aggregate:
        """Build the new aggregate from this event's fields."""
        raise AssertionError(f"{type(self).__name__} must define create()")


class StaleUpdate(DomainEvent):
    """A source update older (by the source's clock) than what the aggregate holds for
    ``fields``: recorded, so the audit trail shows it arrived, but nothing changed.

    ``newer_occurred_at`` is the source time of the value each field kept. The stale values
    themselves are not copied into the log (they may be personal data); the provenance names
    the source record and event that carried them. Each aggregate module defines its own
    subclass, so the event type names its aggregate (``CustomerUpdateStale``).
    """

    fields: list[str]
    newer_occurred_at: dict[str, datetime]


E = TypeVar("E", bound=DomainEvent)


class Aggregate(BaseModel):
    """Base of the five canonical aggregates: identity, version and pending events."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    id: UUID
    version: int
    created_on: datetime
    modified_on: datetime

    source_occurred_at: dict[str, datetime] = Field(default_factory=dict)
    """Per field, when the source said its current value (``Concord-Occurred-At``)."""

    _pending: list[DomainEvent] = PrivateAttr(default_factory=list)

    #: Entity name in the ownership policy and in URLs (``customer`` -> ``/v1/customers``).
    entity: ClassVar[str] = ""
    #: State fields holding a person's data (sealed in snapshots and receipts, see events).
    personal_fields: ClassVar[tuple[str, ...]] = ()
    #: The aggregate's StaleUpdate event type (for :meth:`_fresh`).
    stale_event: ClassVar[type[StaleUpdate] | None] = None

    @classmethod
    def _start(cls, event: CreationEvent) -> Self:
        aggregate = event.mutate(None)
        if not isinstance(aggregate, cls):
            raise AssertionError(f"{type(event).__name__} created {type(aggregate).__name__}")
        aggregate._events().append(event)
        return aggregate

    def _record(self, event_class: type[E], stamp: Stamp, **fields: Any) -> E:
        """Record the next event of this aggregate and apply it."""
        event = event_class(
            originator_id=self.id,
            originator_version=self.version + 1,
            timestamp=stamp.recorded_at,
            provenance=stamp.provenance,
            traceparent=stamp.traceparent,
            **fields,
        )
        event.mutate(self)
        self._events().append(event)
        return event

    def _fresh(self, stamp: Stamp, fields: list[str]) -> list[str]:
        """The ``fields`` this update may change: an older fact never overwrites a newer one.

        A field is stale when the update's source time is before the source time of the
        value held (equal times: the later arrival wins). Stale fields are recorded as one
        StaleUpdate event and left out; an update without a source time always applies.
        """
        occurred = stamp.provenance.occurred_at
        if occurred is None or self.stale_event is None:
            return fields
        held = self.source_occurred_at
        stale = [f for f in fields if f in held and occurred < held[f]]
        if stale:
            newer = {f: held[f] for f in stale}
            self._record(self.stale_event, stamp, fields=stale, newer_occurred_at=newer)
        return [f for f in fields if f not in stale]

    def collect_events(self) -> list[DomainEvent]:
        """Hand over (and forget) the events recorded since the last save."""
        events = self._events()
        private = self.__pydantic_private__
        assert private is not None
        private["_pending"] = []
        return events

    @property
    def pending_events(self) -> list[DomainEvent]:
        """Events recorded but not yet saved (read-only view)."""
        return list(self._events())

    def _events(self) -> list[DomainEvent]:
        """The pending list itself. Read from pydantic's private-attribute dict directly:
        the attribute path goes through ``__getattr__`` and was a hot spot in bulk ingest."""
        private = self.__pydantic_private__
        assert private is not None
        events: list[DomainEvent] = private["_pending"]
        return events

    def on_business_date(self, day: date) -> Self:
        """The aggregate as in force on ``day`` (queries name one; changes scheduled for a
        later date stay ahead). Only contracts schedule changes; the rest are as they are."""
        return self

    def state(self) -> dict[str, Any]:
        """JSON-ready state for query results and snapshots."""
        return self.model_dump(mode="json")

    def derived(self) -> dict[str, Any]:
        """Figures computed from the state, shown in query results beside it (JSON-ready).
        Not part of :meth:`state`: snapshots store only what events set."""
        return {}


def creation_fields(stamp: Stamp, aggregate_id: UUID) -> dict[str, Any]:
    """Envelope fields of a creation event (version 1)."""
    return {
        "originator_id": aggregate_id,
        "originator_version": 1,
        "timestamp": stamp.recorded_at,
        "provenance": stamp.provenance,
        "traceparent": stamp.traceparent,
    }


class AggregateSnapshot(BaseModel):
    """Snapshot of any aggregate: its JSON state and class topic.

    Loading a long stream (a contract with hundreds of amendments) starts from the latest
    snapshot and replays only later events.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    topic: str
    state: dict[str, Any]

    class_version: ClassVar[int] = 1

    @classmethod
    def take(cls, aggregate: Aggregate) -> AggregateSnapshot:
        return cls(
            originator_id=aggregate.id,
            originator_version=aggregate.version,
            timestamp=aggregate.modified_on,
            topic=get_topic(type(aggregate)),
            state=aggregate.state(),
        )

    def mutate(self, aggregate: Any) -> Aggregate:
        aggregate_class: type[Aggregate] = resolve_topic(self.topic)
        return aggregate_class.model_validate(self.state)
