"""The projections' memo (``ViewCursor.memo``): what a projection remembers of its own rows
stays true of the committed rows through a failed pipelined batch, its statement-by-statement
replay, a restart and a rebuild's swap, or the view it builds drifts from a full rebuild."""

from __future__ import annotations

from typing import ClassVar

import pytest

from adapters.bootstrap import Runtime
from adapters.projections.runner import ProjectionFailed
from projections.definition import Column, Envelope, Position, Projection, Table, ViewCursor
from tests.integration.commands import new_customer, run
from tests.integration.projection_support import rebuild, rows, runner


class Counted(Projection):
    """Events per customer, counted from the memo (read from the row on a miss): a memo that
    kept a rolled-back batch's counts would count that batch twice."""

    name: ClassVar[str] = "memo_counts"
    version: ClassVar[int] = 1
    stores: ClassVar[tuple[str, ...]] = ("customers",)
    tables: ClassVar[tuple[Table, ...]] = (
        Table(
            "memo_counts",
            "Events seen per customer (a test projection).",
            (
                Column("customer_id", "uuid", "The customer.", not_null=True),
                Column("events", "bigint", "Events applied for it.", not_null=True),
            ),
            ("customer_id",),
        ),
    )
    poison: ClassVar[bool] = False

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        key = ("count", event["aggregate_id"])
        if key not in cursor.memo:
            row = cursor.fetchone(
                "SELECT events FROM {memo_counts} WHERE customer_id = %s",
                (event["aggregate_id"],),
            )
            cursor.memo[key] = 0 if row is None else int(row[0])
        cursor.memo[key] += 1
        cursor.execute(
            "INSERT INTO {memo_counts} (customer_id, events) VALUES (%s, %s) "
            "ON CONFLICT (customer_id) DO UPDATE SET events = EXCLUDED.events",
            (event["aggregate_id"], cursor.memo[key]),
        )
        if self.poison and event["data"].get("legal_name") == "Poison Ltd":
            # Refused by the database, which inside a pipeline says so only later: the
            # batch is rolled back and replayed statement by statement.
            cursor.execute(
                "INSERT INTO {memo_counts} (customer_id, events) VALUES (%s, 0)",
                (event["aggregate_id"],),
            )


class Poisoned(Counted):
    poison: ClassVar[bool] = True


def _history(runtime: Runtime) -> dict[str, int]:
    """Customers with 2 events each around a poisoned registration; the expected counts."""
    expected: dict[str, int] = {}
    for i in range(4):
        customer = new_customer(runtime, f"Counted {i} Ltd")
        run(
            runtime,
            "customer",
            "assign_number",
            {"customer_number": f"M-{i}"},
            aggregate_id=customer,
        )
        expected[str(customer)] = 2
    expected[str(new_customer(runtime, "Poison Ltd"))] = 1
    for i in range(3):
        customer = new_customer(runtime, f"After {i} Ltd")
        run(
            runtime,
            "customer",
            "assign_number",
            {"customer_number": f"A-{i}"},
            aggregate_id=customer,
        )
        expected[str(customer)] = 2
    return expected


def _counts(runtime: Runtime) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in rows(runtime, "memo_counts")}


def test_the_memo_never_outlives_a_failed_batch_or_a_restart(runtime: Runtime) -> None:
    expected = _history(runtime)
    worker = runner(runtime, Poisoned(), batch=100)
    # The pipelined batch fails, is replayed one statement at a time (from an empty memo),
    # and what precedes the poison is committed with its true counts.
    with pytest.raises(ProjectionFailed) as failed:
        worker.catch_up()
    assert failed.value.at.position == 9
    assert sorted(_counts(runtime).values()) == [2, 2, 2, 2]
    # The same runner, fixed, carries on: its memo was emptied with the failure.
    worker.projection = Counted()
    worker.catch_up()
    assert _counts(runtime) == expected
    # More events later, applied from what the memo holds: still exact.
    customer = next(iter(expected))
    run(runtime, "customer", "change_status", {"status": "on_hold"}, aggregate_id=customer)
    expected[customer] += 1
    worker.catch_up()
    assert _counts(runtime) == expected


def test_the_memo_follows_a_rebuild_into_the_live_view(runtime: Runtime) -> None:
    expected = _history(runtime)
    worker = runner(runtime, Counted(), batch=4)
    worker.catch_up()
    assert _counts(runtime) == expected
    rebuild(runtime, Counted())
    worker.catch_up()  # a shadow from position 0, then the swap
    assert _counts(runtime) == expected
    # After the swap the live generation is the rebuilt one, and follows from its memo.
    customer = next(iter(expected))
    run(runtime, "customer", "change_status", {"status": "on_hold"}, aggregate_id=customer)
    expected[customer] += 1
    worker.catch_up()
    assert _counts(runtime) == expected
    # A second runner (a restart) starts from the rows, not from anyone's memory.
    run(runtime, "customer", "change_status", {"status": "active"}, aggregate_id=customer)
    expected[customer] += 1
    runner(runtime, Counted()).catch_up()
    assert _counts(runtime) == expected


class HeldCounts(Counted):
    """Counted, its writes held until ``write_held``: one upsert per customer and run."""

    name: ClassVar[str] = "memo_counts"

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        key = ("count", event["aggregate_id"])
        if key not in cursor.memo:
            row = cursor.fetchone(
                "SELECT events FROM {memo_counts} WHERE customer_id = %s",
                (event["aggregate_id"],),
            )
            cursor.memo[key] = 0 if row is None else int(row[0])
        cursor.memo[key] += 1
        cursor.memo.setdefault("held", set()).add(event["aggregate_id"])
        if self.poison and event["data"].get("legal_name") == "Poison Ltd":
            cursor.memo.setdefault("poisoned", set()).add(event["aggregate_id"])

    def write_held(self, cursor: ViewCursor) -> None:
        for customer in cursor.memo.pop("held", ()):
            cursor.execute(
                "INSERT INTO {memo_counts} (customer_id, events) VALUES (%s, %s) "
                "ON CONFLICT (customer_id) DO UPDATE SET events = EXCLUDED.events",
                (customer, cursor.memo[("count", customer)]),
            )
        for customer in cursor.memo.pop("poisoned", ()):
            cursor.execute(
                "INSERT INTO {memo_counts} (customer_id, events) VALUES (%s, 0)", (customer,)
            )


class PoisonedHeld(HeldCounts):
    poison: ClassVar[bool] = True


def test_held_writes_are_written_per_run_and_a_failing_one_is_reported_at_its_event(
    runtime: Runtime,
) -> None:
    expected = _history(runtime)
    worker = runner(runtime, PoisonedHeld(), batch=100)
    # The held writes fail at the end of the run; the replay writes them after each event,
    # so the failure names the poisoned registration, and what precedes it is committed.
    with pytest.raises(ProjectionFailed) as failed:
        worker.catch_up()
    assert failed.value.at.position == 9
    assert sorted(_counts(runtime).values()) == [2, 2, 2, 2]
    worker.projection = HeldCounts()
    worker.catch_up()
    assert _counts(runtime) == expected
    # Small batches (held writes cut at every batch end) build the same rows.
    rebuild(runtime, HeldCounts())
    runner(runtime, HeldCounts(), batch=3).catch_up()
    assert _counts(runtime) == expected
