"""Shared fixtures: a real PostgreSQL and a real NATS JetStream for every test run.

Tests talk to real servers (never fakes) so they exercise the production code path. Either
point them at a running PostgreSQL:

- ``CONCORD_TEST_DATABASE_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/test``)

or leave it unset and the session starts a private server from the PyPI wheel in a temporary
folder (``adapters.embedded``). NATS is always the wheel's server started by Concord's own
code, with Concord's configuration (authentication and permissions included): the tests of
who may publish what need that configuration. Each test gets its own PostgreSQL schema and
its own JetStream stream name, so tests never see each other's data and need no clean-up
between them.

Sub-folders add their own fixtures in their own ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql

from adapters.embedded import embedded_nats, embedded_postgres, nats_identities
from adapters.nats.credentials import Credential
from adapters.nats.identities import Role, Scope
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


NATS_IDENTITY_ENV = {
    "relay": ("CONCORD_NATS_RELAY_USER", "CONCORD_NATS_RELAY_PASSWORD"),
    "subscriber": ("CONCORD_NATS_SUBSCRIBER_USER", "CONCORD_NATS_SUBSCRIBER_PASSWORD"),
}


@dataclass(frozen=True)
class NatsServer:
    """A NATS server a test session (or one test) started with Concord's configuration."""

    folder: Path
    url: str
    """Without credentials: what an unauthenticated client connects to."""

    def credential(self, role: Role) -> Credential:
        found = nats_identities(self.folder).credential(role)
        assert found is not None, f"no {role} identity in {self.folder}"
        return found

    @property
    def admin_url(self) -> str:
        """The URL with the test-only admin identity (no permission limits) in it."""
        admin = self.credential("admin")
        return self.url.replace("nats://", f"nats://{admin.user}:{admin.password}@", 1)

    def identity_env(self) -> dict[str, str]:
        """``CONCORD_NATS_*`` variables that make Concord connect with its identities."""
        env: dict[str, str] = {}
        for role, (user_key, password_key) in NATS_IDENTITY_ENV.items():
            credential = self.credential(role)  # type: ignore[arg-type]
            env[user_key], env[password_key] = credential.user, credential.password
        return env

    def identity_settings(self) -> dict[str, str]:
        """The same as settings fields (``Settings(**server.identity_settings())``)."""
        return {k.removeprefix("CONCORD_").lower(): v for k, v in self.identity_env().items()}


@contextlib.contextmanager
def start_nats(folder: Path, port: int | None = None) -> Iterator[NatsServer]:
    """Start NATS as ``concord serve`` does, plus the test-only admin identity.

    Permissions are rendered for any stream and prefix (``*``), since every test has its
    own; the bcrypt cost is the minimum, as tests connect thousands of times.
    """
    with embedded_nats(folder, port, scope=Scope("*", "*"), admin=True, hash_rounds=4) as url:
        yield NatsServer(folder, url)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """The session's NATS: the wheel's nats-server (>= 2.12; the machine's NATS may be
    older) with the configuration Concord writes, authentication included.

    The relay and subscriber identities are put into the environment
    (``CONCORD_NATS_RELAY_USER`` ...), so every ``Settings`` a test builds, and every
    process it starts, connects as Concord does in production: the relay as the relay,
    everything else consume-only.
    """
    with (
        start_nats(tmp_path_factory.mktemp("embedded-nats")) as server,
        pytest.MonkeyPatch.context() as env,
    ):
        for key, value in server.identity_env().items():
            env.setenv(key, value)
        yield server


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer) -> str:
    """URL of the session's NATS carrying the test-only admin identity: tests read streams
    back and inject foreign messages through it. Concord's own code connects with the
    identities in its settings instead, which nats-py prefers to the URL's."""
    return nats_server.admin_url


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
