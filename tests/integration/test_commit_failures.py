"""How the writer fails: batch lines that build on a failed line, lock timeouts, snapshot
errors after a commit, and shutdown — every caller gets an answer, nothing half-applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from adapters.bootstrap import Runtime, open_runtime
from adapters.postgres.committer import DependencyFailed, StoreBusy
from adapters.settings import Settings
from hub.application.service import CommandResult, Origin
from hub.domain.errors import AlreadyExists
from hub.domain.identity import external_id
from tests.integration.commands import new_customer, request


def test_a_line_building_on_a_failed_line_does_not_commit(runtime: Runtime) -> None:
    existing = new_customer(runtime, origin=Origin(source_record_id="R-1"))
    assert existing == external_id("api", "customer", "R-1")
    twin = request(
        runtime,
        "customer",
        "register",
        {"legal_name": "Twin"},
        origin=Origin(source_record_id="R-1"),
    )
    follow_up = request(
        runtime, "customer", "change_details", {"display_name": "Twin Co"}, aggregate_id=existing
    )
    unrelated = request(runtime, "customer", "register", {"legal_name": "Other"})
    results = runtime.batch([twin, follow_up, unrelated])
    assert isinstance(results[0], AlreadyExists)
    assert isinstance(results[1], DependencyFailed)
    assert isinstance(results[2], CommandResult) and results[2].created
    history = runtime.hub.history("customer", existing)
    assert [e["type"] for e in history] == ["CustomerRegistered"]  # untouched


@pytest.fixture
def impatient(database_url: str, pg_schema: str, tmp_path: Path) -> Any:
    rt = open_runtime(
        Settings(
            database_url=database_url, schema_name=pg_schema, data_dir=tmp_path, lock_timeout_s=1
        )
    )
    yield rt
    rt.close()


def test_a_lock_timeout_fails_the_whole_group_at_once(
    impatient: Runtime, database_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes = [
        impatient.hub.prepare(request(impatient, "customer", "register", {"legal_name": f"C{i}"}))[
            0
        ]
        for i in range(5)
    ]
    attempts: list[int] = []
    original = impatient.committer._write

    def counting(group: Any) -> Any:
        attempts.append(len(group))
        return original(group)

    monkeypatch.setattr(impatient.committer, "_write", counting)
    with psycopg.connect(database_url) as blocker:
        blocker.execute(
            sql.SQL("LOCK TABLE {}.customers_events IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(pg_schema)
            )
        )
        outcomes = impatient.committer.commit_many(changes)
        blocker.rollback()
    assert all(isinstance(o, StoreBusy) for o in outcomes)
    assert attempts == [5]  # one attempt for the group, not one lock wait per change


def test_a_failed_snapshot_does_not_fail_a_committed_command(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = runtime.stores["customer"]

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("snapshot store unavailable")

    monkeypatch.setattr(store, "take_snapshot", broken)
    monkeypatch.setitem(store.snapshotting_intervals, store.aggregate_class, 2)
    customer = new_customer(runtime)
    from tests.integration.commands import run

    result = run(
        runtime, "customer", "change_details", {"display_name": "Renamed"}, aggregate_id=customer
    )
    assert result.body["version"] == 2
    assert len(runtime.hub.history("customer", customer)) == 2
