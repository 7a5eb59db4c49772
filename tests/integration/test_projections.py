"""The projection runner on real PostgreSQL, through the ERP customers view: batched
catch-up, live follow without notifications, kills and failures mid-batch, rebuilds while
writes go on, version changes, and one runner per projection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from adapters.bootstrap import Runtime
from adapters.projections.runner import ProjectionFailed, RunnerBusy
from hub.domain.customer import ERASED
from projections.definition import Column, Envelope, Position, View, ViewCursor
from projections.erp.customers import ErpCustomers
from tests.integration.commands import new_customer, run
from tests.integration.projection_support import (
    connect,
    rebuild,
    rows,
    runner,
    running,
    status,
    wait_for,
)


def customers(runtime: Runtime, n: int, prefix: str = "Customer") -> list[UUID]:
    made = []
    for i in range(n):
        customer = new_customer(runtime, f"{prefix} {i:03d} Ltd")
        run(
            runtime,
            "customer",
            "assign_number",
            {"customer_number": f"{prefix}-{i:05d}"},
            aggregate_id=customer,
        )
        made.append(customer)
    return made


def by_id(table: list[tuple[Any, ...]]) -> dict[UUID, dict[str, Any]]:
    names = [c.name for c in ErpCustomers.tables[0].columns]
    return {row[0]: dict(zip(names, row, strict=True)) for row in table}


def test_catch_up_builds_the_expected_rows_in_batches(runtime: Runtime) -> None:
    parent = run(
        runtime,
        "customer",
        "register",
        {"legal_name": "Acme Holding AG", "tax_id": "DE 123.456.789", "currency": "EUR"},
    ).body["id"]
    child = run(
        runtime,
        "customer",
        "register",
        {"legal_name": "Acme Retail GmbH", "parent_customer_id": parent, "currency": "EUR"},
    ).body["id"]
    dupe = new_customer(runtime, "Acme Retail (dup)")
    person = run(
        runtime, "customer", "register", {"legal_name": "Ada Lovelace", "tax_id": "GB1"}
    ).body["id"]
    run(runtime, "customer", "assign_number", {"customer_number": "C-1001"}, aggregate_id=parent)
    run(runtime, "customer", "set_payment_terms", {"payment_terms": "NET30"}, aggregate_id=parent)
    run(runtime, "customer", "link", {"system": "erp", "external_id": "ns-77"}, aggregate_id=parent)
    run(runtime, "customer", "link", {"system": "crm", "external_id": "001A"}, aggregate_id=child)
    run(runtime, "customer", "change_status", {"status": "on_hold"}, aggregate_id=child)
    run(
        runtime,
        "customer",
        "change_details",
        {"legal_name": "Acme Holding SE"},
        aggregate_id=parent,
    )
    run(runtime, "customer", "merge", {"target_customer_id": child}, aggregate_id=dupe)
    run(runtime, "customer", "erase", {}, aggregate_id=person)

    worker = runner(runtime, batch=3)
    assert worker.catch_up() >= 12
    view = by_id(rows(runtime))

    assert set(view) == {UUID(parent), UUID(child), dupe, UUID(person)}
    top = view[UUID(parent)]
    assert (top["legal_name"], top["erp_customer_number"], top["payment_terms"]) == (
        "Acme Holding SE",
        "C-1001",
        "NET30",
    )
    assert (top["erp_record_id"], top["tax_id"], top["status"], top["erased"]) == (
        "ns-77",
        "[withheld]",
        "active",
        False,
    )
    assert top["currency"] == "EUR" and top["version"] == 5
    low = view[UUID(child)]
    assert (low["parent_customer_id"], low["status"], low["erp_record_id"], low["tax_id"]) == (
        UUID(parent),
        "on_hold",
        None,
        None,
    )
    assert (view[dupe]["status"], view[dupe]["merged_into"]) == ("merged", UUID(child))
    erased = view[UUID(person)]
    assert (erased["legal_name"], erased["tax_id"], erased["erased"]) == (ERASED, ERASED, True)
    # Positions are the customers store's, and status has nothing left to do.
    state = status(runtime)
    assert state.stores[0].lag_events == 0
    assert (
        state.stores[0].position
        == state.stores[0].head
        == max(r["position"] for r in view.values())
    )
    assert state.version == ErpCustomers.version and state.failure is None


def test_every_table_and_column_has_a_comment(runtime: Runtime) -> None:
    runner(runtime).catch_up()
    with connect(runtime) as conn:
        found = conn.execute(
            "SELECT a.attname, col_description(c.oid, a.attnum), obj_description(c.oid) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "WHERE n.nspname = %s AND c.relname = 'erp_customers'",
            (runtime.settings.schema_name,),
        ).fetchall()
    assert {name for name, _, _ in found} == {c.name for c in ErpCustomers.tables[0].columns}
    assert all(column and table for _, column, table in found)


def test_status_reports_lag_in_events_and_seconds_before_a_runner_starts(
    runtime: Runtime,
) -> None:
    customers(runtime, 3)
    before = status(runtime)
    assert (before.state, before.runner, before.version) == ("stopped", False, None)
    assert before.stores[0].lag_events == 6 and before.stores[0].lag_seconds > 0
    runner(runtime).catch_up()
    after = status(runtime)
    assert after.stores[0].lag_events == 0 and after.stores[0].lag_seconds == 0


def test_live_follow_picks_up_commits_by_polling_without_notifications(runtime: Runtime) -> None:
    customers(runtime, 2)
    worker = runner(runtime, listen=False, poll_interval_s=0.2)
    with running(worker):
        wait_for(lambda: len(rows(runtime)) == 2, what="catch-up")
        wait_for(lambda: status(runtime).state == "running", what="running")
        later = new_customer(runtime, "Late Arrival Ltd")
        wait_for(lambda: later in by_id(rows(runtime)), what="the new customer")
        run(
            runtime, "customer", "set_payment_terms", {"payment_terms": "NET60"}, aggregate_id=later
        )
        wait_for(lambda: by_id(rows(runtime))[later]["payment_terms"] == "NET60", what="terms")


def test_a_killed_connection_mid_batch_resumes_identical_to_a_full_rebuild(
    runtime: Runtime,
) -> None:
    customers(runtime, 40)
    killed = threading.Event()
    holder: dict[str, Any] = {}

    class KillsItsConnection(ErpCustomers):
        calls = 0

        def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
            super().apply(event, at, cursor)
            KillsItsConnection.calls += 1
            if KillsItsConnection.calls == 37 and not killed.is_set():
                killed.set()
                with connect(runtime) as conn:  # like a server restart under the runner
                    conn.execute("SELECT pg_terminate_backend(%s)", (holder["w"].work_pid,))

    worker = runner(runtime, KillsItsConnection(), batch=25)
    holder["w"] = worker
    with running(worker):
        wait_for(lambda: status(runtime).stores[0].lag_events == 0, what="resumed catch-up")
    assert killed.is_set()
    resumed = rows(runtime)
    assert len(resumed) == 40
    rebuild(runtime)
    runner(runtime).catch_up()
    assert rows(runtime) == resumed
    assert status(runtime).rebuilt_at is not None


class Poisoned(ErpCustomers):
    """Cannot apply the registration of a customer named ``Poison Ltd``."""

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["data"].get("legal_name") == "Poison Ltd":
            raise ValueError("cannot handle this one")
        super().apply(event, at, cursor)


def test_a_failing_event_stops_the_projection_with_the_error_never_skipped(
    runtime: Runtime,
) -> None:
    customers(runtime, 3)
    poison = new_customer(runtime, "Poison Ltd")
    customers(runtime, 2, prefix="After")
    with pytest.raises(ProjectionFailed) as failed:
        runner(runtime, Poisoned(), batch=100).catch_up()
    assert failed.value.at.store == "customers" and failed.value.at.position == 7
    report = status(runtime)
    assert report.state == "failed" and report.failure is not None
    assert "ValueError: cannot handle this one" in report.failure.reason
    assert report.failure.position == 7 and report.failure.store == "customers"
    with connect(runtime) as conn:
        (event_id,) = conn.execute(
            sql.SQL("SELECT originator_id FROM {} WHERE notification_id = 7").format(
                sql.Identifier(runtime.settings.schema_name, "customers_events")
            )
        ).fetchone() or (None,)
    assert event_id == poison
    # What precedes the event is committed; nothing after it is applied.
    assert len(rows(runtime)) == 3 and report.stores[0].position == 6
    # A restart tries it again (and fails again): never skipped.
    with pytest.raises(ProjectionFailed):
        runner(runtime, Poisoned()).catch_up()
    assert status(runtime).stores[0].position == 6
    # Fixed code carries on from there, and matches a full rebuild.
    runner(runtime).catch_up()
    fixed = rows(runtime)
    assert len(fixed) == 6 and status(runtime).state != "failed"
    rebuild(runtime)
    runner(runtime).catch_up()
    assert rows(runtime) == fixed


class Doubled(ErpCustomers):
    """Inserts the row of ``Poison Ltd`` twice: the database refuses the second insert, but
    inside a pipeline the error only comes back with a later statement's result."""

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        super().apply(event, at, cursor)
        if event["data"].get("legal_name") == "Poison Ltd":
            super().apply(event, at, cursor)


