"""Unit of work: the aggregates one command reads and changes, saved together.

A command such as "apply payment P to invoice I" changes two aggregates that live in two
stores; the unit collects both so the commit port writes them in one transaction, and
re-reading an aggregate inside a command returns the same (already changed) instance.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from hub.application.ports import EventStorePort
from hub.domain.base import Aggregate
from hub.domain.errors import AlreadyExists, NotFound

A = TypeVar("A", bound=Aggregate)


class Unit:
    def __init__(self, store: EventStorePort) -> None:
        self._store = store
        self._seen: dict[UUID, Aggregate] = {}

    def get(self, cls: type[A], aggregate_id: UUID, *, field: str | None = None) -> A:
        """Load an aggregate of type ``cls``; NotFound names the input ``field`` if given."""
        if aggregate_id in self._seen:
            found = self._seen[aggregate_id]
        else:
            loaded = self._store.load(cls.entity, aggregate_id)
            if loaded is None:
                raise NotFound(f"no {cls.entity} with id {aggregate_id}", field=field)
            found = self._seen[aggregate_id] = loaded
        if not isinstance(found, cls):
            raise NotFound(f"{aggregate_id} is not a {cls.entity}", field=field)
        return found

    def of_customer(self, cls: type[A], customer_id: UUID) -> list[A]:
        """The ``cls`` aggregates that belong to ``customer_id`` now (read through this unit,
        so ones created or changed earlier in the command count as they are)."""
        ids = dict.fromkeys(self._store.of_customer(cls.entity, customer_id))
        ids.update(dict.fromkeys(a.id for a in self._seen.values() if isinstance(a, cls)))
        found = [self.get(cls, aggregate_id) for aggregate_id in ids]
        return [a for a in found if getattr(a, "customer_id", None) == customer_id]

    def add(self, aggregate: Aggregate) -> None:
        """Register a newly created aggregate.

        Whether the id is taken in the store is not read here: the store's primary key
        refuses a second version 1 at commit, which the service reports as AlreadyExists.
        That saves two queries on every create, the commonest command in bulk ingest.
        """
        if aggregate.id in self._seen:
            raise AlreadyExists(
                f"{aggregate.entity} {aggregate.id} exists already",
                field="id",
                existing=(aggregate.entity, aggregate.id),
            )
        self._seen[aggregate.id] = aggregate

    def changed(self) -> list[Aggregate]:
        """Aggregates with events recorded in this unit, in the order first touched."""
        return [a for a in self._seen.values() if a.pending_events]
