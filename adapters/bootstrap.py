"""Composition root: builds the whole hub from one :class:`Settings`.

Nothing else creates connections or reads settings; tests build a runtime with their own
database schema, and the CLI builds one after starting the embedded servers.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from eventsourcing.postgres import PostgresDatastore
from pydantic import ValidationError

from adapters.keys import KeyRing
from adapters.postgres.committer import BatchScope, PostgresCommitter, Submitted
from adapters.postgres.datastore import open_datastore
from adapters.postgres.overlay import BatchOverlay
from adapters.postgres.records import PostgresConflicts, PostgresCrossReference
from adapters.postgres.schema import create_schema
from adapters.postgres.store import ApplicationEventStore
from adapters.postgres.stores import Store, store_class
from adapters.settings import Settings
from adapters.telemetry import current_traceparent
from hub.application.catalogue import build_catalogue
from hub.application.ports import Change, ReceiptExists, StoragePorts, StoreError
from hub.application.service import CommandRequest, CommandResult, Hub
from hub.application.views import envelope_schema
from hub.domain.catalog import AGGREGATES, EVENT_TYPES
from hub.domain.errors import DomainError
from hub.domain.ownership import OwnershipPolicy

DEFAULT_POLICY = Path(__file__).resolve().parent.parent / "ops" / "ownership.yaml"


class ConfigurationError(Exception):
    """Settings that cannot work, with the fix in the message."""


def load_policy(path: Path | None) -> OwnershipPolicy:
    """Read and validate the ownership policy file (YAML)."""
    path = path or DEFAULT_POLICY
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigurationError(
            f"ownership policy {path} not found; set CONCORD_OWNERSHIP_FILE to the policy YAML"
        ) from None
    try:
        return OwnershipPolicy.model_validate(raw)
    except ValidationError as invalid:
        raise ConfigurationError(f"ownership policy {path} is invalid:\n{invalid}") from None


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
    closed: bool = field(default=False)
    #: Threads that run commands for async callers (the API): each waits for its group
    #: commit, so there are as many as commands in flight, not as many as cores.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(64, thread_name_prefix="concord-command")
    )

    def batch(
        self, requests: Iterable[CommandRequest]
    ) -> list[CommandResult | DomainError | StoreError]:
        """Decide every line against the stores plus earlier lines, then commit together.

        Per line: a line that fails its checks or its commit is reported and changes nothing;
        the others commit (grouped into as few transactions as the writer can). Lines are
        decided by the hub in the same order of checks as a single command; only the commit
        differs: the committer's ``submit``/``outcomes`` let later lines be decided while
        earlier ones are written.
        """
        overlay = BatchOverlay(self.hub.store)
        scope = BatchScope()
        seen: list[CommandRequest] = []
        results: list[CommandResult | DomainError | StoreError] = []
        indexes: list[int] = []
        submitted: list[Submitted] = []
        pending: list[Change] = []
        chunk = self.settings.group_commit_max
        for index, request in enumerate(requests):
            seen.append(request)
            try:
                change, result = self.hub.decide(request, overlay, brief=True)
            except DomainError as refused:
                results.append(refused)
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
                results[index] = StoreError(f"commit failed: {error}")
        return results

    def event_schemas(self) -> dict[str, Any]:
        """JSON Schema of every event type's envelope (as on NATS), keyed by type name."""
        entity_of = {cls.__module__: cls.entity for cls in AGGREGATES}
        return {
            cls.type_name(): envelope_schema(entity_of[cls.__module__], cls) for cls in EVENT_TYPES
        }

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.committer.close()
        for store in self.stores.values():
            store.close()
        self.datastore.close()


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
    try:
        with datastore.get_connection() as conn:
            create_schema(conn, settings.schema_name)
            # Each store creates its tables on construction; PostgreSQL's CREATE TABLE IF
            # NOT EXISTS races when several processes start at once (API workers, relay),
            # so the start-ups take turns (a session lock, on this pooled connection).
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
    committer = PostgresCommitter(stores, settings.schema_name, group_max=settings.group_commit_max)
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
    )
