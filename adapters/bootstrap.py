"""Composition root: builds the whole hub from one :class:`Settings`.

Nothing else creates connections: the hub's stores share one PostgreSQL pool built here,
and everything else (relay, subscribers, CLI, operator endpoints) connects through
:class:`Connections` or borrows the runtime's pool. Tests build a runtime with their own
database schema, and the CLI builds one after starting the embedded servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import nats
import psycopg
import yaml
from eventsourcing.postgres import PostgresDatastore
from nats.aio.client import Client as NatsClient
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from adapters.inbound.log import InboundLog
from adapters.inbound.mirror import MirrorStore
from adapters.inbound.registry import build_adapters
from adapters.inbound.reviews import ReviewQueue
from adapters.inbound.service import InboundService
from adapters.keys import KeyRing
from adapters.postgres.committer import BatchScope, PostgresCommitter, Submitted
from adapters.postgres.datastore import open_datastore
from adapters.postgres.mapper import PydanticMapper
from adapters.postgres.match_keys import MatchKeys
from adapters.postgres.overlay import BatchOverlay
from adapters.postgres.personal_keys import PersonalKeyStore
from adapters.postgres.records import PostgresConflicts, PostgresCrossReference
from adapters.postgres.schema import create_schema
from adapters.postgres.store import ApplicationEventStore
from adapters.postgres.stores import Store, store_class
from adapters.settings import Settings
from adapters.telemetry import current_traceparent
from hub.application.catalogue import build_catalogue
from hub.application.ports import Change, ConflictRecord, ReceiptExists, StoragePorts, StoreError
from hub.application.service import CommandRequest, CommandResult, Hub, merge_conflicts
from hub.application.views import envelope_schema
from hub.domain.catalog import AGGREGATES, EVENT_TYPES
from hub.domain.errors import DomainError
from hub.domain.ownership import OwnershipPolicy

#: The ownership policy shipped inside the package (``adapters/ownership.yaml``): the one
#: source of truth, present in a built wheel and the Docker image as in a checkout. To
#: change who owns what, copy it and point ``CONCORD_OWNERSHIP_FILE`` at the copy.
DEFAULT_POLICY: Traversable = files("adapters") / "ownership.yaml"


class ConfigurationError(Exception):
    """Settings that cannot work, with the fix in the message."""


def load_policy(path: Path | None) -> OwnershipPolicy:
    """Read and validate the ownership policy file (YAML); ``None``: the shipped one."""
    source: Path | Traversable = path or DEFAULT_POLICY
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"ownership policy {source} not found; set CONCORD_OWNERSHIP_FILE to the policy YAML"
        ) from None
    try:
        return OwnershipPolicy.model_validate(raw)
    except ValidationError as invalid:
        raise ConfigurationError(f"ownership policy {source} is invalid:\n{invalid}") from None


class Connections:
    """How every part of Concord connects, built once from settings by this module.

    The relay, the subscribers, the CLI and the operator endpoints take one of these
    instead of reading URLs from :class:`Settings` themselves: connection options (URLs,
    NATS reconnect policy, and PostgreSQL ``application_name`` = the configured name plus
    the role, so ``pg_stat_activity`` shows who holds what) are decided here only.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def application_name(self, role: str) -> str:
        return f"{self.settings.database_application_name}-{role}"[:63]

    def _database_url(self) -> str:
        if not self.settings.database_url:
            raise ConfigurationError("no database: set CONCORD_DATABASE_URL")
        return self.settings.database_url

    def postgres(self, role: str) -> psycopg.Connection[Any]:
        """One autocommit connection for a short-lived caller (a CLI command)."""
        return psycopg.connect(
            self._database_url(), autocommit=True, application_name=self.application_name(role)
        )

    async def postgres_async(self, role: str) -> psycopg.AsyncConnection[Any]:
        """A dedicated session (LISTEN, a session advisory lock): never pooled."""
        return await psycopg.AsyncConnection.connect(
            self._database_url(), autocommit=True, application_name=self.application_name(role)
        )

    def postgres_async_pool(
        self, role: str, *, min_size: int, max_size: int
    ) -> AsyncConnectionPool[Any]:
        """A (closed) async pool; the caller opens and closes it around its run."""
        return AsyncConnectionPool(
            self._database_url(),
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "application_name": self.application_name(role)},
            open=False,
            name=self.application_name(role),
        )

    def nats_identity(self, role: str) -> dict[str, Any]:
        """nats-py options that authenticate ``role``: the relay connects as the relay
        identity (the only one that may write the record), every other role (subscribers,
        reports, replays, operator endpoints) as the consume-only subscriber identity.
        Nothing configured: no credentials (a server without authentication, or ones in
        the URL)."""
        s = self.settings
        relay = role == "relay"
        user = s.nats_relay_user if relay else s.nats_subscriber_user
        password = s.nats_relay_password if relay else s.nats_subscriber_password
        creds = s.nats_relay_creds_file if relay else s.nats_subscriber_creds_file
        options: dict[str, Any] = {}
        if creds is not None:
            options["user_credentials"] = str(creds)
        elif user is not None:
            options.update(user=user, password=password or "")
        if s.nats_tls_ca_file is not None:
            options["tls"] = ssl.create_default_context(cafile=str(s.nats_tls_ca_file))
        return options

    async def nats(self, role: str, **callbacks: Any) -> NatsClient:
        """A NATS connection that reconnects for ever (the services outlive NATS restarts),
        authenticated as ``role``'s identity (:meth:`nats_identity`).

        ``callbacks``: nats-py's connection callbacks (``disconnected_cb`` and the like)."""
        if not self.settings.nats_url:
            raise ConfigurationError("no NATS: set CONCORD_NATS_URL")
        client: NatsClient = await nats.connect(
            self.settings.nats_url,
            name=f"concord-{role}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            **self.nats_identity(role),
            **callbacks,
        )
        return client


