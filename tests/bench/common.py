"""Shared pieces of the benchmarks: a scratch schema, a hub server process, a raw-save
baseline and a tiny keep-alive HTTP client.

Why a hand-written client: on 2 cores the load generator competes with the server for CPU;
httpx spends several times more CPU per request than this, which would measure the client.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.e2e.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/test"


def database_url() -> str:
    return os.environ.get("CONCORD_BENCH_DATABASE_URL") or os.environ.get(
        "CONCORD_TEST_DATABASE_URL", DEFAULT_DB
    )


@contextmanager
def scratch_schema(url: str, prefix: str = "bench") -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@contextmanager
def hub_server(
    url: str, schema: str, data_dir: Path, workers: int = 1
) -> Iterator[tuple[int, str]]:
    """Run the API in its own process (as in production) and yield (port, admin key)."""
    from adapters.keys import KeyRing
    from adapters.settings import Settings

    settings = Settings(database_url=url, schema_name=schema, data_dir=data_dir)
    key = KeyRing.load(settings).create("bench", "admin", ["read", "write", "admin"])
    port = free_port()
    env = dict(
        os.environ,
        CONCORD_DATABASE_URL=url,
        CONCORD_SCHEMA=schema,
        CONCORD_DATA_DIR=str(data_dir),
        # A benchmark measures throughput: one client at full speed must not be throttled.
        CONCORD_RATE_LIMIT_PER_S="0",
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.bench.server:app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the hub server did not start within 30 s")
        yield port, key
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def stamp() -> Any:
    from hub.domain.provenance import Provenance, Stamp, System

    return Stamp(
        provenance=Provenance(source_system=System.API, actor="bench"),
        recorded_at=datetime.now(UTC),
    )


def raw_save_rate(url: str, per_save: int, seconds: float) -> float:
    """Aggregates/s through the library's own ``Application.save()`` (the raw limit)."""
    from adapters.postgres.stores import store_class
    from adapters.settings import Settings
    from hub.domain.customer import Customer

    with scratch_schema(url, "raw") as schema:
        env = Settings(database_url=url, schema_name=schema).postgres_env(url)
        store = store_class(Customer)(env=env)
        try:
            for _ in range(20):  # warm-up: pools, prepared statements
                store.save(Customer.register(stamp(), uuid.uuid4(), legal_name="Warm"))
            done = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                batch = [
                    Customer.register(stamp(), uuid.uuid4(), legal_name=f"Raw {done + i}")
                    for i in range(per_save)
                ]
                store.save(*batch)
                done += per_save
            return done / (time.perf_counter() - start)
        finally:
            store.close()


class Connection:
    """One keep-alive HTTP/1.1 connection (enough of the protocol for our own server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="concord-bench-"))
