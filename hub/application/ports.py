"""Ports: what the application layer needs from storage, as small abstract classes.

The hub decides; adapters store. ``adapters.postgres`` implements these on PostgreSQL (one
transaction across the per-aggregate event tables), which is the only implementation the
product runs with; tests use it too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
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
    def history(self, entity: str, aggregate_id: UUID) -> list[DomainEvent]:
        """Every event of the aggregate, oldest first (empty if it does not exist)."""

    def of_customer(self, entity: str, customer_id: UUID) -> list[UUID]:
        """Ids of ``entity`` aggregates that named ``customer_id`` when created or moved
        (candidates: the caller checks their current state). Merges need it to move the
        merged customer's receivables; a store that cannot answer must say so, not return
        nothing, or a merge would leave invoices behind silently."""
        raise NotImplementedError(f"this store cannot find {entity}s by customer")


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
