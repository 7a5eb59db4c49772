"""Reading aggregates and histories from the per-aggregate eventsourcing applications."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from adapters.postgres.stores import Store
from hub.application.ports import EventStorePort, replay_until
from hub.domain.base import Aggregate, AggregateSnapshot, DomainEvent
from hub.domain.catalog import EVENT_TYPES


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

    def of_customer(self, entity: str, customer_id: UUID) -> list[UUID]:
        """Aggregates whose events set ``customer_id`` (creation, or a move on a merge).

        Reads only those event types, and decodes them through the store's own mapper so
        whatever the transcoder does (upcasting, encryption) applies. It scans every such
        event of the entity: merges are rare, and an index by customer is a projection's
        job (not built yet).
        """
        store = self.stores[entity]
        module = store.aggregate_class.__module__
        topics = [
            get_topic(cls)
            for cls in EVENT_TYPES
            if cls.__module__ == module and "customer_id" in cls.model_fields
        ]
        recorder: Any = store.recorder
        query = SQL(
            "SELECT originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE topic = ANY(%s)"
        ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(query, (topics,))
            rows = cursor.fetchall()
        found: dict[UUID, None] = {}
        for row in rows:
            event = store.mapper.to_domain_event(
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
            if getattr(event, "customer_id", None) == customer_id:
                found[event.originator_id] = None
        return list(found)
