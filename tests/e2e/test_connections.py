"""How many PostgreSQL connections a running hub holds (one shared pool, not one per store).

An idle ``concord serve`` used to hold about 32: each of the five stores built its own eager
pool, plus the relay's and the operator endpoints' own connections. On a shared server
(``max_connections`` 100) a few processes then failed with "couldn't get a connection". Now
the stores share one pool from the composition root and every other part connects through
it, named ``<CONCORD_DATABASE_APPLICATION_NAME>-<role>`` in ``pg_stat_activity``.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil  # type: ignore[import-untyped]
import psycopg

from projections.registry import all_projections
from tests.e2e.serving import free_port, interrupt, serve_env, start_serve, wait_healthy

#: Idle bound: the pool's 5 eager connections, the relay's two sessions and one session per
#: projection runner (its lock, LISTEN and batches share it), and one spare.
IDLE_BOUND = 5 + 2 + len(all_projections()) + 1


@contextmanager
def serving(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[str]]:
    """``concord serve`` on ``port`` until the block ends (then SIGINT, as a user would)."""
    server = start_serve(env, port, capture=False)
    try:
        healthy = wait_healthy(f"http://127.0.0.1:{port}", time.monotonic() + 60)
        assert healthy, "concord serve did not become healthy"
        yield server
    finally:
        interrupt(server)


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
    env = serve_env(database_url, pg_schema, nats_url, stream_name, tmp_path)
    env["CONCORD_DATABASE_APPLICATION_NAME"] = name
    env.pop("CONCORD_TARGETS", None)
    pg_port = urlsplit(database_url).port or 5432
    tcp = bool(urlsplit(database_url).hostname) and "host=/" not in database_url
    port = free_port()
    with serving(env, port) as server:
        deadline = time.monotonic() + 20
        named = _named(database_url, name)
        while named.get(f"{name}-relay", 0) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # the relay connects on its own thread after start-up
            named = _named(database_url, name)
        for _ in range(3):  # a few requests, then idle again
            assert httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).status_code == 200
        time.sleep(0.5)
        # Over a Unix socket (the embedded default) a connection has no address to tell
        # PostgreSQL's apart: the named sessions stand in (the other checks still hold).
        held = _sockets_to(server.pid, pg_port) if tcp else sum(_named(database_url, name).values())
        named = _named(database_url, name)
    assert named.get(f"{name}-relay") == 2, named
    assert 1 <= named.get(name, 0) <= 5, named  # the one shared pool (5 eager connections)
    assert held == sum(named.values()), (held, named)  # every connection is named
    assert held <= IDLE_BOUND, (held, named)
    for projection in all_projections():  # one connection each, never more
        assert named.get(f"{name}-projection-{projection.name}") == 1, named