class Orphaned(ErpCustomers):
    """Never inserts ``Poison Ltd``, so its next event updates a row that is not there."""

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["data"].get("legal_name") != "Poison Ltd":
            super().apply(event, at, cursor)


def _numbered(runtime: Runtime) -> None:
    customers(runtime, 3)  # positions 1-6: registered, numbered
    new_customer(runtime, "Poison Ltd")  # position 7
    customers(runtime, 2, prefix="After")


def _registered_only(runtime: Runtime) -> None:
    # Registrations only: the batch's inserts are one run, sent as multi-row statements.
    for i in range(6):
        new_customer(runtime, f"Before {i:02d} Ltd")  # positions 1-6
    new_customer(runtime, "Poison Ltd")  # position 7
    for i in range(12):
        new_customer(runtime, f"After {i:02d} Ltd")


@pytest.mark.parametrize("history", [_numbered, _registered_only])
def test_a_database_error_in_a_pipelined_batch_is_reported_at_its_own_event(
    runtime: Runtime, history: Callable[[Runtime], None]
) -> None:
    history(runtime)
    with pytest.raises(ProjectionFailed) as failed:
        runner(runtime, Doubled(), batch=100).catch_up()
    assert failed.value.at.position == 7
    report = status(runtime)
    assert report.failure is not None and "UniqueViolation" in report.failure.reason
    committed = rows(runtime)
    assert report.stores[0].position == 6 and len(committed) == (3 if history is _numbered else 6)


