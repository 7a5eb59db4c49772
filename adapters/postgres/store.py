"""Reading aggregates and histories from the per-aggregate eventsourcing applications."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from adapters.postgres.stores import Store
from hub.application.ports import EventStorePort
from hub.domain.base import Aggregate, DomainEvent


class ApplicationEventStore(EventStorePort):
    def __init__(self, stores: dict[str, Store]) -> None:
        self.stores = stores

    def load(self, entity: str, aggregate_id: UUID, version: int | None = None) -> Aggregate | None:
        try:
            aggregate: object = self.stores[entity].repository.get(aggregate_id, version=version)
        except AggregateNotFoundError:
            return None
        assert isinstance(aggregate, Aggregate)
        return aggregate

    def history(self, entity: str, aggregate_id: UUID) -> list[DomainEvent]:
        events = list(self.stores[entity].events.get(aggregate_id))
        assert all(isinstance(e, DomainEvent) for e in events)
        return events  # type: ignore[return-value]
