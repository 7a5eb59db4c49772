"""One runner per projection: batched catch-up, live follow, failures stop it, rebuilds swap.

Exactly once: each batch reads up to ``batch`` events per upstream store, applies them and
moves that generation's positions (``concord_projection_positions``, rows locked ``FOR
UPDATE``) in ONE transaction. A crash or a killed connection anywhere rolls the whole batch
back; the next start resumes from the committed positions.

Live follow: the session connection LISTENs on each store's channel (every insert
transaction NOTIFYs its events table's name) and on ``concord_projections`` (rebuild
requests). Each wait ends after ``poll_interval_s`` at the latest, so a lost notification
costs at most that; a broken session raises and the runner reconnects (re-taking the lead).

One runner per projection across processes: the session holds an advisory lock
(``concord-projection:<schema>:<name>``); others wait as standbys.

A failing event (``apply`` raising anything but a connection error) stops the projection: the
events before it (in that batch) are committed, the failure (store, position, event id, the
error) is recorded with state ``failed``, and the runner waits for a rebuild request. A
restart tries the event again: it is never skipped.

Rebuild: into shadow tables from position 0, batch by batch beside the live follow (the
live view keeps serving and, for the same code version, keeps following); once the shadow
has caught up with every store, one transaction drops the live tables and renames the
shadow ones in their place, with their positions. A code version change requests a rebuild
on start; until the swap the old view stays as it is (the new code may not fit its tables).

Connections: one per runner (its session: lock, LISTEN and the batches).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from adapters.bootstrap import Connections
from adapters.postgres.personal_keys import KnownKeys
from adapters.postgres.stores import store_class
from adapters.projections import schema as ddl
from adapters.projections.bi_access import grant_bi_select
from adapters.projections.multi_row import (
    PlainInsert,
    copy_keeps_values,
    plain_insert,
    tables_named,
)
from adapters.projections.schema import CHANNEL, LIVE, SHADOW
from hub.application.personal import SEALED, envelope_paths, is_sealed, open_envelope
from hub.application.views import envelope, event_id
from hub.domain.catalog import AGGREGATES
from projections.definition import Envelope, Position, Projection

log = logging.getLogger("concord.projections")
#: How a sealed personal value starts in an event's stored JSON.
_SEALED_JSON = b'"' + SEALED.encode()

DEFAULT_BATCH = 500
#: A rebuild's batches are larger: nobody reads the shadow tables, so a longer transaction
#: holds no reader back, and each batch's fixed cost (positions locked and moved, a commit
#: with its WAL flush) is paid a quarter as often.
REBUILD_BATCH_FACTOR = 4
#: Entries a generation's memo may hold before it is emptied (see ``ViewCursor.memo``).
MEMO_LIMIT = 200_000
#: Fewest rows of a batch's held plain inserts into one table worth a ``COPY`` (which costs
#: the batch one more round trip): below it they go with the other writes in the pipeline.
COPY_MIN_ROWS = 200
#: How long a rebuild's batches run back to back before the live view's turn.
BACK_TO_BACK_S = 1.0
POLL_INTERVAL_S = 1.0
#: Errors that mean "the connection or server went away": reconnect, never a failed event.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


def entity_of_store() -> dict[str, str]:
    return {store_class(cls).name: cls.entity for cls in AGGREGATES}


def lock_key(schema: str, name: str) -> str:
    return f"concord-projection:{schema}:{name}"


class RunnerBusy(Exception):
    """Another process runs this projection."""


class ProjectionFailed(Exception):
    """An event could not be applied; the projection stopped at it (recorded)."""

    def __init__(self, at: Position, event_id: str, reason: str) -> None:
        super().__init__(f"event {event_id} ({at.store} position {at.position}): {reason}")
        self.at = at
        self.event_id = event_id
        self.reason = reason


@dataclass
class _Registry:
    version: int
    tables: list[str]
    state: str
    rebuild_requested: bool
    rebuild_version: int | None
    rebuild_done: int
    rebuild_total: int


class _Cursor:
    """The :class:`projections.definition.ViewCursor` over one generation's tables.

    Inside a pipeline (``pipeline`` set) writes are sent without waiting: a batch of
    hundreds of events costs a handful of round trips instead of one per statement. There,
    writes are also held and sent in runs: the writes with one statement text go as one
    ``executemany`` or, for plain single-row inserts, as multi-row inserts
    (:mod:`adapters.projections.multi_row`); psycopg's per-statement Python cost, most of a
    pipelined batch's, is then paid once per run. Order is kept where it can matter: runs
    of plain inserts into different tables are held side by side (such inserts read
    nothing), anything else first sends what is held, and :meth:`flush` sends it all
    before the batch moves its positions. Outside a pipeline (the replay that names a
    failing event) every statement runs on its own, at once.

    Plain inserts that ``COPY`` can take (``PlainInsert.copy``) are kept back past the
    flushes to the batch's end and sent as one ``COPY`` per statement once the pipeline
    is left (:meth:`copy_deferred`), still inside the batch's transaction. Why: ``COPY``
    takes rows at about twice the rate of multi-row inserts, server and client alike (a
    lineage rebuild writes two rows per event). Why that is safe: such an insert reads
    nothing and the tables have no triggers or foreign keys, so it may be sent after
    statements that name other tables; a statement naming a table with rows kept back (by
    its ``{table}`` placeholder; one naming none is taken to name all) first has them
    sent. A ``COPY`` that fails fails the batch, whose replay runs each insert on its own
    (``not_copied`` then keeps that statement out of ``COPY`` for the runner's life)."""

    def __init__(
        self,
        cursor: psycopg.Cursor[Any],
        compiled: Callable[[str], str],
        pipeline: psycopg.Pipeline | None,
        memo: dict[Any, Any] | None = None,
        reader: psycopg.Cursor[Any] | None = None,
        raw: psycopg.RawCursor[Any] | None = None,
        not_copied: set[str] | None = None,
        *,
        copy: bool = True,
        types: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.copy = copy
        """Whether copyable inserts may be kept back for ``COPY`` (not in a run of batches
        that stays in its pipeline)."""
        self.types: Mapping[str, Mapping[str, str]] = types or {}
        """``{table}`` placeholder -> its columns' SQL types: which values ``COPY`` may
        take (``copy_keeps_values``), and which placeholders name a table (one naming
        anything else, a view say, is taken to read them all)."""
        self.memo: dict[Any, Any] = {} if memo is None else memo
        self.not_copied: set[str] = set() if not_copied is None else not_copied
        """Statements whose ``COPY`` failed once: sent as inserts from then on."""
        self._deferred: dict[str, tuple[str, list[Sequence[Any]]]] = {}
        """Copyable plain insert -> (its table, its rows kept back to the batch's end)."""
        self.raw = raw
        """Where folded inserts go with ``$n`` placeholders (see ``PlainInsert.numbered``)."""
        self.cursor = cursor
        self.reader = cursor if reader is None else reader
        """Where reads go: not the writes' cursor. Why: in a pipeline psycopg hands each
        result to the cursor that sent it, and a cursor's fetch waits only while that
        cursor holds no result yet; a write's result arriving after a read was sent on the
        same cursor would be taken for the read's (a "didn't produce records" error, which
        costs the batch a slow replay, or another statement's row)."""
        self.compiled = compiled
        self.pipeline = pipeline
        self._runs: dict[str, list[Sequence[Any]]] = {}
        """Held statement -> its rows of parameters, in the order first held."""
        self._tables: set[str] = set()
        """The tables of the held runs while all are plain inserts (else empty)."""

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        if self.pipeline is None:
            self.cursor.execute(self.compiled(statement), params)
            return
        if self.copy and (self._deferred or self._runs) and self._copy_of(statement) is None:
            self._before(statement)
        run = self._runs.get(statement)
        if run is None:
            insert = plain_insert(statement)
            beside = insert is not None and (
                not self._runs or (bool(self._tables) and insert.table not in self._tables)
            )
            if not beside:
                self.flush()
            if insert is not None and (beside or not self._runs):
                self._tables.add(insert.table)
            run = self._runs[statement] = []
        run.append(params)

    def flush(self) -> None:
        """Send the held runs of writes (pipelined: without waiting for their results);
        copyable inserts are kept back for :meth:`copy_deferred`."""
        runs, self._runs, self._tables = self._runs, {}, set()
        for held, rows in list(runs.items()):
            insert = self._copy_of(held)
            if insert is None:
                continue
            if copy_keeps_values(insert, self.types.get(insert.table), rows):
                self._deferred.setdefault(held, (insert.table, []))[1].extend(rows)
                del runs[held]
            elif held in self._deferred:  # sent as inserts, after what was kept back of it
                runs[held] = self._deferred.pop(held)[1] + rows
        self._send_runs(runs)

    def _copy_of(self, statement: str) -> PlainInsert | None:
        """The statement as a plain insert ``COPY`` may take, in a pipelined batch."""
        if self.pipeline is None or not self.copy or statement in self.not_copied:
            return None
        insert = plain_insert(statement)
        return insert if insert is not None and insert.copy is not None else None

    def _before(self, statement: str) -> None:
        """Send the rows kept back (or held, to be kept back) for the tables ``statement``
        names, before it."""
        pending = {table for table, _ in self._deferred.values()} | {
            insert.table for held in self._runs if (insert := self._copy_of(held)) is not None
        }
        named = tables_named(statement)
        known = named is not None and all(name in self.types for name in named)
        tables = pending & named if named is not None and known else pending
        if not tables:
            return
        self.flush()
        runs = {h: rows for h, (table, rows) in self._deferred.items() if table in tables}
        for held in runs:
            del self._deferred[held]
        self._send_runs(runs)

    def settle_small(self) -> None:
        """In the pipeline, before it is left: send the kept-back runs too small for a
        ``COPY`` of their own with the other writes."""
        small = {h: rows for h, (_, rows) in self._deferred.items() if len(rows) < COPY_MIN_ROWS}
        for held in small:
            del self._deferred[held]
        self._send_runs(small)

    def copy_deferred(self) -> None:
        """Out of the pipeline, in the batch's transaction: each kept-back run as one
        ``COPY`` (a failing one names its statement in ``not_copied`` and re-raises)."""
        deferred, self._deferred = self._deferred, {}
        for held, (_, rows) in deferred.items():
            insert = plain_insert(self.compiled(held))
            assert insert is not None and insert.copy is not None
            try:
                with self.cursor.copy(insert.copy) as copy:
                    for row in rows:
                        copy.write_row(row)
            except Exception:
                self.not_copied.add(held)
                raise

    def _send_runs(self, runs: dict[str, list[Sequence[Any]]]) -> None:
        for held, rows in runs.items():
            statement = self.compiled(held)
            insert = plain_insert(statement)
            if len(rows) == 1:
                self.cursor.execute(statement, rows[0])
            elif insert is None or insert.per < 2:
                self.cursor.executemany(statement, rows)
            else:
                # The full chunks share one text: one executemany (psycopg parses the text
                # once and sends each chunk as it goes), then the rest on its own.
                chunks = [
                    [p for params in rows[i : i + insert.per] for p in params]
                    for i in range(0, len(rows), insert.per)
                ]
                rest = chunks.pop() if len(rows) % insert.per else None
                full = insert.per
                if len(chunks) == 1:
                    self._send(insert, full, [chunks[0]])
                elif chunks:
                    self._send(insert, full, chunks)
                if rest is not None:
                    self._send(insert, len(rows) % full, [rest])

    def _send(self, insert: PlainInsert, rows: int, chunks: list[list[Any]]) -> None:
        """Chunks of ``rows`` rows each, on the raw cursor when the text allows it."""
        numbered = insert.numbered(rows) if self.raw is not None else None
        target: Any = self.cursor if numbered is None else self.raw
        text = insert.folded(rows) if numbered is None else numbered
        if len(chunks) == 1:
            target.execute(text, chunks[0])
        else:
            target.executemany(text, chunks)

    def execute_one(self, statement: str, params: Sequence[Any], missing: str) -> None:
        if self.pipeline is None:
            if self.execute_counted(statement, params) != 1:
                raise LookupError(missing)
            return
        # The server checks the count: zero (or two) rows divide by zero, which fails the
        # pipelined batch; its slow replay then raises ``missing`` at this very event.
        self.execute(
            f"WITH touched AS ({statement} RETURNING 1) "
            "SELECT 1 / (count(*) = 1)::int FROM touched",
            params,
        )

    def execute_counted(self, statement: str, params: Sequence[Any] = ()) -> int:
        self._before(statement)
        self.flush()
        self.cursor.execute(self.compiled(statement), params)
        if self.pipeline is not None:
            self.pipeline.sync()
        return self.cursor.rowcount

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._before(statement)
        self.flush()
        self.reader.execute(self.compiled(statement), params)
        row: tuple[Any, ...] | None = self.reader.fetchone()
        return row


class ProjectionRunner:
    def __init__(
        self,
        projection: Projection,
        connections: Connections,
        schema: str,
        *,
        batch: int = DEFAULT_BATCH,
        poll_interval_s: float = POLL_INTERVAL_S,
        listen: bool = True,
        pipelined: bool = True,
    ) -> None:
        self.projection = projection
        self.connections = connections
        self.schema = schema
        self.batch = batch
        self.poll_interval_s = poll_interval_s
        self.listen = listen
        self.pipelined = pipelined
        self.on_progress: Callable[[int, int], None] | None = None
        """Called after each rebuild round (a batch, or a run of batches back to back) with
        (events done, events to do)."""
        self.on_commit: Callable[[], None] | None = None
        """Called (on the runner's thread) after each batch that committed events to the
        live view: whoever acts on the view's rows (the process manager's dispatcher) is
        woken at once instead of at its next poll."""
        self.applied = 0
        self.failed: ProjectionFailed | None = None
        self.work_pid: int | None = None
        self._entities = entity_of_store()
        self._session: psycopg.Connection[Any] | None = None
        self._work: psycopg.Connection[Any] | None = None
        self._state = ""
        self._compiled: dict[tuple[str, str], str] = {}
        self._stores_found: set[str] = set()
        self._types = {
            f"{{{t.name}}}": {c.name: c.type for c in t.columns} for t in projection.tables
        }
        self._not_copied: set[str] = set()
        """Inserts whose ``COPY`` failed once (see ``_Cursor``): not tried again."""
        self._memos: dict[str, dict[Any, Any]] = {LIVE: {}, SHADOW: {}}
        """Per generation: the projection's memo (``ViewCursor.memo``), true of the
        generation's committed rows; emptied whenever it may not be."""

    # -- lifecycle ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Apply events until ``stop`` is set, reconnecting after any connection loss."""
        delay = 0.2
        while not stop.is_set():
            try:
                self._connect()
                if not self._lead(stop):
                    return
                self._prepare()
                delay = 0.2
                self._follow(stop)
            except CONNECTION_ERRORS as why:
                log.warning(
                    "projection %s: %s; reconnecting in %.1f s", self.projection.name, why, delay
                )
                stop.wait(delay)
                delay = min(delay * 2, 2.0)
            finally:
                self._close()

    def catch_up(self) -> int:
        """Apply everything committed so far (and a requested rebuild, swap included), then
        return the number of events applied. Raises :class:`RunnerBusy` beside a running
        runner and :class:`ProjectionFailed` at a failing event."""
        self._connect()
        try:
            if not self._lead(None):
                raise RunnerBusy(
                    f"projection {self.projection.name} runs in another process (e.g. inside "
                    "`concord serve`)"
                )
            self._prepare()
            before = self.applied
            while self.step():
                pass
            return self.applied - before
        finally:
            self._close()

    def _follow(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.failed is not None:
                if not self._registry().rebuild_requested:
                    self._wait(stop)
                    continue
                self.failed = None
            try:
                progress = self.step()
            except ProjectionFailed as failed:
                self.failed = failed
                continue
            if progress == 0:
                self._mark("running")
                self._wait(stop)

    def _connect(self) -> None:
        # One session does it all: it holds the lock, LISTENs, and runs the batches (psycopg
        # keeps notifications that arrive during a batch for the next ``notifies()``).
        conn = self.connections.postgres(f"projection-{self.projection.name}")
        self._session = self._work = conn
        # Another runner may have led (and written) since this one last did.
        self._memos = {LIVE: {}, SHADOW: {}}
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        self.work_pid = int(row[0]) if row else None
        if self.listen:
            channels = [f"{store}_events" for store in self.projection.stores] + [CHANNEL]
            for channel in channels:
                self._session.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def _close(self) -> None:
        for conn in {id(c): c for c in (self._work, self._session) if c is not None}.values():
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # closing a broken connection may raise
                    log.debug("closing a projection connection failed", exc_info=True)
        self._work = self._session = None

    def _lead(self, stop: threading.Event | None) -> bool:
        """Take the projection's advisory lock on the session: wait until ``stop`` for it,
        or with ``stop=None`` try once."""
        assert self._session is not None
        key = lock_key(self.schema, self.projection.name)
        told = False
        while True:
            row = self._session.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (key,)
            ).fetchone()
            if row and row[0]:
                return True
            if stop is None:
                return False
            if not told:
                log.info("projection %s: another runner has it; standing by", key)
                told = True
            if stop.wait(2.0):
                return False

    def _wait(self, stop: threading.Event) -> None:
        """Until a NOTIFY, ``stop``, or the poll interval (whichever comes first)."""
        deadline = time.monotonic() + self.poll_interval_s
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not self.listen or self._session is None:
                stop.wait(min(left, 0.25))
                continue
            if any(True for _ in self._session.notifies(timeout=min(left, 0.25), stop_after=1)):
                return

    # -- setup --------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create what is missing; decide whether the live view must be (re)built."""
        assert self._work is not None
        p = self.projection
        ddl.create_tracking(self._work, self.schema)
        names = [t.name for t in p.tables]
        with self._work.transaction():
            row = self._work.execute(
                sql.SQL(
                    "SELECT version, tables, state, rebuild_version FROM {}.concord_projections "
                    "WHERE name = %s FOR UPDATE"
                ).format(sql.Identifier(self.schema)),
                (p.name,),
            ).fetchone()
            missing = (
                row is None
                or not row[1]
                or not all(ddl.exists(self._work, self.schema, t) for t in row[1])
            )
            if missing:
                # Nothing a reader could be using: build the live view in place.
                ddl.create_generation(self._work, self.schema, p, LIVE)
                grant_bi_select(self._work, self.schema, p.readable())
                self._work.execute(
                    sql.SQL(
                        "INSERT INTO {}.concord_projections (name, version, tables) "
                        "VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                        "version = EXCLUDED.version, tables = EXCLUDED.tables, "
                        "state = 'catching_up', reason = NULL, rebuild_requested = false, "
                        "rebuild_version = NULL, updated_at = now()"
                    ).format(sql.Identifier(self.schema)),
                    (p.name, p.version, names),
                )
                self._reset_positions(LIVE)
                log.info("projection %s: created its tables (version %d)", p.name, p.version)
                return
            assert row is not None
            version, _, state, rebuild_version = row
            if version != p.version and rebuild_version != p.version:
                log.info(
                    "projection %s: view built by version %d, code is version %d: rebuilding",
                    p.name,
                    version,
                    p.version,
                )
                self._set("rebuild_requested = true, rebuild_version = NULL")
            if state == "failed":
                log.warning("projection %s: retrying the event it failed at", p.name)
            self._set("state = 'catching_up'")
            self._state = "catching_up"
            self._work.execute(
                sql.SQL(
                    "INSERT INTO {}.concord_projection_positions (projection, generation, store) "
                    "SELECT %s, %s, unnest(%s::text[]) ON CONFLICT DO NOTHING"
                ).format(sql.Identifier(self.schema)),
                (p.name, LIVE, list(p.stores)),
            )

    def _reset_positions(self, generation: str) -> None:
        assert self._work is not None
        schema = sql.Identifier(self.schema)
        self._work.execute(
            sql.SQL(
                "DELETE FROM {}.concord_projection_positions WHERE projection = %s "
                "AND generation = %s"
            ).format(schema),
            (self.projection.name, generation),
        )
        self._work.execute(
            sql.SQL(
                "INSERT INTO {}.concord_projection_positions (projection, generation, store) "
                "SELECT %s, %s, unnest(%s::text[])"
            ).format(schema),
            (self.projection.name, generation, list(self.projection.stores)),
        )

    def _set(self, assignments: str, params: Sequence[Any] = ()) -> None:
        assert self._work is not None
        self._work.execute(
            sql.SQL(
                "UPDATE {}.concord_projections SET {}, updated_at = now() WHERE name = %s"
            ).format(sql.Identifier(self.schema), sql.SQL(assignments)),
            (*params, self.projection.name),
        )

    def _mark(self, state: str) -> None:
        if state != self._state:
            self._set("state = %s", (state,))
            self._state = state

    def _registry(self) -> _Registry:
        assert self._work is not None
        row = self._work.execute(
            sql.SQL(
                "SELECT version, tables, state, rebuild_requested, rebuild_version, "
                "rebuild_done, rebuild_total FROM {}.concord_projections WHERE name = %s"
            ).format(sql.Identifier(self.schema)),
            (self.projection.name,),
        ).fetchone()
        assert row is not None, "prepared before use"
        return _Registry(*row)

    # -- work ---------------------------------------------------------------------------

    def step(self) -> int:
        """One round: a rebuild batch (or its swap) if one is under way, and a batch of the
        live view unless it waits for a version change's rebuild. Returns the progress made
        (0: nothing to do)."""
        registry = self._registry()
        progress = 0
        if registry.rebuild_requested:
            self._start_rebuild()
            registry = self._registry()
        if registry.rebuild_version is not None:
            done = self._guarded(SHADOW)
            if done:
                progress += done
                if self.on_progress is not None:
                    self.on_progress(registry.rebuild_done + done, registry.rebuild_total)
            else:
                self._swap()
                progress += 1
                registry = self._registry()
        if registry.version == self.projection.version:
            live = self._guarded(LIVE)
            if live and self.on_commit is not None:
                self.on_commit()
            progress += live
        return progress

    def _guarded(self, generation: str) -> int:
        """A batch; on a failing event, commit what precedes it, record the failure, raise."""
        try:
            return self._batch(generation)
        except ProjectionFailed as failed:
            try:
                self._batch(generation, before=failed.at)
            except ProjectionFailed as earlier:
                failed = earlier
            self._record_failure(failed)
            raise failed from None

    def _record_failure(self, failed: ProjectionFailed) -> None:
        log.error("projection %s STOPPED at %s", self.projection.name, failed)
        self._set(
            "state = 'failed', reason = %s, failed_store = %s, failed_position = %s, "
            "failed_event_id = %s, failed_at = now(), rebuild_requested = false",
            (failed.reason, failed.at.store, failed.at.position, failed.event_id),
        )
        self._state = "failed"

    def _batch(self, generation: str, before: Position | None = None) -> int:
        """One batch, pipelined; if anything fails in it, rolled back and applied again one
        statement at a time, so a failure names the exact event (a pipelined statement's
        error only surfaces at the next synchronisation, events later)."""
        if before is None and not self._has_news(generation):
            return 0
        if self.pipelined:
            try:
                if generation == SHADOW and before is None:
                    return self._guard_memo(generation, lambda: self._back_to_back(generation))
                return self._apply_batch(generation, before, pipelined=True)
            except CONNECTION_ERRORS:
                raise
            except Exception as error:
                log.info(
                    "projection %s: a pipelined batch failed (%s); replaying it statement "
                    "by statement",
                    self.projection.name,
                    type(error).__name__,
                )
        return self._apply_batch(generation, before, pipelined=False)

    def _has_news(self, generation: str) -> bool:
        """Whether a store holds events past the generation's position, asked without a
        transaction. Why: a batch locks its positions (``FOR UPDATE`` takes a transaction
        id), so even an empty one commits with a WAL flush; a rebuild, which also moves the
        live view each round, would pay one per batch for nothing. Only ever skips work:
        an event committed after this look is the next round's."""
        assert self._work is not None
        stores = [s for s in self.projection.stores if self._store_exists(s)]
        if not stores:
            return False
        positions = sql.Identifier(self.schema, "concord_projection_positions")
        # max() of the log reads one end of its index; a comparison with a subquery's
        # position could be planned as a scan of the whole log.
        news = sql.SQL(" OR ").join(
            sql.SQL(
                "coalesce((SELECT position FROM {} WHERE projection = %s AND generation = %s "
                "AND store = %s), 0) < coalesce((SELECT max(notification_id) FROM {}), 0)"
            ).format(positions, sql.Identifier(self.schema, f"{store}_events"))
            for store in stores
        )
        params = [v for store in stores for v in (self.projection.name, generation, store)]
        row = self._work.execute(sql.SQL("SELECT ") + news, params).fetchone()
        return bool(row and row[0])

    def _apply_batch(self, generation: str, before: Position | None, pipelined: bool) -> int:
        return self._guard_memo(
            generation, lambda: self._apply_batch_once(generation, before, pipelined)
        )

    def _guard_memo(self, generation: str, work: Callable[[], int]) -> int:
        if len(self._memos[generation]) > MEMO_LIMIT:
            self._memos[generation] = {}
        try:
            return work()
        except BaseException:
            # Rolled back (or its commit's outcome unknown): the memo may hold its writes.
            self._memos[generation] = {}
            raise

    def _back_to_back(self, generation: str) -> int:
        """Batches one after the other in one pipeline, each batch's events read before the
        previous batch's writes are waited for; for a rebuild. Returns the events committed.

        Why: a batch is the client's work (decoding, ``apply``) and then the server's (the
        writes, the commit), one waiting for the other; with two cores each idled half the
        time. Here batch k+1's reads are sent behind batch k's writes, and its events are
        decoded and applied while the server is still writing batch k: its own writes are
        sent once those reads are in, so the server always holds one batch of work. Each
        batch is still one transaction with its positions (explicit ``BEGIN``/``COMMIT``,
        on the session's autocommit connection, ``synchronous_commit`` off: a batch lost
        with the server is lost with its
        positions, and done again). Anything failing leaves the pipeline, rolls back what
        is open and raises: the caller replays from the committed positions, statement by
        statement, as for a single batch. ``COPY`` is not used (it would end the pipeline).
        A run ends after :data:`BACK_TO_BACK_S` so the live view's batches still come."""
        assert self._work is not None
        conn = self._work
        stores = [s for s in self.projection.stores if self._store_exists(s)]
        schema = sql.Identifier(self.schema)
        limit = self.batch * REBUILD_BATCH_FACTOR
        positions = sql.SQL(
            "SELECT store, position FROM {}.concord_projection_positions "
            "WHERE projection = %s AND generation = %s"
        ).format(schema)
        after = {
            store: int(position)
            for store, position in conn.execute(
                positions, (self.projection.name, generation)
            ).fetchall()
        }
        total = 0
        deadline = time.monotonic() + BACK_TO_BACK_S
        try:
            with (
                conn.pipeline() as pipeline,
                conn.cursor() as cursor,
                psycopg.RawCursor(conn) as raw,
            ):
                reads = {
                    s: self._select(conn.cursor(), s, after.get(s, 0), None, limit) for s in stores
                }
                rows = {s: _fetched(read) for s, read in reads.items()}
                while any(rows.values()):
                    full = [s for s in stores if len(rows[s]) == limit]
                    moved = {s: rows[s][-1][0] for s in stores if rows[s]}
                    last = not full or time.monotonic() > deadline
                    # The next batch's reads go now: ahead of this batch's writes.
                    reads = (
                        {}
                        if last
                        else {
                            s: self._select(conn.cursor(), s, moved[s], None, limit) for s in full
                        }
                    )
                    cursor.execute("BEGIN")
                    cursor.execute("SET LOCAL synchronous_commit = off")
                    # Locked as any batch's (its result is not needed: the positions were
                    # read before the run, and the advisory lock keeps other runners out).
                    self._lock_positions(cursor, generation)
                    view = _Cursor(
                        cursor,
                        lambda s: self._statement(generation, s),
                        pipeline,
                        self._memos[generation],
                        conn.cursor(),
                        raw,
                        copy=False,
                        types=self._types,
                    )
                    done = 0
                    for store in stores:
                        events = self._decode(view.reader, store, rows[store])
                        for at, event in events:
                            self._apply_one(event, at, view)
                        if events:
                            self.projection.write_held(view)
                            done += len(events)
                    rows = {s: _fetched(read) for s, read in reads.items()}
                    rows.update({s: [] for s in stores if s not in rows})
                    view.flush()
                    view.reader.close()
                    for store, position in moved.items():
                        self._move_position(
                            cursor, generation, store, position, after.get(store, 0)
                        )
                    self._count_rebuilt(cursor, done)
                    cursor.execute("COMMIT")
                    total += done
                    after.update(moved)
            self.applied += total
            return total
        except BaseException:
            if (
                conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE
                and not conn.closed
            ):
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    log.debug("rolling back a failed run of batches failed", exc_info=True)
            raise

    def _apply_batch_once(self, generation: str, before: Position | None, pipelined: bool) -> int:
        assert self._work is not None
        conn = self._work
        with (
            conn.transaction(),
            conn.cursor() as cursor,
            conn.cursor() as reader,
            psycopg.RawCursor(conn) as raw,
        ):
            with conn.pipeline() if pipelined else nullcontext() as pipeline:
                view, total = self._apply_events(generation, before, cursor, reader, raw, pipeline)
                view.settle_small()
            # Out of the pipeline (``COPY`` cannot run in one), before the commit.
            view.copy_deferred()
        self.applied += total
        return total

    def _apply_events(
        self,
        generation: str,
        before: Position | None,
        cursor: psycopg.Cursor[Any],
        reader: psycopg.Cursor[Any],
        raw: psycopg.RawCursor[Any],
        pipeline: psycopg.Pipeline | None,
    ) -> tuple[_Cursor, int]:
        """A batch's events applied and its positions moved, in its transaction."""
        total = 0
        positions = dict(self._lock_positions(cursor, generation).fetchall())
        view = _Cursor(
            cursor,
            lambda s: self._statement(generation, s),
            pipeline,
            self._memos[generation],
            reader,
            raw,
            self._not_copied,
            types=self._types,
        )
        for store in self.projection.stores:
            if not self._store_exists(store):
                continue
            after = int(positions.get(store, 0))
            until = before.position if before is not None and before.store == store else None
            limit = self.batch * (REBUILD_BATCH_FACTOR if generation == SHADOW else 1)
            events = self._read(reader, store, after, until, limit)
            for at, event in events:
                self._apply_one(event, at, view)
            if not events:
                continue
            if pipeline is not None:
                # A failure here fails the batch, whose replay names the event.
                self.projection.write_held(view)
            view.flush()
            self._move_position(cursor, generation, store, events[-1][0].position)
            total += len(events)
        if generation == SHADOW and total:
            self._count_rebuilt(cursor, total)
        return view, total

    def _apply_one(self, event: Envelope, at: Position, view: _Cursor) -> None:
        """One event; a failure (but a lost connection) stops the line at it."""
        try:
            self.projection.apply(event, at, view)
            if view.pipeline is None:
                # The replay: what apply held is written at its own event.
                self.projection.write_held(view)
        except CONNECTION_ERRORS:
            raise
        except Exception as error:
            raise ProjectionFailed(
                at, str(event["event_id"]), f"{type(error).__name__}: {error}"
            ) from error

    def _lock_positions(self, cursor: psycopg.Cursor[Any], generation: str) -> psycopg.Cursor[Any]:
        """The generation's positions, locked for the batch (against a second runner)."""
        return cursor.execute(
            sql.SQL(
                "SELECT store, position FROM {}.concord_projection_positions "
                "WHERE projection = %s AND generation = %s FOR UPDATE"
            ).format(sql.Identifier(self.schema)),
            (self.projection.name, generation),
        )

    def _move_position(
        self,
        cursor: psycopg.Cursor[Any],
        generation: str,
        store: str,
        position: int,
        was: int | None = None,
    ) -> None:
        """Move a store's position; with ``was``, only from there, or the statement fails
        (pipelined, it fails the batch): a run of batches back to back read its positions
        once, so a second writer that moved them (without the advisory lock) must stop it
        as the ``FOR UPDATE`` read stops a single batch."""
        update = sql.SQL(
            "UPDATE {}.concord_projection_positions SET position = %s, updated_at = now() "
            "WHERE projection = %s AND generation = %s AND store = %s"
        ).format(sql.Identifier(self.schema))
        params: tuple[Any, ...] = (position, self.projection.name, generation, store)
        if was is not None:
            update = sql.SQL(
                "WITH moved AS ({} AND position = %s RETURNING 1) "
                "SELECT 1 / (count(*) = 1)::int FROM moved"
            ).format(update)
            params = (*params, was)
        cursor.execute(update, params)

    def _count_rebuilt(self, cursor: psycopg.Cursor[Any], done: int) -> None:
        cursor.execute(
            sql.SQL(
                "UPDATE {}.concord_projections SET rebuild_done = rebuild_done + %s WHERE name = %s"
            ).format(sql.Identifier(self.schema)),
            (done, self.projection.name),
        )

    def _statement(self, generation: str, statement: str) -> str:
        key = (generation, statement)
        if key not in self._compiled:
            assert self._work is not None
            names = {
                t.name: sql.Identifier(self.schema, ddl.physical(t, generation))
                for t in self.projection.tables
            }
            self._compiled[key] = sql.SQL(statement).format(**names).as_string(self._work)
        return self._compiled[key]

    def _store_exists(self, store: str) -> bool:
        """A store's table appears when a hub first starts; until then it has no events."""
        if store not in self._stores_found:
            assert self._work is not None
            if ddl.exists(self._work, self.schema, f"{store}_events"):
                self._stores_found.add(store)
        return store in self._stores_found

    def _read(
        self, cursor: psycopg.Cursor[Any], store: str, after: int, until: int | None, limit: int
    ) -> list[tuple[Position, Envelope]]:
        rows = self._select(cursor, store, after, until, limit).fetchall()
        return self._decode(cursor, store, rows)

    def _select(
        self, cursor: psycopg.Cursor[Any], store: str, after: int, until: int | None, limit: int
    ) -> psycopg.Cursor[Any]:
        """Send the read of a store's events past ``after`` (in a pipeline: not waited for)."""
        bound = sql.SQL("AND notification_id < %s " if until is not None else "")
        return cursor.execute(
            sql.SQL(
                "SELECT notification_id, originator_id::text, originator_version, topic, state "
                "FROM {} WHERE notification_id > %s {}ORDER BY notification_id LIMIT %s"
            ).format(sql.Identifier(self.schema, f"{store}_events"), bound),
            (after, until, limit) if until is not None else (after, limit),
        )

    def _decode(
        self, cursor: psycopg.Cursor[Any], store: str, rows: list[tuple[Any, ...]]
    ) -> list[tuple[Position, Envelope]]:
        entity = self._entities[store]
        events: list[tuple[Position, Envelope]] = []
        sealed: list[Envelope] = []
        for row in rows:
            at = Position(store, row[0])
            try:
                event = envelope(entity, row[3], row[1], row[2], orjson.loads(row[4]), owned=True)
            except Exception as error:  # an event this code cannot read stops the line too
                raise ProjectionFailed(
                    at, event_id(row[1], row[2]), f"unreadable: {type(error).__name__}: {error}"
                ) from error
            events.append((at, event))
            if _SEALED_JSON in row[4]:  # only these can hold a sealed value: cheap to ask
                sealed.append(event)
        self._open_personal(cursor, sealed)
        return events

    def _open_personal(self, cursor: psycopg.Cursor[Any], events: list[Envelope]) -> None:
        """Open sealed personal fields with their subjects' keys, read in this transaction
        (a destroyed key reads as ``[erased]``)."""
        sealed = [e for e in events if envelope_paths(e) and _has_sealed(e["data"])]
        if not sealed:
            return
        subjects = list({UUID(str(e["aggregate_id"])) for e in sealed})
        rows = cursor.execute(
            sql.SQL(
                "SELECT subject_id, key FROM {}.concord_personal_keys WHERE subject_id = ANY(%s)"
            ).format(sql.Identifier(self.schema)),
            (subjects,),
        ).fetchall()
        keys: dict[UUID, bytes | None] = {s: None for s in subjects}
        keys.update({row[0]: None if row[1] is None else bytes(row[1]) for row in rows})
        cipher = KnownKeys(keys)
        for event in sealed:
            open_envelope(cipher, event)

    def _start_rebuild(self) -> None:
        assert self._work is not None
        p = self.projection
        with self._work.transaction():
            self._memos[SHADOW] = {}
            ddl.create_generation(self._work, self.schema, p, SHADOW)
            self._reset_positions(SHADOW)
            total = 0
            for store in p.stores:
                if self._store_exists(store):
                    row = self._work.execute(
                        sql.SQL("SELECT count(*) FROM {}").format(
                            sql.Identifier(self.schema, f"{store}_events")
                        )
                    ).fetchone()
                    total += int(row[0]) if row else 0
            self._set(
                "rebuild_requested = false, rebuild_version = %s, rebuild_done = 0, "
                "rebuild_total = %s, rebuild_started_at = now(), reason = NULL, "
                "state = CASE WHEN state = 'failed' THEN 'catching_up' ELSE state END",
                (p.version, total),
            )
        self.failed = None
        log.info("projection %s: rebuilding into shadow tables (%d events)", p.name, total)

    def _swap(self) -> None:
        assert self._work is not None
        p = self.projection
        schema = sql.Identifier(self.schema)
        with self._work.transaction():
            # Deferred indexes first, in their own transaction: the swap's locks on the live
            # tables stay as short as a rename.
            ddl.create_indexes(self._work, self.schema, p, SHADOW)
        with self._work.transaction():
            registry = self._registry()
            ddl.swap(self._work, self.schema, p, registry.tables)
            # The renamed shadow tables carry no grants: the BI role gets them back in the
            # same transaction, so it never sees the view vanish.
            grant_bi_select(self._work, self.schema, p.readable())
            self._work.execute(
                sql.SQL(
                    "DELETE FROM {}.concord_projection_positions WHERE projection = %s "
                    "AND generation = %s"
                ).format(schema),
                (p.name, LIVE),
            )
            self._work.execute(
                sql.SQL(
                    "UPDATE {}.concord_projection_positions SET generation = %s "
                    "WHERE projection = %s AND generation = %s"
                ).format(schema),
                (LIVE, p.name, SHADOW),
            )
            self._set(
                "version = rebuild_version, tables = %s, rebuild_version = NULL, "
                "rebuilt_at = now()",
                ([t.name for t in p.tables],),
            )
        self._memos = {LIVE: self._memos[SHADOW], SHADOW: {}}
        log.info("projection %s: rebuilt; the new tables are live", p.name)


def _fetched(cursor: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
    """A sent read's rows, its cursor closed."""
    with cursor:
        return cursor.fetchall()


def _has_sealed(data: Any) -> bool:
    if isinstance(data, dict):
        return any(_has_sealed(v) for v in data.values())
    return is_sealed(data)