def test_folded_runs_of_writes_build_the_same_view_as_one_statement_at_a_time(
    runtime: Runtime,
) -> None:
    made = [new_customer(runtime, f"Run {i:02d} Ltd") for i in range(30)]
    for i, customer in enumerate(made[::3]):
        run(
            runtime,
            "customer",
            "assign_number",
            {"customer_number": f"R-{i}"},
            aggregate_id=customer,
        )
    made += [new_customer(runtime, f"Tail {i:02d} Ltd") for i in range(7)]
    runner(runtime, batch=16).catch_up()
    folded = rows(runtime)
    assert len(folded) == 37
    rebuild(runtime)
    runner(runtime, batch=16, pipelined=False).catch_up()
    assert rows(runtime) == folded


def test_an_update_of_a_missing_row_is_caught_by_the_server_inside_the_pipeline(
    runtime: Runtime,
) -> None:
    customers(runtime, 2)  # positions 1-4
    poison = new_customer(runtime, "Poison Ltd")  # position 5
    run(runtime, "customer", "assign_number", {"customer_number": "P-1"}, aggregate_id=poison)
    customers(runtime, 1, prefix="After")
    with pytest.raises(ProjectionFailed) as failed:
        runner(runtime, Orphaned(), batch=100).catch_up()
    assert failed.value.at.position == 6  # the numbering, not the registration
    report = status(runtime)
    assert report.failure is not None and "LookupError" in report.failure.reason
    assert "erp_customers has no row" in report.failure.reason
    assert report.stores[0].position == 5 and len(rows(runtime)) == 2


def test_a_failed_runner_waits_and_a_rebuild_request_restarts_it(runtime: Runtime) -> None:
    new_customer(runtime, "Poison Ltd")
    worker = runner(runtime, Poisoned())
    with running(worker):
        wait_for(lambda: status(runtime).state == "failed", what="failure")
        assert worker.failed is not None and worker.failed.at.position == 1
        rebuild(runtime)  # the same poisoned code fails again, at the same event
        wait_for(
            lambda: status(runtime).failure is not None and worker.failed is not None,
            what="failure again",
        )
    assert rows(runtime) == []


