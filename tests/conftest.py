"""Shared fixtures: a real PostgreSQL and a real NATS JetStream for every test run.

Tests talk to real servers (never fakes) so they exercise the production code path. Either
point them at running servers:

- ``CONCORD_TEST_DATABASE_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``)
- ``CONCORD_TEST_NATS_URL`` (e.g. ``nats://127.0.0.1:4222``), used only if it is NATS >= 2.12

or leave them unset and the session starts private servers from the PyPI wheels in a temporary
folder (``adapters.embedded``). Each test gets its own PostgreSQL schema and its own JetStream
stream name, so tests never see each other's data and need no clean-up between them.

Sub-folders add their own fixtures in their own ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

from adapters.embedded import (
    MIN_NATS_VERSION,
    EmbeddedServerError,
    embedded_nats,
    embedded_postgres,
    read_nats_info,
)
from adapters.settings import Settings

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even if this thread has a running loop.

    Fixtures are sync so that plain tests can use them; nats-py is asyncio-only.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """libpq URL of the test database: ``CONCORD_TEST_DATABASE_URL`` or an embedded server."""
    configured = os.environ.get("CONCORD_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with embedded_postgres(tmp_path_factory.mktemp("embedded-pg")) as url:
        yield url


@pytest.fixture
def pg_schema(database_url: str) -> Iterator[str]:
    """A fresh, empty schema ``t_<12 hex>`` for one test; dropped with everything in it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            # Fail rather than hang if a test leaked a transaction holding locks in the schema.
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_env(database_url: str, pg_schema: str) -> dict[str, str]:
    """eventsourcing environment (``POSTGRES_*`` keys) pointing at this test's schema."""
    return Settings(database_url=database_url, schema_name=pg_schema).postgres_env(database_url)


# ----------------------------------------------------------------------------------- NATS


def _usable_nats(url: str) -> bool:
    """True if ``url`` answers as a NATS server with JetStream and version >= 2.12.

    The machine's own NATS (Debian 12 packages 2.9.10) is too old for the JetStream features
    Concord targets, so with such a server the session starts the wheel's nats-server instead.
    """
    try:
        info = read_nats_info(url)
    except (OSError, ValueError, EmbeddedServerError):
        return False
    version = tuple(int(p) for p in str(info.get("version", "0.0.0")).split("-")[0].split("."))
    return bool(info.get("jetstream")) and version[:2] >= MIN_NATS_VERSION


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a NATS >= 2.12 server with JetStream: ``CONCORD_TEST_NATS_URL`` or embedded."""
    configured = os.environ.get("CONCORD_TEST_NATS_URL")
    if configured and _usable_nats(configured):
        yield configured
        return
    with embedded_nats(Path(tmp_path_factory.mktemp("embedded-nats"))) as url:
        yield url


@pytest.fixture
def stream_name(nats_url: str) -> Iterator[str]:
    """A unique JetStream stream name for one test; the stream is deleted afterwards if the
    test created it. Tests also derive subjects from it so streams never overlap."""
    name = f"T_{uuid.uuid4().hex[:12].upper()}"
    yield name
    run_sync(_delete_stream(nats_url, name))


async def _delete_stream(url: str, name: str) -> None:
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        with contextlib.suppress(NotFoundError):  # the test never created it
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()
