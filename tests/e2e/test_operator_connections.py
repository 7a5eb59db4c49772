"""Operator endpoints borrow the runtime's connections: ``GET /v1/subscribers`` (polled by
monitoring) used to run the schema DDL and open a PostgreSQL session, an async session and a
NATS connection on every request."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest

from adapters.bootstrap import Runtime, open_runtime
from api.app import create_app
from tests.e2e.conftest import TestClient, nats_settings


@pytest.fixture
def runtime(
    database_url: str, nats_url: str, pg_schema: str, stream_name: str, tmp_path: Path
) -> Iterator[Runtime]:
    name = f"concord-o{uuid.uuid4().hex[:8]}"
    rt = open_runtime(
        nats_settings(
            database_url,
            nats_url,
            pg_schema,
            stream_name,
            tmp_path,
            database_application_name=name,
        )
    )
    try:
        yield rt
    finally:
        rt.close()


def _pool_pids(database_url: str, name: str) -> set[int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchall()
    return {pid for (pid,) in rows}


def test_subscribers_endpoint_opens_no_connections_per_request(
    runtime: Runtime, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every connect goes through to the real server; the spies only count them."""
    opened: list[str] = []

    def counting(kind: str, real: Any) -> Any:
        def connect(*args: Any, **kwargs: Any) -> Any:
            opened.append(kind)
            return real(*args, **kwargs)

        return connect

    key = runtime.keys.create("ops", "admin", ["read", "write", "admin"])
    headers = {"Authorization": f"Bearer {key}"}
    name = runtime.settings.database_application_name
    with TestClient(create_app(runtime)) as http:
        first = http.get("/v1/subscribers", headers=headers)  # may open the NATS client once
        assert first.status_code == 200, first.text
        before = _pool_pids(database_url, name)
        monkeypatch.setattr(psycopg, "connect", counting("pg", psycopg.connect))
        monkeypatch.setattr(
            psycopg.AsyncConnection,
            "connect",
            counting("pg-async", psycopg.AsyncConnection.connect),
        )
        monkeypatch.setattr(nats, "connect", counting("nats", nats.connect))
        for _ in range(5):
            response = http.get("/v1/subscribers", headers=headers)
            assert response.status_code == 200, response.text
            assert {r["subscriber"] for r in response.json()["items"]} == {"erp", "crm", "billing"}
        monkeypatch.undo()
        after = _pool_pids(database_url, name)
    assert opened == []
    assert after == before and 1 <= len(before) <= runtime.settings.pool_size


def test_subscribers_endpoint_runs_no_schema_ddl(runtime: Runtime, database_url: str) -> None:
    """The schema DDL takes the 'concord-schema' advisory lock; with that lock held
    elsewhere, a request that ran DDL would wait for it."""
    key = runtime.keys.create("ops", "admin", ["read", "write", "admin"])
    headers = {"Authorization": f"Bearer {key}"}
    answers: list[int] = []
    with (
        TestClient(create_app(runtime)) as http,
        psycopg.connect(database_url, autocommit=True) as blocker,
    ):
        blocker.execute("SELECT pg_advisory_lock(hashtext('concord-schema'))")
        try:
            request = threading.Thread(
                target=lambda: answers.append(
                    http.get("/v1/subscribers", headers=headers).status_code
                )
            )
            request.start()
            request.join(timeout=5)
            answered_while_locked = list(answers)
        finally:
            blocker.execute("SELECT pg_advisory_unlock(hashtext('concord-schema'))")
        request.join(timeout=30)
    assert answered_while_locked == [200]
