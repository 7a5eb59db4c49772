"""Atomic, grouped commits across the per-aggregate event stores.

Why this exists: the library saves one application at a time, but a command such as "apply
payment P to invoice I" changes aggregates in two stores, and its idempotency receipt must
commit with its events or not at all. Here one PostgreSQL transaction takes each touched
store's table lock (in a fixed order, so two writers cannot deadlock), inserts the events
with the library's own statement, the receipt and the cross-reference rows, and commits.

Why grouping: every store insert serialises on its table lock and pays a commit fsync, so
one command per transaction tops out near 1.5k/s. Concurrent callers therefore hand their
changes to one writer thread, which commits whatever has queued up (up to ``group_max``) in
one transaction. If that transaction fails (a concurrent modification, a taken receipt), the
writer retries each change of the group alone, so a bad neighbour costs the others one retry
and never their success.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import psycopg
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from opentelemetry import metrics, trace
from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.inbound.log import erase_deliveries
from adapters.nats.size import MAX_PAYLOAD_BYTES, largest_field, published_size_bound
from adapters.postgres import index
from adapters.postgres.index import IndexRow, index_rows
from adapters.postgres.match_keys import MatchKeys
from adapters.postgres.personal_keys import PersonalKeyStore
from adapters.postgres.records import PostgresReceipts, receipt_status
from adapters.postgres.stores import Store
from hub.application.personal import seal_view
from hub.application.ports import Change, CommitPort, ReceiptExists, StoreError
from hub.domain.errors import AlreadyExists, ConcurrencyConflict, DomainError, InvalidValue


class StoreBusy(StoreError):
    """A table lock could not be taken within the lock timeout."""

    code = "store-busy"


class StoreUnavailable(StoreError):
    """The database could not be reached (or a commit's outcome could not be read back)."""

    code = "store-unavailable"


class EventTooLarge(DomainError):
    """An event would exceed what NATS accepts in one message; the relay could never publish
    it (and would hold back every later event of its store), so it is not committed."""

    status = 413
    code = "event-too-large"


class DependencyFailed(DomainError):
    """A bulk-ingest line built on an earlier line of its batch that did not commit."""

    code = "depends-on-failed-line"


@dataclass
class BatchScope:
    """Aggregates whose changes failed within one bulk batch (touched by the writer only).

    Later lines of a batch were decided on top of earlier ones; if an earlier one does not
    commit, a later one touching the same aggregate must not commit either, or it would
    append to a history that does not exist (or to somebody else's)."""

    failed: set[UUID] = field(default_factory=set)


@dataclass
class _Pending:
    change: Change
    stored: dict[str, list[StoredEvent]]
    refs: list[tuple[str, str, str, UUID]]
    index: list[IndexRow]
    future: Future[None]
    scope: BatchScope | None = None
    #: The receipt's body with personal fields sealed (what the receipts table holds).
    receipt_body: dict[str, Any] | None = None
    #: Customer keys made for this change (inserted with it) and keys its erasure destroys.
    new_keys: list[tuple[UUID, bytes]] = field(default_factory=list)
    destroyed: list[UUID] = field(default_factory=list)
    #: Customers whose blind match keys this change replaces, and the new keys.
    match_keys: dict[UUID, list[str]] = field(default_factory=dict)

    @property
    def aggregate_ids(self) -> set[UUID]:
        return {a.id for a in self.change.aggregates}


Submitted = _Pending

#: A caller waits at most this long for its commit (the writer fails it first, normally).
COMMIT_WAIT_S = 120.0


class PostgresCommitter(CommitPort):
    """Implements :class:`CommitPort` on the stores' PostgreSQL database."""

    def __init__(
        self,
        stores: dict[str, Store],
        schema: str,
        *,
        group_max: int = 256,
        max_event_bytes: int = MAX_PAYLOAD_BYTES,
        personal: PersonalKeyStore | None = None,
        match_keys: MatchKeys | None = None,
    ) -> None:
        self.stores = stores
        self.personal = personal
        self.match_keys = match_keys
        self.schema = sql.Identifier(schema)
        self.group_max = group_max
        self.max_event_bytes = max_event_bytes
        first = next(iter(stores.values()))
        recorder = first.recorder
        assert isinstance(recorder, PostgresApplicationRecorder)
        # All stores share one datastore (pool), database and schema, hence one composite
        # row type; it has the type adapters the library's insert statement needs.
        self.datastore: PostgresDatastore = recorder.datastore
        self.receipts = PostgresReceipts(self.datastore, schema, personal=personal)
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._writer = threading.Thread(target=self._run, name="concord-writer", daemon=True)
        self._writer.start()

    # -- CommitPort ---------------------------------------------------------------------

    def commit(self, change: Change) -> None:
        with _tracer.start_as_current_span("store.save") as span:
            pending = self._pending(change)
            _describe(span, [change], pending)
            self._queue.put(pending)
            _wait(pending)
        self._after_commit([change])

    def commit_many(self, changes: Sequence[Change]) -> list[Exception | None]:
        """Commit many changes in as few transactions as possible; per-change outcome."""
        return self.outcomes(self.submit(changes, BatchScope()))

    def submit(self, changes: Sequence[Change], scope: BatchScope | None = None) -> list[Submitted]:
        """Queue changes for the writer without waiting (bulk ingest keeps deciding later
        lines meanwhile); pass the result to :meth:`outcomes`. Changes sharing a ``scope``
        are one batch: a change never commits after an earlier one on the same aggregate
        failed."""
        items: list[_Pending] = []
        for change in changes:
            try:
                item = self._pending(change, scope)
            except EventTooLarge as refused:  # this line only: settle it, queue the others
                item = _Pending(change, {}, [], [], Future(), scope)
                _settle(item, error=refused)
                self._mark_failed(item)
            else:
                self._queue.put(item)
            items.append(item)
        return items

    def outcomes(self, items: Sequence[Submitted]) -> list[Exception | None]:
        """Wait for submitted changes; None for each committed one, else its error."""
        with _tracer.start_as_current_span("store.save_many") as span:
            _describe(span, [i.change for i in items], *items)
            results: list[Exception | None] = []
            for item in items:
                try:
                    _wait(item)
                except Exception as error:
                    results.append(error)
                else:
                    results.append(None)
        self._after_commit([i.change for i, r in zip(items, results, strict=True) if r is None])
        return results

    def list_aggregates(self, query: index.ListQuery) -> list[IndexRow]:
        """A page of the aggregate index (``adapters.postgres.index``)."""
        with self.datastore.get_connection() as conn:
            return index.select(conn, self.schema, query)

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=30)
        while True:  # anything queued after the stop: refuse it rather than leave it waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None and not item.future.done():
                item.future.set_exception(StoreUnavailable("the hub is shutting down"))

    # -- preparing (caller's thread) ----------------------------------------------------

    def _pending(self, change: Change, scope: BatchScope | None = None) -> _Pending:
        stored: dict[str, list[StoredEvent]] = defaultdict(list)
        refs: list[tuple[str, str, str, UUID]] = []
        for aggregate in change.aggregates:
            store = self.stores[aggregate.entity]
            for event in aggregate.pending_events:
                record = store.mapper.to_stored_event(event)
                self._check_size(type(event).__name__, record)
                stored[store.name].append(record)
                for system, external in event.external_refs():
                    refs.append((system, aggregate.entity, external, aggregate.id))
        item = _Pending(change, dict(stored), refs, index_rows(change.aggregates), Future(), scope)
        if change.receipt is not None:
            item.receipt_body = change.receipt.body
        if self.match_keys is not None:
            customers = [
                a for a in change.aggregates if a.entity == "customer" and a.pending_events
            ]
            if customers:
                touched, rows = self.match_keys.rows(customers)
                item.match_keys = {customer: [] for customer in touched}
                for digest, customer in rows:
                    item.match_keys[customer].append(digest)
        personal = self.personal
        if personal is not None:
            if item.receipt_body is not None:
                item.receipt_body = orjson.loads(orjson.dumps(item.receipt_body))
                seal_view(personal, item.receipt_body)
            item.new_keys = personal.fresh(item.aggregate_ids)
            item.destroyed = [
                a.id
                for a in change.aggregates
                if any(e.erases_personal_data for e in a.pending_events)
            ]
            if item.new_keys or item.destroyed:
                item.future.add_done_callback(
                    lambda done: personal.settled(
                        item.new_keys, item.destroyed, committed=done.exception() is None
                    )
                )
        return item

    def _check_size(self, event_type: str, record: StoredEvent) -> None:
        """Refuse an event NATS could not carry, naming the field that makes it large."""
        size = published_size_bound(record.state)
        if size <= self.max_event_bytes:
            return
        field, field_size = largest_field(record.state)
        where = f"; its largest field is {field!r} ({field_size:,} bytes)" if field else ""
        raise EventTooLarge(
            f"the {event_type} event would be {size:,} bytes on the event stream, over its "
            f"limit of {self.max_event_bytes:,} bytes{where}: send less",
            field=field,
        )

    def _after_commit(self, changes: Sequence[Change]) -> None:
        """Forget committed events and take snapshots where an interval was crossed."""
        for change in changes:
            for aggregate in change.aggregates:
                events = aggregate.collect_events()
                store = self.stores[aggregate.entity]
                interval = store.snapshotting_intervals.get(type(aggregate))
                if interval and any(e.originator_version % interval == 0 for e in events):
                    try:
                        store.take_snapshot(aggregate.id)
                    except Exception:  # a snapshot only speeds up loading; the commit stands
                        log.exception("snapshot of %s %s failed", aggregate.entity, aggregate.id)

    # -- writing (writer thread) --------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.group_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                group.append(item)
            try:
                self._write_group(group)
            except Exception as error:  # never let the writer die: every caller gets an answer
                log.exception("writer failed on a group of %d", len(group))
                for item in group:
                    _settle(item, error=StoreUnavailable(f"commit failed: {error}"))

    def _write_group(self, group: list[_Pending]) -> None:
        live = [item for item in group if not self._depends_on_failure(item)]
        if not live:
            return
        try:
            taken = self._write(live)
        except Exception as error:
            self._after_failure(live, error)
            return
        for item in live:
            if id(item) in taken:
                _settle(item, error=ReceiptExists())
                self._mark_failed(item)
            else:
                for store, events in item.stored.items():
                    _appended.add(len(events), {"store": store})
                _settle(item)

    def _after_failure(self, group: list[_Pending], error: Exception) -> None:
        """A group's transaction failed: find out what to tell each of its callers."""
        if _connection_lost(error):
            self._resolve_uncertain(group, error)
            return
        translated = _translate(error)
        if isinstance(translated, StoreBusy) or len(group) == 1:
            # A lock timeout would only repeat for each change alone: fail them together.
            for item in group:
                _settle(item, error=translated)
                self._mark_failed(item)
            return
        for item in group:  # retry alone: one bad change must not fail its neighbours
            self._write_group([item])

    def _resolve_uncertain(self, group: list[_Pending], error: Exception) -> None:
        """The connection broke around COMMIT, so the group may or may not have committed.

        Read back rather than guess, so our own write never turns into a 409 on retry or
        into a duplicate: each change that landed is done, the rest are retried once alone.
        If even the read-back fails, the outcome is unknown: say so (503), do not retry."""
        for item in group:
            landed = self._landed(item)
            if landed is None:
                _settle(
                    item,
                    error=StoreUnavailable(
                        f"the database connection was lost while committing ({error}); the "
                        "outcome is unknown: re-read the aggregate, or retry with the same "
                        "Idempotency-Key"
                    ),
                )
                self._mark_failed(item)
            elif landed:
                _settle(item)
            else:
                time.sleep(0.2)
                try:
                    taken = self._write([item])
                except Exception as again:
                    _settle(item, error=_translate(again))
                    self._mark_failed(item)
                else:
                    if taken:
                        _settle(item, error=ReceiptExists())
                    else:
                        _settle(item)

    def _depends_on_failure(self, item: _Pending) -> bool:
        if item.scope is None or not (item.aggregate_ids & item.scope.failed):
            return False
        _settle(
            item,
            error=DependencyFailed(
                "an earlier line of this batch that this line builds on did not commit", field="id"
            ),
        )
        self._mark_failed(item)
        return True

    @staticmethod
    def _mark_failed(item: _Pending) -> None:
        if item.scope is not None:
            item.scope.failed |= item.aggregate_ids

    def _write(self, group: list[_Pending]) -> set[int]:
        """One transaction for the group; returns ids of items whose receipt was taken.

        In pipeline mode: the statements that return nothing (each store's lock, notify and
        insert, the customers' new keys) travel together instead of one round trip each,
        and are synced before COMMIT so a refusal surfaces as the error it is."""
        taken: set[int] = set()
        failed: Exception | None = None
        with self.datastore.get_connection() as conn, conn.pipeline() as pipeline:
            try:
                with conn.transaction(), conn.cursor() as curs:  # an error rolls it back
                    taken = self._insert_receipts(curs, group)
                    live = [item for item in group if id(item) not in taken]
                    by_store: dict[str, list[StoredEvent]] = defaultdict(list)
                    for item in live:
                        for name, events in item.stored.items():
                            by_store[name].extend(events)
                    for name in sorted(by_store):  # fixed lock order: no deadlock
                        recorder = self._recorder(name)
                        recorder._insert_stored_events(curs, by_store[name])
                    refs = [ref for item in live for ref in item.refs]
                    if refs:
                        self._insert_refs(curs, refs)
                    index.upsert(curs, self.schema, [row for item in live for row in item.index])
                    self._write_match_keys(curs, live)
                    self._write_keys(curs, live)
                    pipeline.sync()
            except Exception as error:
                failed = error  # re-raised outside the pipeline (psycopg's advice)
        if failed is not None:
            raise failed
        return taken

    def _write_match_keys(self, curs: psycopg.Cursor[Any], live: list[_Pending]) -> None:
        """Replace the customers' blind match keys (the last change of one wins)."""
        latest: dict[UUID, list[str]] = {}
        for item in live:
            latest.update(item.match_keys)
        if latest and self.match_keys is not None:
            self.match_keys.replace(curs, latest)

    def _write_keys(self, curs: psycopg.Cursor[Any], live: list[_Pending]) -> None:
        """New customers' keys, and erasures' destroyed keys, in the events' transaction."""
        if self.personal is None:
            return
        new_keys = [pair for item in live for pair in item.new_keys]
        if new_keys:  # a clash is a primary-key violation: a concurrency conflict
            self.personal.insert(curs, new_keys)
        destroyed = [subject for item in live for subject in item.destroyed]
        if destroyed:
            self.personal.destroy(curs, destroyed)
            erase_deliveries(curs, self.schema, destroyed)

    def _landed(self, item: _Pending) -> bool | None:
        """Did this change commit? Its first event (same id, version and bytes) witnesses
        it, or for a change without events its receipt; None when that cannot be read."""
        try:
            with self.datastore.get_connection() as conn:
                for name, events in item.stored.items():
                    first = events[0]
                    row = conn.execute(
                        sql.SQL(
                            "SELECT state FROM {}.{} WHERE originator_id = %s "
                            "AND originator_version = %s"
                        ).format(self.schema, sql.Identifier(f"{name}_events")),
                        (first.originator_id, first.originator_version),
                    ).fetchone()
                    return row is not None and bytes(row["state"]) == first.state
            receipt = item.change.receipt
            if receipt is None:
                return True  # nothing to write: nothing can have gone wrong
            found = self.receipts.find_receipt(receipt.client_id, receipt.key)
            return found is not None and found.request_hash == receipt.request_hash
        except Exception:
            return None

    def _recorder(self, name: str) -> PostgresApplicationRecorder:
        for store in self.stores.values():
            if store.name == name:
                assert isinstance(store.recorder, PostgresApplicationRecorder)
                return store.recorder
        raise KeyError(name)

    def _insert_receipts(self, curs: psycopg.Cursor[Any], group: list[_Pending]) -> set[int]:
        """Insert the group's receipts in one statement (one round trip, not one per change);
        returns the ids of items whose receipt key was taken already.

        A key taken by an earlier commit is not returned by ``ON CONFLICT DO NOTHING``; a key
        that two changes of this very group carry (two concurrent deliveries of one source
        event) goes in once, for the first of them, as one insert after the other would."""
        first: dict[tuple[str, str], _Pending] = {}
        taken: set[int] = set()
        for item in group:
            receipt = item.change.receipt
            if receipt is None:
                continue
            if first.setdefault((receipt.client_id, receipt.key), item) is not item:
                taken.add(id(item))
        if not first:
            return taken
        rows = []
        for item in first.values():
            receipt = item.change.receipt
            assert receipt is not None
            body = receipt.body if item.receipt_body is None else item.receipt_body
            rows.append(
                (
                    receipt.client_id,
                    receipt.key,
                    receipt.request_hash,
                    receipt_status(receipt),
                    Jsonb(body),
                )
            )
        columns = [list(c) for c in zip(*rows, strict=True)]
        curs.execute(
            sql.SQL(
                "INSERT INTO {}.concord_receipts (client_id, key, request_hash, status, body) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::integer[], "
                "%s::jsonb[]) ON CONFLICT DO NOTHING RETURNING client_id, key"
            ).format(self.schema),
            columns,
        )
        inserted = {(row["client_id"], row["key"]) for row in curs.fetchall()}
        taken |= {id(item) for pair, item in first.items() if pair not in inserted}
        return taken

    def _insert_refs(
        self, curs: psycopg.Cursor[Any], refs: list[tuple[str, str, str, UUID]]
    ) -> None:
        """Record external ids; refuse one that already names another aggregate.

        Two statements on purpose: under READ COMMITTED the check must take a fresh
        snapshot after the insert, or a row committed concurrently would go unseen."""
        claimed: dict[tuple[str, str, str], UUID] = {}
        for system, entity, external, aggregate_id in refs:
            other = claimed.setdefault((system, entity, external), aggregate_id)
            if other != aggregate_id:  # two changes of this group claim one external id
                raise AlreadyExists(
                    f"{system} id {external!r} is claimed by two {entity}s at once",
                    field="external_id",
                )
        columns = [list(c) for c in zip(*refs, strict=True)]
        curs.execute(
            sql.SQL(
                "INSERT INTO {}.concord_xref (system, entity, external_id, aggregate_id) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::uuid[]) "
                "ON CONFLICT DO NOTHING"
            ).format(self.schema),
            columns,
        )
        curs.execute(
            sql.SQL(
                "SELECT x.system, x.entity, x.external_id, x.aggregate_id "
                "FROM {}.concord_xref x JOIN unnest(%s::text[], %s::text[], %s::text[], "
                "%s::uuid[]) AS r(system, entity, external_id, aggregate_id) "
                "USING (system, entity, external_id) WHERE x.aggregate_id <> r.aggregate_id "
                "LIMIT 1"
            ).format(self.schema),
            columns,
        )
        clash = curs.fetchone()
        if clash is not None:
            raise AlreadyExists(
                f"{clash['system']} id {clash['external_id']!r} already belongs to "
                f"{clash['entity']} {clash['aggregate_id']}",
                field="external_id",
            )


