"""Fixed stamps and ids for pure domain tests: aggregates never read a clock, nor do tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from hub.application.ports import EventStorePort
from hub.domain.base import Aggregate, DomainEvent
from hub.domain.money import Money
from hub.domain.provenance import Provenance, Stamp, System

T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
NS = UUID("00000000-0000-4000-8000-000000000000")


def stamp(system: str = "crm", *, minutes: int = 0, actor: str = "test") -> Stamp:
    """A stamp at a fixed instant (``minutes`` later than T0) from ``system``."""
    return Stamp(
        provenance=Provenance(source_system=System(system), actor=actor),
        recorded_at=T0 + timedelta(minutes=minutes),
    )


def uid(name: str) -> UUID:
    """A readable, stable id for a test entity (``uid("customer-a")``)."""
    return uuid5(NS, name)


def usd(amount: str | int) -> Money:
    return Money.of(Decimal(amount), "USD")


D0 = date(2026, 1, 1)


class MemoryStore(EventStorePort):
    """Aggregates by id, for running command specs through a real :class:`Unit` in memory."""

    def __init__(self, *aggregates: Aggregate) -> None:
        self.aggregates = {a.id: a for a in aggregates}

    def load(self, entity: str, aggregate_id: UUID, version: int | None = None) -> Aggregate | None:
        found = self.aggregates.get(aggregate_id)
        return found if found is not None and found.entity == entity else None

    def history(
        self, entity: str, aggregate_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[DomainEvent]:
        return []

    def of_customer(self, entity: str, customer_id: UUID) -> list[UUID]:
        return [
            a.id
            for a in self.aggregates.values()
            if a.entity == entity and getattr(a, "customer_id", None) == customer_id
        ]


def replay(events: list[DomainEvent]) -> Aggregate:
    """Rebuild an aggregate from its events after a JSON round trip, as the store would."""
    aggregate: Any = None
    for event in events:
        stored = type(event).model_validate_json(event.model_dump_json())
        aggregate = stored.mutate(aggregate)
    assert isinstance(aggregate, Aggregate)
    return aggregate