log = logging.getLogger("concord.batch")


def _line_failed(error: Exception) -> StoreError:
    """A batch line failed in the store for a reason that is not the client's: the details
    go to the log under a reference, never the database's own text into the response."""
    reference = uuid.uuid4().hex[:12]
    log.error("batch line failed (%s)", reference, exc_info=error)
    return StoreError(f"the line could not be stored; it was logged as {reference}")


@dataclass
class Runtime:
    """Everything a running hub holds; close it to release connections and threads.

    ``datastore`` is the one PostgreSQL pool of the process: the stores, the committer and
    the small ports (receipts, conflicts, cross-reference) borrow from it, and so do the
    operator endpoints (dead letters, subscribers). Nothing else opens connections."""

    settings: Settings
    hub: Hub
    stores: dict[str, Store]
    committer: PostgresCommitter
    policy: OwnershipPolicy
    keys: KeyRing
    datastore: PostgresDatastore
    conflicts: PostgresConflicts
    xref: PostgresCrossReference
    connections: Connections
    inbound: InboundService
    closed: bool = field(default=False)
    _nats: NatsClient | None = field(default=None, repr=False)
    _nats_loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _nats_connecting: asyncio.Task[NatsClient] | None = field(default=None, repr=False)
    #: Threads that run commands for async callers (the API): each waits for its group
    #: commit, so there are as many as commands in flight, not as many as cores.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(64, thread_name_prefix="concord-command")
    )

    def batch(
        self,
        requests: Iterable[CommandRequest],
        line_of: Callable[[int], int] = lambda index: index + 1,
    ) -> list[CommandResult | DomainError | StoreError]:
        """Decide every line against the stores plus earlier lines, then commit together.

        Per line: a line that fails its checks or its commit is reported and changes nothing;
        the others commit (grouped into as few transactions as the writer can). Lines are
        decided by the hub in the same order of checks as a single command; only the commit
        differs: the committer's ``submit``/``outcomes`` let later lines be decided while
        earlier ones are written. Ownership conflicts are recorded once per distinct
        violation, with the lines (``line_of`` maps a request's index to its line number)
        that repeated it.
        """
        overlay = BatchOverlay(self.hub.store)
        scope = BatchScope()
        seen: list[CommandRequest] = []
        results: list[CommandResult | DomainError | StoreError] = []
        indexes: list[int] = []
        submitted: list[Submitted] = []
        pending: list[Change] = []
        chunk = self.settings.group_commit_max
        conflicts: list[tuple[int, ConflictRecord]] = []
        for index, request in enumerate(requests):
            seen.append(request)
            found: list[ConflictRecord] = []
            try:
                change, result = self.hub.decide(request, overlay, brief=True, conflicts=found)
            except DomainError as refused:
                results.append(refused)
                conflicts += [(index, record) for record in found]
                continue
            results.append(result)
            if change is None:  # an idempotent replay
                continue
            overlay.remember(list(change.aggregates))
            indexes.append(index)
            pending.append(change)
            if len(pending) >= chunk:  # the writer commits while later lines are decided
                submitted += self.committer.submit(pending, scope)
                pending = []
        submitted += self.committer.submit(pending, scope)
        for record in merge_conflicts([(line_of(i), record) for i, record in conflicts]):
            self.hub.ports.conflicts.record_conflict(record)
        outcomes = self.committer.outcomes(submitted)
        for index, error in zip(indexes, outcomes, strict=True):
            if isinstance(error, ReceiptExists):
                replay = self.hub.replay(seen[index])
                if replay is not None:
                    results[index] = replay
            elif isinstance(error, DomainError):
                results[index] = self.hub.explain_conflict(seen[index], error)
            elif isinstance(error, StoreError):
                results[index] = error
            elif error is not None:
                results[index] = _line_failed(error)
        return results

    def event_schemas(self) -> dict[str, Any]:
        """JSON Schema of every event type's envelope (as on NATS), keyed by type name."""
        entity_of = {cls.__module__: cls.entity for cls in AGGREGATES}
        return {
            cls.type_name(): envelope_schema(entity_of[cls.__module__], cls) for cls in EVENT_TYPES
        }

    @contextlib.contextmanager
    def connection(self, timeout_s: float | None = None) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for an operator request (dead letters, subscriber counts),
        with tuple rows as those queries expect; it goes back to the pool afterwards.

        ``timeout_s``: wait at most this long for one (``GET /v1/health`` must answer while
        PostgreSQL is away, when the pool has none to give), else the pool's own timeout."""
        context = (
            self.datastore.get_connection()
            if timeout_s is None
            else self.datastore.pool.connection(timeout=timeout_s)
        )
        with context as conn:
            conn.row_factory = tuple_row  # type: ignore[assignment]
            try:
                yield conn
            finally:
                conn.row_factory = dict_row

    async def nats(self, timeout_s: float | None = None) -> NatsClient:
        """The operator endpoints' NATS connection: opened on first use and kept, so a
        monitoring poll of ``GET /v1/subscribers`` does not open one per request. One per
        event loop (a client belongs to the loop it was made on).

        While NATS cannot be reached the first connect keeps trying (as every Concord
        connection does); callers share that one attempt, and ``timeout_s`` bounds how long
        one waits for it (``TimeoutError``) without cancelling it."""
        loop = asyncio.get_running_loop()
        current = self._nats
        if current is not None and not current.is_closed and self._nats_loop is loop:
            return current
        attempt = self._nats_connecting
        if attempt is None or attempt.get_loop() is not loop or attempt.done():
            attempt = self._nats_connecting = loop.create_task(self._connect_nats(loop))
        return await asyncio.wait_for(asyncio.shield(attempt), timeout_s)

    async def _connect_nats(self, loop: asyncio.AbstractEventLoop) -> NatsClient:
        try:
            client = await self.connections.nats("operator")
        finally:
            self._nats_connecting = None
        self._nats, self._nats_loop = client, loop
        return client

    async def close_nats(self) -> None:
        """Close the operator NATS connection (the API's shutdown, on its own loop)."""
        attempt, self._nats_connecting = self._nats_connecting, None
        if attempt is not None and not attempt.done():
            attempt.cancel()
            # Bounded: nats-py may take a while to notice the cancel in its connect loop
            # (it was seen to hang a shutdown), and nothing here is worth waiting for.
            await asyncio.wait({attempt}, timeout=2)
        current, self._nats, self._nats_loop = self._nats, None, None
        if current is not None and not current.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(current.close(), 5)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        attempt = self._nats_connecting
        loop = attempt.get_loop() if attempt is not None else self._nats_loop
        if loop is not None and loop.is_running():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.close_nats(), loop).result(5)
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.committer.close()
        for store in self.stores.values():
            store.close()
        self.datastore.close()


