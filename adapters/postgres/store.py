"""Reading aggregates and histories from the per-aggregate eventsourcing applications."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from hub.application.ports import EventStorePort, replay_until
from hub.application.stores import Store
from hub.domain.base import Aggregate, AggregateSnapshot, DomainEvent


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

    def history(
        self, entity: str, aggregate_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[DomainEvent]:
        events = list(
            self.stores[entity].events.get(aggregate_id, gt=after_version or None, limit=limit)
        )
        assert all(isinstance(e, DomainEvent) for e in events)
        return events  # type: ignore[return-value]

    def load_as_of(self, entity: str, aggregate_id: UUID, at: datetime) -> Aggregate | None:
        """Start from the newest snapshot taken at or before ``at``; replay only what follows.

        Snapshots are few (one per 50 or 100 events) and read newest first, so an audit of a
        long-lived contract reads one snapshot and at most an interval of events rather than
        its whole history."""
        store = self.stores[entity]
        start: Aggregate | None = None
        if store.snapshots is not None:
            for snapshot in store.snapshots.get(aggregate_id, desc=True):
                assert isinstance(snapshot, AggregateSnapshot)
                if snapshot.timestamp <= at:
                    start = snapshot.mutate(None)
                    break
        after = start.version if start is not None else None
        later = [e for e in store.events.get(aggregate_id, gt=after) if isinstance(e, DomainEvent)]
        return replay_until(start, later, at)