_tracer = trace.get_tracer("concord.store")
_appended = metrics.get_meter("concord.store").create_counter(
    "concord.store.appended", unit="{event}", description="events committed, per store"
)
log = logging.getLogger("concord.store")


def _describe(span: trace.Span, changes: Sequence[Change], *items: _Pending) -> None:
    """Span attributes: how much is written, to which stores, for which transaction."""
    if not span.is_recording():
        return
    span.set_attribute("concord.events", sum(len(e) for i in items for e in i.stored.values()))
    span.set_attribute("concord.stores", sorted({n for i in items for n in i.stored}))
    correlations = sorted(
        {
            e.provenance.correlation_id
            for c in changes
            for a in c.aggregates
            for e in a.pending_events
            if e.provenance.correlation_id
        }
    )
    if correlations:
        span.set_attribute("concord.correlation_id", correlations[0])
        span.set_attribute("concord.correlation_ids", correlations[:20])


def _sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind an error (the library wraps psycopg's errors)."""
    seen: BaseException | None = error
    while seen is not None:
        state = getattr(seen, "sqlstate", None)
        if state:
            return str(state)
        seen = seen.__cause__
    return None


def _connection_lost(error: Exception) -> bool:
    """A broken connection: no SQLSTATE (client side) or class 08 / admin shutdown.
    Deadlocks, cancellations and lock timeouts are refusals with a known outcome."""
    if not isinstance(
        error,
        OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError,
    ):
        return False
    state = _sqlstate(error)
    return state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}


