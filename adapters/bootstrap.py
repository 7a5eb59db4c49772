"""Composition root: builds the whole hub from one :class:`Settings`.

Nothing else creates connections or reads settings; tests build a runtime with their own
database schema, and the CLI builds one after starting the embedded servers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from pydantic import ValidationError

from adapters.keys import KeyRing
from adapters.postgres.committer import BatchScope, PostgresCommitter, Submitted
from adapters.postgres.overlay import BatchOverlay
from adapters.postgres.schema import create_schema
from adapters.postgres.store import ApplicationEventStore
from adapters.settings import Settings
from hub.application.catalogue import build_catalogue
from hub.application.ports import Change, ConflictRecord, ReceiptExists
from hub.application.service import CommandRequest, CommandResult, Hub, merge_conflicts
from hub.application.stores import Store, store_class
from hub.application.views import envelope_schema
from hub.domain.catalog import AGGREGATES, EVENT_TYPES
from hub.domain.errors import DomainError
from hub.domain.ownership import OwnershipPolicy

log = logging.getLogger("concord.batch")

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


class LineFailed(DomainError):
    """A batch line failed for a reason that is not the client's (a store error): its
    details go to the log under a reference, never into the response."""

    status = 500
    code = "internal-error"


def _line_failed(error: Exception) -> LineFailed:
    reference = uuid.uuid4().hex[:12]
    log.error("batch line failed (%s)", reference, exc_info=error)
    return LineFailed(f"the line could not be stored; it was logged as {reference}")


@dataclass
class Runtime:
    """Everything a running hub holds; close it to release connections and threads."""

    settings: Settings
    hub: Hub
    stores: dict[str, Store]
    committer: PostgresCommitter
    policy: OwnershipPolicy
    keys: KeyRing
    closed: bool = field(default=False)
    #: Threads that run commands for async callers (the API): each waits for its group
    #: commit, so there are as many as commands in flight, not as many as cores.
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(64, thread_name_prefix="concord-command")
    )

    def batch(
        self,
        requests: Iterable[CommandRequest],
        line_of: Callable[[int], int] = lambda index: index + 1,
    ) -> list[CommandResult | DomainError]:
        """Decide every line against the stores plus earlier lines, then commit together.

        Per line: a line that fails its checks or its commit is reported and changes nothing;
        the others commit (grouped into as few transactions as the writer can). Ownership
        conflicts are recorded once per distinct violation, with the lines (``line_of`` maps
        a request's index to its line number) that repeated it.
        """
        overlay = BatchOverlay(self.hub.store)
        scope = BatchScope()
        seen: list[CommandRequest] = []
        results: list[CommandResult | DomainError] = []
        indexes: list[int] = []
        submitted: list[Submitted] = []
        pending: list[Change] = []
        chunk = self.settings.group_commit_max
        conflicts: list[tuple[int, ConflictRecord]] = []
        for index, request in enumerate(requests):
            seen.append(request)
            found: list[ConflictRecord] = []
            try:
                replay = self.hub.replay(request)
                if replay is not None:
                    results.append(replay)
                    continue
                change, result = self.hub.prepare(request, overlay, brief=True, conflicts=found)
            except DomainError as refused:
                results.append(refused)
                conflicts += [(index, record) for record in found]
                continue
            overlay.remember(list(change.aggregates))
            indexes.append(index)
            pending.append(change)
            results.append(result)
            if len(pending) >= chunk:  # the writer commits while later lines are decided
                submitted += self.committer.submit(pending, scope)
                pending = []
        submitted += self.committer.submit(pending, scope)
        for record in merge_conflicts([(line_of(i), record) for i, record in conflicts]):
            self.committer.record_conflict(record)
        outcomes = self.committer.outcomes(submitted)
        for index, error in zip(indexes, outcomes, strict=True):
            if isinstance(error, ReceiptExists):
                replay = self.hub.replay(seen[index])
                if replay is not None:
                    results[index] = replay
            elif isinstance(error, DomainError):
                results[index] = self.hub.explain_conflict(seen[index], error)
            elif error is not None:
                results[index] = _line_failed(error)
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


def open_runtime(settings: Settings) -> Runtime:
    """Connect to PostgreSQL, create what is missing, and wire the hub."""
    if not settings.database_url:
        raise ConfigurationError(
            "no database: set CONCORD_DATABASE_URL, or run `concord serve` to start the "
            "embedded PostgreSQL"
        )
    policy = load_policy(settings.ownership_file)
    env = settings.postgres_env(settings.database_url)
    stores: dict[str, Store] = {}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        create_schema(conn, settings.schema_name)
        # Each store creates its tables on construction; PostgreSQL's CREATE TABLE IF NOT
        # EXISTS races when several processes start at once (API workers, relay), so the
        # start-ups take turns.
        conn.execute("SELECT pg_advisory_lock(hashtext('concord-stores'))")
        try:
            for aggregate_class in AGGREGATES:
                stores[aggregate_class.entity] = store_class(aggregate_class)(env=env)
        except Exception:
            for store in stores.values():
                store.close()
            raise
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('concord-stores'))")
    committer = PostgresCommitter(
        stores,
        settings.schema_name,
        group_max=settings.group_commit_max,
        max_event_bytes=settings.max_event_bytes,
    )
    hub = Hub(
        catalogue=build_catalogue(),
        policy=policy,
        store=ApplicationEventStore(stores),
        committer=committer,
        aggregates={cls.entity: cls for cls in AGGREGATES},
    )
    return Runtime(
        settings=settings,
        hub=hub,
        stores=stores,
        committer=committer,
        policy=policy,
        keys=KeyRing.load(settings),
    )
