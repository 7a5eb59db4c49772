"""The runner's two bulk paths build exactly the view one statement at a time builds:
plain inserts kept back to a batch's end and sent as ``COPY``, and a rebuild's batches run
back to back in one pipeline (each batch's events read before the previous batch's writes
are waited for). Also when a statement touches a table with rows kept back, when a
``COPY`` fails on a duplicate, when an event cannot be applied mid-run and when the
connection is killed mid-run."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar

import psycopg
import pytest

from adapters.bootstrap import Runtime
from adapters.projections import runner as runner_module
from adapters.projections.runner import ProjectionFailed
from projections.definition import Column, Envelope, Position, Projection, Table, ViewCursor
from tests.integration.commands import new_customer, run
from tests.integration.projection_support import connect, rebuild, rows, runner, status

_INSERT = "INSERT INTO {bulk_events} (event_id, customer_id, type, note) VALUES (%s, %s, %s, %s)"


class Logged(Projection):
    """One row per customer event (a plain insert ``COPY`` may take); a number assigned
    later is written onto the customer's registration row (an update of a row that may
    still be kept back in the same batch)."""

    name: ClassVar[str] = "bulk_events"
    version: ClassVar[int] = 1
    stores: ClassVar[tuple[str, ...]] = ("customers",)
    tables: ClassVar[tuple[Table, ...]] = (
        Table(
            "bulk_events",
            "Customer events (a test projection).",
            (
                Column("event_id", "uuid", "The event.", not_null=True),
                Column("customer_id", "uuid", "The customer.", not_null=True),
                Column("type", "text", "Event type.", not_null=True),
                Column("note", "text", "The number, on the registration row."),
            ),
            ("event_id",),
        ),
    )

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        customer = event["aggregate_id"]
        cursor.execute(_INSERT, (event["event_id"], customer, event["type"], None))
        if event["type"] == "CustomerNumberAssigned":
            cursor.execute(
                "UPDATE {bulk_events} SET note = %s WHERE customer_id = %s "
                "AND type = 'CustomerRegistered'",
                (event["data"]["customer_number"], customer),
            )


class Duplicating(Logged):
    """Writes the registration of ``Twice Ltd`` twice: the second insert is refused."""

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        super().apply(event, at, cursor)
        if event["data"].get("legal_name") == "Twice Ltd":
            cursor.execute(_INSERT, (event["event_id"], event["aggregate_id"], "again", None))


def _history(runtime: Runtime, n: int, prefix: str = "B") -> int:
    """``n`` customers, then every other one numbered: the events stored."""
    made = [new_customer(runtime, f"{prefix} {i:03d} Ltd") for i in range(n)]
    for i, customer in enumerate(made[::2]):
        run(
            runtime,
            "customer",
            "assign_number",
            {"customer_number": f"{prefix}-{i}"},
            aggregate_id=customer,
        )
    return n + (n + 1) // 2


@pytest.fixture
def copied(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows sent by ``COPY`` per batch (any kept-back run of 3 rows or more is copied)."""
    monkeypatch.setattr(runner_module, "COPY_MIN_ROWS", 3)
    sizes: list[int] = []
    real = runner_module._Cursor.copy_deferred

    def counting(view: Any) -> None:
        sizes.extend(len(rows) for _, rows in view._deferred.values())
        real(view)

    monkeypatch.setattr(runner_module._Cursor, "copy_deferred", counting)
    return sizes


def _table(runtime: Runtime) -> list[tuple[Any, ...]]:
    return rows(runtime, "bulk_events", "event_id")


def test_copied_inserts_and_an_update_of_a_kept_back_row_build_the_same_view(
    runtime: Runtime, copied: list[int]
) -> None:
    stored = _history(runtime, 24)
    runner(runtime, Logged(), batch=20).catch_up()
    built = _table(runtime)
    assert len(built) == stored and sum(copied) > 0
    numbered = [r for r in built if r[2] == "CustomerRegistered" and r[3] is not None]
    assert len(numbered) == 12  # each update found its row, kept back or not
    rebuild(runtime, Logged())
    runner(runtime, Logged(), batch=20, pipelined=False).catch_up()
    assert _table(runtime) == built


def test_a_copy_refused_on_a_duplicate_is_replayed_and_names_its_event(
    runtime: Runtime, copied: list[int]
) -> None:
    _history(runtime, 6)  # positions 1-9
    new_customer(runtime, "Twice Ltd")  # position 10
    new_customer(runtime, "After 1 Ltd")
    new_customer(runtime, "After 2 Ltd")
    worker = runner(runtime, Duplicating(), batch=50)
    with pytest.raises(ProjectionFailed) as failed:
        worker.catch_up()
    assert failed.value.at.position == 10, failed.value
    assert "UniqueViolation" in failed.value.reason
    assert worker._not_copied == {_INSERT}  # inserts from now on, not COPY
    assert len(_table(runtime)) == 9  # the events before it, committed by the replay


def test_a_rebuild_run_back_to_back_builds_the_same_view_as_one_statement_at_a_time(
    runtime: Runtime,
) -> None:
    stored = _history(runtime, 30)
    runner(runtime, Logged(), batch=5, pipelined=False).catch_up()
    expected = _table(runtime)
    assert len(expected) == stored
    rebuild(runtime, Logged())
    worker = runner(runtime, Logged(), batch=2)  # rebuild batches of 8 events
    progress: list[int] = []
    worker.on_progress = lambda done, total: progress.append(done)
    worker.catch_up()
    assert _table(runtime) == expected
    assert progress[-1] == stored and status(runtime, Logged()).rebuilt_at is not None


class FailsLate(Logged):
    """Cannot apply the registration of ``Late Ltd``."""

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["data"].get("legal_name") == "Late Ltd":
            raise ValueError("cannot handle this one")
        super().apply(event, at, cursor)