def _settle(item: _Pending, error: Exception | None = None) -> None:
    if item.future.done():
        return
    if error is None:
        item.future.set_result(None)
    else:
        item.future.set_exception(error)


def _wait(item: _Pending) -> None:
    try:
        item.future.result(timeout=COMMIT_WAIT_S)
    except TimeoutError:
        raise StoreUnavailable(
            f"no commit within {COMMIT_WAIT_S:g} s; the database may be unreachable"
        ) from None


def _translate(error: Exception) -> Exception:
    """Map storage errors to domain errors a client can act on."""
    if isinstance(error, DomainError | ReceiptExists | StoreError):
        return error
    text = str(error)
    if isinstance(error, IntegrityError | psycopg.errors.UniqueViolation) and "_pkey" in text:
        return ConcurrencyConflict(
            "the aggregate was changed by another request at the same time; re-read and retry",
            field="version",
        )
    state = _sqlstate(error)
    if state == "55P03":  # lock_not_available: POSTGRES_LOCK_TIMEOUT passed
        return StoreBusy("the event store is busy (lock timeout); retry shortly")
    if state == "40P01":  # deadlock_detected: one of the writers was chosen to give way
        return ConcurrencyConflict(
            "the write collided with another one (deadlock); retry", field="version"
        )
    if state in {"22P05", "22021"}:  # untranslatable character / bad encoding (e.g. NUL)
        return InvalidValue(
            "a text value holds a character PostgreSQL cannot store (such as NUL, \\u0000); "
            "remove it and retry"
        )
    if _connection_lost(error):
        return StoreUnavailable(f"the database could not be reached: {error}")
    return error
