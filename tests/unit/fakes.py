"""In-memory versions of the hub's storage ports, for fast unit tests of ``Hub``.

They keep what PostgreSQL keeps (events per aggregate, receipts, conflicts, external ids)
and enforce what the real committer enforces at commit: an aggregate's next event must
follow the stored version (else ConcurrencyConflict), an idempotency key is taken once
(else ReceiptExists), an external id belongs to one aggregate (else AlreadyExists). Every
port call is appended to ``calls`` so a test can assert the order of the hub's checks.
"""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from hub.application.ports import (
    Change,
    CommitPort,
    ConflictPort,
    ConflictRecord,
    CrossReferencePort,
    EventStorePort,
    Receipt,
    ReceiptExists,
    ReceiptPort,
    StoragePorts,
)
from hub.domain.base import Aggregate, DomainEvent
from hub.domain.errors import AlreadyExists, ConcurrencyConflict


class InMemoryStorage(EventStorePort, CommitPort, ReceiptPort, ConflictPort, CrossReferencePort):
    def __init__(self) -> None:
        self.events: dict[UUID, list[DomainEvent]] = defaultdict(list)
        self.receipts: dict[tuple[str, str], Receipt] = {}
        self.conflicts: list[ConflictRecord] = []
        self.xref: dict[tuple[str, str, str], UUID] = {}
        self.calls: list[str] = []
        #: Set to make the next commit fail as if another writer got there first.
        self.fail_next_commit: Exception | None = None

    def ports(self) -> StoragePorts:
        return StoragePorts(events=self, commits=self, receipts=self, conflicts=self, xref=self)

    # -- EventStorePort -------------------------------------------------------------------

    def load(self, entity: str, aggregate_id: UUID, version: int | None = None) -> Aggregate | None:
        self.calls.append("load")
        aggregate: Aggregate | None = None
        for event in self.events.get(aggregate_id, []):
            if version is not None and event.originator_version > version:
                break
            aggregate = event.mutate(aggregate)
        return aggregate if aggregate is None or aggregate.entity == entity else None

    def history(self, entity: str, aggregate_id: UUID) -> list[DomainEvent]:
        self.calls.append("history")
        return list(self.events.get(aggregate_id, []))

    def of_customer(self, entity: str, customer_id: UUID) -> list[UUID]:
        found = []
        for aggregate_id in list(self.events):
            aggregate = self.load(entity, aggregate_id)
            if aggregate is not None and getattr(aggregate, "customer_id", None) == customer_id:
                found.append(aggregate_id)
        return found

    # -- CommitPort -----------------------------------------------------------------------

    def commit(self, change: Change) -> None:
        self.calls.append("commit")
        if self.fail_next_commit is not None:
            error, self.fail_next_commit = self.fail_next_commit, None
            raise error
        receipt = change.receipt
        if receipt is not None and (receipt.client_id, receipt.key) in self.receipts:
            raise ReceiptExists()
        for aggregate in change.aggregates:
            first = aggregate.pending_events[0].originator_version
            if first != len(self.events.get(aggregate.id, [])) + 1:
                raise ConcurrencyConflict("the aggregate moved meanwhile", field="version")
        refs = {
            (system, a.entity, external): a.id
            for a in change.aggregates
            for e in a.pending_events
            for system, external in e.external_refs()
        }
        for key, owner in refs.items():
            if self.xref.get(key, owner) != owner:
                raise AlreadyExists(f"{key} belongs to another aggregate", field="external_id")
        for aggregate in change.aggregates:
            self.events[aggregate.id].extend(aggregate.collect_events())
        self.xref.update(refs)
        if receipt is not None:
            self.receipts[(receipt.client_id, receipt.key)] = receipt

    # -- ReceiptPort, ConflictPort, CrossReferencePort -------------------------------------

    def find_receipt(self, client_id: str, key: str) -> Receipt | None:
        self.calls.append("find_receipt")
        return self.receipts.get((client_id, key))

    def record_conflict(self, conflict: ConflictRecord) -> None:
        self.calls.append("record_conflict")
        self.conflicts.append(conflict)

    def lookup(self, system: str, entity: str, external_id: str) -> UUID | None:
        self.calls.append("lookup")
        return self.xref.get((system, entity, external_id))
