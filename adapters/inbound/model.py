"""What the inbound boundary speaks: source events, references, and translations.

A source system's webhook delivery is verified and split into :class:`SourceEvent` values
(one Stripe event, one element of a HubSpot array, one CDC message). A *translator* is a pure
function from a source event plus what the hub already knows (:class:`Known`) to a
:class:`Translation`: the canonical commands it causes, or the one dependency it waits for,
or why it is ignored. Keeping translators pure is what lets ``concord inbound replay``
re-run history through a fixed translator with the same dedupe guarantees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from adapters.inbound.matching import Candidate, MatchResult


@dataclass(frozen=True)
class SourceEvent:
    """One verified event from a source system, in its own shape.

    ``event_id`` is the source's own id (Stripe ``evt_…``, HubSpot ``eventId``, a CDC
    ``replayId``…), the dedupe key. ``occurred_at`` is the source's time of the change: it
    orders updates (an older one never overwrites a newer) and is never the arrival time.
    """

    event_id: str
    event_type: str
    document: dict[str, Any]
    raw: bytes
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Ref:
    """An aggregate named by one system's id, resolved through the cross-reference.

    ``system`` is the hub's system category (crm / erp / billing), the same key the
    cross-reference uses whichever product plays that role."""

    system: str
    entity: str
    external_id: str

    def describe(self) -> str:
        return f"{self.system} {self.entity} {self.external_id}"


@dataclass(frozen=True)
class Step:
    """One canonical command a source event causes.

    ``target`` is the aggregate for a non-creating command (an id, or a :class:`Ref` the
    translator has seen resolve); ``source_record_id`` makes a create deterministic, so the
    same record re-sent lands on the same aggregate."""

    entity: str
    command: str
    data: dict[str, Any] = field(default_factory=dict)
    target: UUID | None = None
    source_record_id: str | None = None
    correlation_id: str | None = None
    occurred_at: datetime | None = None
    """The source time of what the step states, when it is not the event's own: a step
    derived from a merged mirror states the record as of its newest field."""


@dataclass(frozen=True)
class ReviewRequest:
    """Ask a person whether source record ``external_id`` is one of ``candidates``."""

    external_id: str
    candidates: tuple[tuple[UUID, str], ...]


@dataclass(frozen=True)
class Translation:
    """What one source event means for the hub."""

    steps: tuple[Step, ...] = ()
    waits_for: Ref | None = None
    """A dependency that has not arrived: the event is held and re-translated when it does."""
    ignored: str | None = None
    """Why the event causes nothing (an event type Concord does not follow, an echo)."""
    review: ReviewRequest | None = None
    """An uncertain customer match: the event is held until a person decides."""

    @classmethod
    def ignore(cls, reason: str) -> Translation:
        return cls(ignored=reason)

    @classmethod
    def wait(cls, ref: Ref) -> Translation:
        return cls(waits_for=ref)

    @classmethod
    def ask(cls, external_id: str, match: MatchResult) -> Translation:
        return cls(review=ReviewRequest(external_id, match.uncertain))


class Known(Protocol):
    """What a translator may ask of the hub (read-only)."""

    def lookup(self, ref: Ref) -> UUID | None:
        """The canonical id of ``ref``, if that system's id is linked to an aggregate."""
        ...

    def state(self, entity: str, aggregate_id: UUID) -> dict[str, Any] | None:
        """The aggregate's current state (as ``GET /v1/<kind>/{id}`` shows it), if any."""
        ...

    def match(self, candidate: Candidate) -> MatchResult:
        """The customer ``candidate`` is, surely, or who a person should compare it with
        (:mod:`adapters.inbound.matching`)."""
        ...

    def decision(self, external_id: str) -> tuple[str, UUID | None] | None:
        """A person's decision on this source's record, once made: ``("linked", id)`` or
        ``("new", None)`` (it is nobody Concord knows)."""
        ...

    def mirror(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        """This source's record as merged from every update that arrived for it
        (:mod:`adapters.inbound.mirror`), if any arrived."""
        ...


def lookup_or_wait(known: Known, ref: Ref) -> UUID | Translation:
    """The canonical id of ``ref``, or the translation that waits for it (held)."""
    found = known.lookup(ref)
    return found if found is not None else Translation.wait(ref)
