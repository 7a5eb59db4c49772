"""The connection breaks around COMMIT. The committer reads back instead of guessing:
a write that landed is reported as done (never 409 for our own write, never written twice);
one that did not land is retried."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from adapters.bootstrap import Runtime
from adapters.postgres.committer import PostgresCommitter
from tests.integration.commands import new_customer, new_order, run


def break_once(
    monkeypatch: pytest.MonkeyPatch, committer: PostgresCommitter, *, after: bool
) -> list[int]:
    """Make the next transaction fail with a lost connection, after or before it commits."""
    calls: list[int] = []
    original = committer._write

    def flaky(group: Any) -> Any:
        calls.append(len(group))
        if len(calls) == 1:
            if after:
                original(group)  # really commits ...
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return original(group)

    monkeypatch.setattr(committer, "_write", flaky)
    return calls


def test_lost_connection_after_commit_is_reported_as_success_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = new_order(runtime, new_customer(runtime))
    calls = break_once(monkeypatch, runtime.committer, after=True)
    result = run(runtime, "order", "accept", {"erp_order_number": "SO-1"}, aggregate_id=order)
    assert not result.created and result.body["version"] == 2
    assert calls == [1]  # read back, not written again
    assert [e["version"] for e in runtime.hub.history("order", order)] == [1, 2]


def test_lost_connection_before_commit_is_retried(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = new_order(runtime, new_customer(runtime))
    calls = break_once(monkeypatch, runtime.committer, after=False)
    result = run(runtime, "order", "accept", {"erp_order_number": "SO-2"}, aggregate_id=order)
    assert result.body["version"] == 2
    assert calls == [1, 1]  # nothing had landed, so it was written on the retry
    assert [e["version"] for e in runtime.hub.history("order", order)] == [1, 2]
