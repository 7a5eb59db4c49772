"""Ports: what the application layer needs from storage, as small abstract classes.

The hub decides; adapters store. ``adapters.postgres`` implements these on PostgreSQL (one
transaction across the per-aggregate event tables), which is the only implementation the
product runs with; tests use it too.
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
    """A remembered command result for an ``Idempotency-Key`` (scoped to one client)."""

    client_id: str
    key: str
    request_hash: str
    status: int
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
    """Writes a command's changes: all aggregates and the receipt in one transaction."""

    @abstractmethod
    def commit(self, change: Change) -> None:
        """Store atomically; raise ConcurrencyConflict if any aggregate moved meanwhile,
        ReceiptExists if the idempotency key was stored concurrently."""

    @abstractmethod
    def find_receipt(self, client_id: str, key: str) -> Receipt | None:
        """The stored result of an earlier command with this key, if any."""

    @abstractmethod
    def record_conflict(self, conflict: ConflictRecord) -> None:
        """Remember a refused ownership violation."""

    @abstractmethod
    def lookup(self, system: str, entity: str, external_id: str) -> UUID | None:
        """Canonical id that ``system`` knows as ``external_id``, if any."""


class ReceiptExists(Exception):
    """Another request with the same idempotency key committed first."""