def test_rebuild_while_writes_go_on_readers_never_see_an_empty_or_half_view(
    runtime: Runtime,
) -> None:
    customers(runtime, 60)
    runner(runtime).catch_up()
    smallest = [60]
    done = threading.Event()

    def read() -> None:
        with connect(runtime) as conn:
            while not done.is_set():
                (n,) = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(
                        sql.Identifier(runtime.settings.schema_name, "erp_customers")
                    )
                ).fetchone() or (0,)
                smallest[0] = min(smallest[0], n)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    worker = runner(runtime, batch=10)
    progress: list[tuple[int, int]] = []
    worker.on_progress = lambda done_, total: progress.append((done_, total))
    try:
        with running(worker):
            rebuild(runtime)
            customers(runtime, 20, prefix="During")
            wait_for(lambda: status(runtime).rebuilt_at is not None, what="the swap")
            wait_for(lambda: status(runtime).stores[0].lag_events == 0, what="catch-up")
    finally:
        done.set()
        reader.join(10)
    assert smallest[0] >= 60
    assert progress and progress[-1][0] >= 120 and progress[0][1] >= 120
    live = rows(runtime)
    assert len(live) == 80
    rebuild(runtime)
    runner(runtime).catch_up()
    assert rows(runtime) == live


class Shouting(ErpCustomers):
    version = ErpCustomers.version + 1

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["type"] == "CustomerRegistered":
            event["data"]["legal_name"] = event["data"]["legal_name"].upper()
        super().apply(event, at, cursor)


def test_a_version_change_rebuilds_on_start(runtime: Runtime) -> None:
    customers(runtime, 5)
    runner(runtime).catch_up()
    assert status(runtime).version == ErpCustomers.version
    assert status(runtime, Shouting()).code_version == Shouting.version
    runner(runtime, Shouting()).catch_up()
    after = status(runtime, Shouting())
    assert (
        after.version == Shouting.version and after.rebuilt_at is not None and after.rebuild is None
    )
    assert all(r[3].isupper() for r in rows(runtime)) and len(rows(runtime)) == 5
    with connect(runtime) as conn:  # the shadow was renamed, indexes included
        names = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s",
                (runtime.settings.schema_name,),
            ).fetchall()
        }
    assert "erp_customers_pkey" in names and not any("__rebuild" in n for n in names)


def test_two_runners_only_one_runs(runtime: Runtime) -> None:
    customers(runtime, 3)
    first, second = runner(runtime), runner(runtime)
    with running(first):
        wait_for(lambda: status(runtime).state == "running", what="the first runner")
        with pytest.raises(RunnerBusy):
            runner(runtime).catch_up()
        with running(second):
            late = new_customer(runtime, "Late Ltd")
            # The row is visible once the batch committed; the runner counts it just after.
            wait_for(
                lambda: late in by_id(rows(runtime)) and first.applied == 7,
                what="the new customer, applied by the first runner",
            )
            assert second.applied == 0
    assert status(runtime).runner is False


def test_a_standby_takes_over_when_the_runner_stops(runtime: Runtime) -> None:
    customers(runtime, 2)
    first, second = runner(runtime), runner(runtime)
    with running(second):
        with running(first):
            wait_for(lambda: first.applied + second.applied == 4, what="catch-up")
        late = new_customer(runtime, "After Failover Ltd")
        wait_for(lambda: late in by_id(rows(runtime)), timeout=30, what="the standby")
    assert first.applied + second.applied == 5


def test_concurrent_writers_cannot_both_apply_a_batch(runtime: Runtime) -> None:
    """Even without the lock, positions are locked FOR UPDATE inside the batch, so a second
    writer waits and then starts after the first one's positions (nothing twice)."""
    customers(runtime, 4)
    a, b = runner(runtime), runner(runtime)
    for worker in (a, b):
        worker._connect()
        worker._prepare()
    try:
        assert a._batch("live") == 8
        assert b._batch("live") == 0
    finally:
        a._close()
        b._close()
    assert len(rows(runtime)) == 4


