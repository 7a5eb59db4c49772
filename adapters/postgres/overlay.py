"""An event-store view that sees a batch's not-yet-committed aggregates.

Bulk ingest decides many lines before committing them together. A later line ("place an
order for the customer registered on line 3") must see what earlier lines decided, so
reads check the batch's own aggregates first and fall back to the stores.
"""

from __future__ import annotations

from uuid import UUID

from hub.application.ports import EventStorePort
from hub.domain.base import Aggregate, DomainEvent


class BatchOverlay(EventStorePort):
    def __init__(self, base: EventStorePort) -> None:
        self.base = base
        self._latest: dict[UUID, Aggregate] = {}

    def remember(self, aggregates: list[Aggregate]) -> None:
        """Record the state decided by a line (call before its events are collected)."""
        for aggregate in aggregates:
            self._latest[aggregate.id] = aggregate

    def load(self, entity: str, aggregate_id: UUID, version: int | None = None) -> Aggregate | None:
        found = self._latest.get(aggregate_id)
        if found is not None and version is None:
            if found.entity != entity:
                return None
            # A fresh copy without pending events: the line that made them still owns them.
            return type(found).model_validate(found.state())
        return self.base.load(entity, aggregate_id, version)

    def history(
        self, entity: str, aggregate_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[DomainEvent]:
        return self.base.history(entity, aggregate_id, after_version=after_version, limit=limit)

    def of_customer(self, entity: str, customer_id: UUID) -> list[UUID]:
        """The stores' answer plus this batch's own aggregates of that customer."""
        ours = [
            a.id
            for a in self._latest.values()
            if a.entity == entity and getattr(a, "customer_id", None) == customer_id
        ]
        return list(dict.fromkeys([*self.base.of_customer(entity, customer_id), *ours]))