def test_a_failing_event_in_a_back_to_back_rebuild_is_named_and_what_precedes_it_is_kept(
    runtime: Runtime,
) -> None:
    _history(runtime, 14)  # positions 1-21
    runner(runtime, Logged()).catch_up()
    new_customer(runtime, "Late Ltd")  # position 22
    _history(runtime, 2, "After")
    rebuild(runtime, FailsLate())
    worker = runner(runtime, FailsLate(), batch=2)
    with pytest.raises(ProjectionFailed) as failed:
        worker.catch_up()
    assert failed.value.at.position == 22 and "cannot handle" in failed.value.reason
    with connect(runtime) as conn:
        done = conn.execute(
            f'SELECT position FROM "{runtime.settings.schema_name}".concord_projection_positions'
            " WHERE projection = 'bulk_events' AND generation = 'shadow'"
        ).fetchone()
        assert done == (21,)  # every batch before the event committed, none after it


def test_a_connection_killed_mid_run_resumes_identical_to_one_statement_at_a_time(
    runtime: Runtime,
) -> None:
    stored = _history(runtime, 30)
    runner(runtime, Logged(), pipelined=False).catch_up()
    expected = _table(runtime)
    killed = threading.Event()
    holder: dict[str, Any] = {}

    class KillsItsConnection(Logged):
        calls = 0

        def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
            super().apply(event, at, cursor)
            KillsItsConnection.calls += 1
            if KillsItsConnection.calls == 29 and not killed.is_set():
                killed.set()
                with connect(runtime) as conn:  # like a server restart under the runner
                    conn.execute("SELECT pg_terminate_backend(%s)", (holder["w"].work_pid,))

    rebuild(runtime, Logged())
    worker = runner(runtime, KillsItsConnection(), batch=2)
    holder["w"] = worker
    with pytest.raises((psycopg.OperationalError, psycopg.InterfaceError)):
        worker.catch_up()
    assert killed.is_set()
    runner(runtime, Logged(), batch=2).catch_up()  # a restart: from the committed positions
    assert _table(runtime) == expected and len(expected) == stored


class Typed(Projection):
    """Values whose ``COPY`` text a column could read otherwise than an ``INSERT`` stores
    them (a bool into text, a float into numeric, an aware time into a timestamp and a
    date), beside values ``COPY`` keeps exactly (an aware time into timestamptz)."""

    name: ClassVar[str] = "typed_copy"
    version: ClassVar[int] = 1
    stores: ClassVar[tuple[str, ...]] = ("customers",)
    tables: ClassVar[tuple[Table, ...]] = (
        Table(
            "typed_copy",
            "Typed values (a test projection).",
            (
                Column("event_id", "uuid", "The event.", not_null=True),
                Column("flag", "text", "A bool."),
                Column("amount", "numeric", "A float."),
                Column("at", "timestamp", "An aware time."),
                Column("day", "date", "An aware time."),
                Column("moment", "timestamptz", "An aware time."),
            ),
            ("event_id",),
        ),
    )

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        when = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=5)))
        cursor.execute(
            "INSERT INTO {typed_copy} (event_id, flag, amount, at, day, moment) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (event["event_id"], True, 0.1 + 0.2, when, when, when),
        )


class Moments(Projection):
    """Only values ``COPY`` keeps exactly: its rows go by ``COPY``."""

    name: ClassVar[str] = "moments_copy"
    version: ClassVar[int] = 1
    stores: ClassVar[tuple[str, ...]] = ("customers",)
    tables: ClassVar[tuple[Table, ...]] = (
        Table(
            "moments_copy",
            "Typed values (a test projection).",
            (
                Column("event_id", "uuid", "The event.", not_null=True),
                Column("version", "bigint", "The version."),
                Column("moment", "timestamptz", "An aware time."),
                Column("amount", "numeric", "A Decimal."),
            ),
            ("event_id",),
        ),
    )

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        cursor.execute(
            "INSERT INTO {moments_copy} (event_id, version, moment, amount) "
            "VALUES (%s, %s, %s, %s)",
            (
                event["event_id"],
                event["version"],
                datetime.fromisoformat(event["recorded_at"]),
                Decimal("12.50"),
            ),
        )


@pytest.mark.parametrize("projection", [Typed(), Moments()], ids=["typed", "moments"])
def test_copy_stores_what_an_insert_stores_or_is_not_used(
    runtime: Runtime, copied: list[int], projection: Projection
) -> None:
    _history(runtime, 6)
    table = projection.tables[0].name
    runner(runtime, projection, batch=50).catch_up()
    built = rows(runtime, table, "event_id")
    assert len(built) == 9
    assert sum(copied) == (0 if isinstance(projection, Typed) else 9)
    rebuild(runtime, projection)
    runner(runtime, projection, pipelined=False).catch_up()
    assert rows(runtime, table, "event_id") == built


def test_a_run_back_to_back_moves_a_position_only_from_where_it_read_it(
    runtime: Runtime,
) -> None:
    """A second writer without the advisory lock that moved a position stops the run (the
    run read its positions once, not ``FOR UPDATE`` per batch)."""
    stored = _history(runtime, 3)
    worker = runner(runtime, Logged())
    worker.catch_up()
    worker._connect()
    try:
        assert worker._work is not None
        with worker._work.transaction(), worker._work.cursor() as cursor:
            worker._move_position(cursor, "live", "customers", stored, was=stored)
        with (
            pytest.raises(psycopg.errors.DivisionByZero),
            worker._work.transaction(),
            worker._work.cursor() as cursor,
        ):
            worker._move_position(cursor, "live", "customers", stored + 5, was=stored - 1)
    finally:
        worker._close()
    assert status(runtime, Logged()).stores[0].position == stored
