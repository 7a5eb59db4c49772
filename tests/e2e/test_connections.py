"""How many PostgreSQL connections a running hub holds (one shared pool, not one per store).

An idle ``concord serve`` used to hold about 32: each of the five stores built its own eager
pool, plus the relay's and the operator endpoints' own connections. On a shared server
(``max_connections`` 100) a few processes then failed with "couldn't get a connection". Now
the stores share one pool from the composition root and every other part connects through
it, named ``<CONCORD_DATABASE_APPLICATION_NAME>-<role>`` in ``pg_stat_activity``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil  # type: ignore[import-untyped]
import psycopg

ROOT = Path(__file__).resolve().parents[2]
#: Idle bound: the pool's 5 eager connections plus the relay's two sessions, and one spare.
IDLE_BOUND = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    """``concord serve`` on ``port`` until the block ends (then SIGINT, as a user would)."""
    server = subprocess.Popen(
        [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("concord serve did not become healthy")
        yield server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        finally:
            if server.poll() is None:
                server.kill()


def _sockets_to(pid: int, pg_port: int) -> int:
    """TCP connections of the process (and its children) to PostgreSQL: counts every
    connection, named or not."""
    process = psutil.Process(pid)
    count = 0
    for proc in [process, *process.children(recursive=True)]:
        count += sum(
            1
            for c in proc.net_connections(kind="tcp")
            if c.raddr and c.raddr.port == pg_port and c.status == psutil.CONN_ESTABLISHED
        )
    return count


def _named(database_url: str, prefix: str) -> dict[str, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE application_name LIKE %s GROUP BY 1",
            (prefix + "%",),
        ).fetchall()
    return {name: n for name, n in rows}


def test_an_idle_hub_holds_a_small_bounded_number_of_connections(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    name = f"concord-t{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        CONCORD_DATABASE_URL=database_url,
        CONCORD_SCHEMA=pg_schema,
        CONCORD_NATS_URL=nats_url,
        CONCORD_NATS_STREAM=stream_name,
        CONCORD_NATS_SUBJECT_PREFIX=stream_name.lower(),
        CONCORD_DATA_DIR=str(tmp_path),
        CONCORD_DATABASE_APPLICATION_NAME=name,
    )
    env.pop("CONCORD_TARGETS", None)
    pg_port = urlsplit(database_url).port or 5432
    port = _free_port()
    with serving(env, port) as server:
        deadline = time.monotonic() + 20
        named = _named(database_url, name)
        while named.get(f"{name}-relay", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the relay connects on its own thread after start-up
            named = _named(database_url, name)
        for _ in range(3):  # a few requests, then idle again
            assert httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).status_code == 200
        time.sleep(0.5)
        held = _sockets_to(server.pid, pg_port)
        named = _named(database_url, name)
    assert named.get(f"{name}-relay") == 2, named
    assert 1 <= named.get(name, 0) <= 5, named  # the one shared pool (5 eager connections)
    assert held == sum(named.values()), (held, named)  # every connection is named
    assert held <= IDLE_BOUND, (held, named)