def test_a_round_with_nothing_new_locks_nothing_and_the_next_event_is_applied(
    runtime: Runtime,
) -> None:
    """Nothing past the positions: no batch transaction (its FOR UPDATE would take a
    transaction id and commit with a WAL flush), so the position rows keep their xmax."""
    customers(runtime, 2)
    worker = runner(runtime)
    worker._connect()
    worker._prepare()

    def locked_by() -> list[Any]:
        with connect(runtime) as conn:
            return conn.execute(
                sql.SQL(
                    "SELECT xmax::text FROM {} WHERE projection = 'erp' ORDER BY generation"
                ).format(
                    sql.Identifier(runtime.settings.schema_name, "concord_projection_positions")
                )
            ).fetchall()

    try:
        assert worker._batch("live") == 4
        before = locked_by()
        assert worker._batch("live") == 0 and worker._batch("live") == 0
        assert locked_by() == before
        new_customer(runtime, "Later Ltd")
        assert worker._batch("live") == 1
    finally:
        pid = worker.work_pid
        worker._close()
    assert len(rows(runtime)) == 3

    def gone() -> bool:  # the next test counts the runner's backends
        with connect(runtime) as conn:
            return not conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()

    wait_for(gone, what="the runner's backend ended")


def test_runner_connections_are_few(runtime: Runtime) -> None:
    # A name of its own: other hubs on this PostgreSQL (other tests' servers) run an erp
    # runner too, under the default name.
    import uuid

    from adapters.bootstrap import Connections
    from adapters.projections.runner import ProjectionRunner

    own = runtime.settings.model_copy(
        update={"database_application_name": f"concord-t{uuid.uuid4().hex[:8]}"}
    )
    connections = Connections(own)
    worker = ProjectionRunner(ErpCustomers(), connections, own.schema_name, poll_interval_s=0.1)
    with running(worker):
        wait_for(lambda: status(runtime).state == "running", what="running")
        with connect(runtime) as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (connections.application_name("projection-erp"),),
            ).fetchone() or (0,)
    assert n == 1


def test_projection_writes_fail_loudly_without_a_registration(runtime: Runtime) -> None:
    with pytest.raises(LookupError):
        ErpCustomers._update(
            {
                "aggregate_id": "00000000-0000-0000-0000-000000000001",
                "type": "X",
                "version": 2,
                "recorded_at": "2026-01-01T00:00:00+00:00",
            },
            Position("customers", 1),
            _NoRows(),
            {},
        )


class _NoRows:
    def execute(self, statement: str, params: Any = ()) -> None:
        return None

    def execute_one(self, statement: str, params: Any, missing: str) -> None:
        raise LookupError(missing)

    def execute_counted(self, statement: str, params: Any = ()) -> int:
        return 0

    def fetchone(self, statement: str, params: Any = ()) -> tuple[Any, ...] | None:
        return None


_ = psycopg


class Counted(ErpCustomers):
    """ErpCustomers with a SQL view over its table (how metrics views are declared)."""

    views = (
        View(
            name="erp_customer_counts",
            comment="Customers per status (test view).",
            select="SELECT status, count(*) FROM {erp_customers} GROUP BY status",
            columns=(
                Column("status", "text", "Customer status."),
                Column("customers", "bigint", "How many customers have it."),
            ),
        ),
    )


def test_views_are_created_with_comments_and_follow_the_live_tables_through_a_swap(
    runtime: Runtime,
) -> None:
    schema = runtime.settings.schema_name
    customers(runtime, 3)
    view = sql.SQL("SELECT status, customers FROM {}").format(
        sql.Identifier(schema, "erp_customer_counts")
    )
    runner(runtime, Counted()).catch_up()
    with connect(runtime) as conn:
        assert conn.execute(view).fetchall() == [("active", 3)]
        comments = conn.execute(
            "SELECT obj_description(to_regclass(%s), 'pg_class'), "
            "col_description(to_regclass(%s), 2)",
            (f'"{schema}".erp_customer_counts', f'"{schema}".erp_customer_counts'),
        ).fetchone()
        assert comments == ("Customers per status (test view).", "How many customers have it.")
    customers(runtime, 2, prefix="Later")
    with connect(runtime) as conn:
        rebuild(runtime)
        worker = runner(runtime, Counted())
        worker.catch_up()
        # The view reads the swapped-in tables (the old ones are gone), not a shadow.
        assert status(runtime, Counted()).rebuilt_at is not None
        assert conn.execute(view).fetchall() == [("active", 5)]
        depends = conn.execute(
            "SELECT DISTINCT c.relname FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "JOIN pg_class c ON c.oid = d.refobjid WHERE r.ev_class = to_regclass(%s) "
            "AND c.relkind = 'r'",
            (f'"{schema}".erp_customer_counts',),
        ).fetchall()
        assert depends == [("erp_customers",)]
    assert Counted().readable() == ["erp_customers", "erp_customer_counts"]