def personal_keys(
    stores: dict[str, Store], datastore: PostgresDatastore, settings: Settings
) -> PersonalKeyStore:
    """One key store for the process, sealing personal fields in every store's mapper."""
    keys = PersonalKeyStore(
        datastore, settings.schema_name, read_ttl_s=settings.personal_key_cache_s
    )
    for store in stores.values():
        assert isinstance(store.mapper, PydanticMapper)
        store.mapper.personal = keys
    return keys


def open_runtime(settings: Settings) -> Runtime:
    """Connect to PostgreSQL, create what is missing, and wire the hub."""
    if not settings.database_url:
        raise ConfigurationError(
            "no database: set CONCORD_DATABASE_URL, or run `concord serve` to start the "
            "embedded PostgreSQL"
        )
    policy = load_policy(settings.ownership_file)
    env = settings.postgres_env(settings.database_url)
    datastore = open_datastore(env, settings.database_application_name)
    stores: dict[str, Store] = {}
    # A short-lived session of its own for the start-up lock (not a pooled connection,
    # which would grow the pool past its size while the stores create their tables).
    try:
        with Connections(settings).postgres("startup") as conn:
            create_schema(conn, settings.schema_name)
            # Each store creates its tables on construction; PostgreSQL's CREATE TABLE IF
            # NOT EXISTS races when several processes start at once (API workers, relay),
            # so the start-ups take turns.
            conn.execute("SELECT pg_advisory_lock(hashtext('concord-stores'))")
            try:
                for aggregate_class in AGGREGATES:
                    store = store_class(aggregate_class)(env=env, datastore=datastore)
                    stores[aggregate_class.entity] = store
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext('concord-stores'))")
    except Exception:
        datastore.close()
        raise
    personal = personal_keys(stores, datastore, settings)
    match_keys = MatchKeys(datastore, settings.schema_name)
    match_keys.secret()  # read (or made) once, before the writer thread needs it
    committer = PostgresCommitter(
        stores,
        settings.schema_name,
        group_max=settings.group_commit_max,
        personal=personal,
        max_event_bytes=settings.max_event_bytes,
        match_keys=match_keys,
    )
    conflicts = PostgresConflicts(datastore, settings.schema_name)
    xref = PostgresCrossReference(datastore, settings.schema_name)
    hub = Hub(
        catalogue=build_catalogue(),
        policy=policy,
        ports=StoragePorts(
            events=ApplicationEventStore(stores),
            commits=committer,
            receipts=committer.receipts,
            conflicts=conflicts,
            xref=xref,
        ),
        aggregates={cls.entity: cls for cls in AGGREGATES},
        trace_context=current_traceparent,
    )
    return Runtime(
        settings=settings,
        hub=hub,
        stores=stores,
        committer=committer,
        policy=policy,
        keys=KeyRing.load(settings),
        datastore=datastore,
        conflicts=conflicts,
        xref=xref,
        connections=Connections(settings),
        inbound=InboundService(
            hub=hub,
            commits=committer,
            log=InboundLog(datastore, settings.schema_name),
            adapters=build_adapters(settings),
            secrets=settings.webhook_secret_map(),
            mirrors=MirrorStore(datastore, settings.schema_name),
            match_keys=match_keys,
            reviews=ReviewQueue(datastore, settings.schema_name),
        ),
    )
