"""Ports: what the application layer needs from storage, as small abstract classes.

The hub decides; adapters store. Each port is one concern, so a test can fake exactly what
a use case touches (``tests/unit/fakes.py`` holds in-memory versions of all of them) and the
hub's order of checks runs in milliseconds. ``adapters.postgres`` implements them on one
PostgreSQL database, where :class:`CommitPort` writes a command's events, its receipt and
its cross-reference rows in one transaction: that atomicity is why receipts are *read* through
:class:`ReceiptPort` but *written* only as part of a :class:`Change`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.domain.base import Aggregate, DomainEvent


@dataclass(frozen=True)
class Receipt:
    """A remembered command result for an ``Idempotency-Key`` (scoped to one client).

    ``created`` tells a replay whether the original command created its aggregate (the API
    answers a replay exactly as it answered the first time)."""

    client_id: str
    key: str
    request_hash: str
    created: bool
    body: dict[str, Any]


@dataclass(frozen=True)
class ConflictRecord:
    """A refused write of a field the caller's system does not own (for the workbench)."""

    client_id: str
    system: str
    entity: str
    aggregate_id: UUID | None
    command: str
    field: str
    owner: str
    payload: dict[str, Any]
    at: datetime
    occurrences: int = 1
    lines: tuple[int, ...] = ()  # batch line numbers (empty for a single command)

    def same_violation(self) -> tuple[Any, ...]:
        """What makes two refusals one conflict: who wrote which field of what, and how
        (the values written may differ; the first one is kept)."""
        return (
            self.client_id,
            self.entity,
            self.aggregate_id,
            self.command,
            self.field,
            self.owner,
        )


@dataclass(frozen=True)
class Change:
    """One command's writes: aggregates with pending events, plus its receipt if any."""

    aggregates: Sequence[Aggregate]
    receipt: Receipt | None = None


class EventStorePort(ABC):
    """Reads aggregates and their history from the per-aggregate stores."""

    @abstractmethod
    def load(self, entity: str, aggregate_id: UUID, version: int | None = None) -> Aggregate | None:
        """The aggregate at ``version`` (latest when None), or None if it does not exist."""

    @abstractmethod
    def history(
        self, entity: str, aggregate_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[DomainEvent]:
        """Events of the aggregate after ``after_version``, oldest first, at most ``limit``
        (empty if it does not exist)."""

    def load_as_of(self, entity: str, aggregate_id: UUID, at: datetime) -> Aggregate | None:
        """The aggregate as it was at ``at`` (recorded time), or None if it did not exist.

        This default replays the whole history; stores with snapshots start from the
        nearest snapshot at or before ``at`` instead."""
        return replay_until(None, self.history(entity, aggregate_id), at)

    @abstractmethod
    def of_customer(self, entity: str, customer_id: UUID) -> list[UUID]:
        """Ids of ``entity`` aggregates that named ``customer_id`` when created or moved
        (candidates: the caller checks their current state). Merges need it to move the
        merged customer's receivables, so every store must answer it: one that returned
        nothing would leave invoices behind silently."""


def replay_until(
    start: Aggregate | None, events: Iterable[DomainEvent], at: datetime
) -> Aggregate | None:
    """Apply ``events`` to ``start`` up to (and including) those recorded at ``at``."""
    aggregate: Any = start
    for event in events:
        if event.timestamp > at:
            break
        aggregate = event.mutate(aggregate)
    assert aggregate is None or isinstance(aggregate, Aggregate)
    return aggregate


class CommitPort(ABC):
    """Writes a command's changes: all aggregates, their external ids and the receipt in
    one transaction."""

    @abstractmethod
    def commit(self, change: Change) -> None:
        """Store atomically; raise ConcurrencyConflict if any aggregate moved meanwhile,
        AlreadyExists if an external id names another aggregate, ReceiptExists if the
        idempotency key was stored concurrently, StoreError if storage failed."""


class ReceiptPort(ABC):
    """Reads remembered idempotency receipts (written by :class:`CommitPort`)."""

    @abstractmethod
    def find_receipt(self, client_id: str, key: str) -> Receipt | None:
        """The stored result of an earlier command with this key, if any."""


class ConflictPort(ABC):
    """Remembers refused ownership violations for the exception workbench."""

    @abstractmethod
    def record_conflict(self, conflict: ConflictRecord) -> None:
        """Remember a refused ownership violation (outside any command transaction)."""


class CrossReferencePort(ABC):
    """Finds canonical ids by another system's id (rows written by :class:`CommitPort`)."""

    @abstractmethod
    def lookup(self, system: str, entity: str, external_id: str) -> UUID | None:
        """Canonical id that ``system`` knows as ``external_id``, if any."""


@dataclass(frozen=True)
class StoragePorts:
    """Everything the hub needs from storage, handed over by the composition root."""

    events: EventStorePort
    commits: CommitPort
    receipts: ReceiptPort
    conflicts: ConflictPort
    xref: CrossReferencePort


class ReceiptExists(Exception):
    """Another request with the same idempotency key committed first."""


class StoreError(Exception):
    """Storage failed (busy, unreachable, outcome unknown): not a business rule.

    Kept apart from :class:`~hub.domain.errors.DomainError` because nothing about the
    request is wrong; the same request may succeed a moment later (``retryable``)."""

    code = "store-unavailable"
    retryable = True
    field: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
