"""The hub's use-case service: run one command, answer queries.

Order of checks for a command, cheapest and least surprising first: idempotent replay,
ownership (refused writes are recorded as conflicts), existence and ``If-Match`` version,
then the aggregate's own rules. Only when all pass is anything committed, and then all of
the command's aggregates and its idempotency receipt commit in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any
from uuid import UUID

import orjson
from opentelemetry import propagate

from hub.application.commands import Catalogue, CommandInput, CommandSpec
from hub.application.ports import (
    Change,
    CommitPort,
    ConflictRecord,
    EventStorePort,
    Receipt,
    ReceiptExists,
)
from hub.application.unit import Unit
from hub.application.views import aggregate_view, event_envelope
from hub.domain.base import Aggregate
from hub.domain.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    DomainError,
    NotFound,
    OwnershipViolation,
    VersionMismatch,
)
from hub.domain.identity import external_id, new_id
from hub.domain.ownership import ADMIN, OwnershipPolicy
from hub.domain.provenance import Provenance, Stamp, System


class IdempotencyMismatch(DomainError):
    """The idempotency key was used before with a different request."""

    status = 422
    code = "idempotency-key-reused"


_SOURCE: dict[str, System] = {s.value: s for s in System} | {ADMIN: System.API}


@dataclass(frozen=True)
class Caller:
    """An authenticated API client, bound to one system."""

    client_id: str
    system: str  # crm / erp / billing / admin
    scopes: frozenset[str] = frozenset({"read", "write"})

    @property
    def source_system(self) -> System:
        return _SOURCE[self.system]


@dataclass(frozen=True)
class Origin:
    """Provenance the caller supplies about the source record and transaction."""

    source_record_id: str | None = None
    source_event_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class CommandRequest:
    entity: str
    name: str
    payload: CommandInput
    caller: Caller
    aggregate_id: UUID | None = None
    origin: Origin = field(default_factory=Origin)
    expected_version: int | None = None
    idempotency_key: str | None = None

    def fingerprint(self) -> str:
        """Hash of everything that makes two requests "the same" for idempotency."""
        body = orjson.dumps(
            {
                "entity": self.entity,
                "name": self.name,
                "id": str(self.aggregate_id) if self.aggregate_id else None,
                "payload": self.payload.model_dump(mode="json"),
                "if_match": self.expected_version,
            },
            option=orjson.OPT_SORT_KEYS,
        )
        return sha256(body).hexdigest()


@dataclass(frozen=True)
class CommandResult:
    status: int
    body: dict[str, Any]
    replayed: bool = False


class UnknownCommand(DomainError):
    status = 404
    code = "unknown-command"


def _current_traceparent() -> str | None:
    """The active trace context (the API request's span), if tracing is on."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Hub:
    """Runs commands from the catalogue and answers queries about aggregates."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        policy: OwnershipPolicy,
        store: EventStorePort,
        committer: CommitPort,
        aggregates: dict[str, type[Aggregate]],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.catalogue = catalogue
        self.policy = policy
        self.store = store
        self.committer = committer
        self.aggregates = aggregates
        self.clock = clock

    # -- commands -----------------------------------------------------------------------

    def prepare(
        self,
        request: CommandRequest,
        store: EventStorePort | None = None,
        *,
        brief: bool = False,
    ) -> tuple[Change, CommandResult]:
        """Decide a command without committing it (batch ingest commits many at once).

        ``store`` lets bulk ingest read through its own not-yet-committed aggregates;
        ``brief`` answers with id and version only (bulk ingest reports no more per line),
        unless an idempotency key needs the full answer remembered.
        """
        spec = self.spec(request.entity, request.name)
        self._check_ownership(spec, request)
        stamp = Stamp(
            provenance=self._provenance(request),
            recorded_at=self.clock(),
            traceparent=_current_traceparent(),
        )
        unit = Unit(store or self.store)
        if spec.create is not None:
            aggregate_id = request.aggregate_id or self._new_id(request)
            aggregate = spec.create(stamp, aggregate_id, request.payload, unit)
            unit.add(aggregate)
            status = 201
        else:
            assert spec.handle is not None
            if request.aggregate_id is None:
                raise NotFound("this command needs an aggregate id", field="id")
            cls = self.aggregates[request.entity]
            aggregate = unit.get(cls, request.aggregate_id, field="id")
            if request.expected_version is not None and (
                aggregate.version != request.expected_version
            ):
                raise VersionMismatch(
                    f"{request.entity} {aggregate.id} is at version {aggregate.version}, "
                    f"not {request.expected_version}; re-read it and retry",
                    field="If-Match",
                )
            spec.handle(aggregate, stamp, request.payload, unit)
            status = 200
        changed = unit.changed()
        if brief and request.idempotency_key is None:
            body: dict[str, Any] = {
                "id": str(aggregate.id),
                "entity": aggregate.entity,
                "version": aggregate.version,
            }
        else:
            body = aggregate_view(aggregate)
            body["events"] = [
                event_envelope(a.entity, e) for a in changed for e in a.pending_events
            ]
        receipt = None
        if request.idempotency_key is not None:
            receipt = Receipt(
                client_id=request.caller.client_id,
                key=request.idempotency_key,
                request_hash=request.fingerprint(),
                status=status,
                body=body,
            )
        return Change(aggregates=changed, receipt=receipt), CommandResult(status, body)

    def execute(self, request: CommandRequest) -> CommandResult:
        """Run one command: replay, or decide and commit atomically."""
        replay = self.replay(request)
        if replay is not None:
            return replay
        change, result = self.prepare(request)
        try:
            self.committer.commit(change)
        except ConcurrencyConflict as conflict:
            raise self.explain_conflict(request, conflict) from None
        except ReceiptExists:
            replay = self.replay(request)
            if replay is None:  # pragma: no cover - the receipt was just stored
                raise
            return replay
        return result

    def explain_conflict(self, request: CommandRequest, conflict: DomainError) -> DomainError:
        """A version clash on a create means the id exists already (re-ingested record)."""
        spec = self.catalogue.get(request.entity, request.name)
        if spec is None or not spec.creates or not isinstance(conflict, ConcurrencyConflict):
            return conflict
        record = request.origin.source_record_id
        source = f" (source record {record!r})" if record else ""
        existing = request.aggregate_id or self._new_id(request)  # deterministic: the twin
        return AlreadyExists(
            f"this {request.entity} exists already{source} as {existing}; send commands to "
            "it instead",
            field="id",
            existing=(request.entity, existing),
        )

    def replay(self, request: CommandRequest) -> CommandResult | None:
        """The stored result for a repeated idempotency key, or None for a new key."""
        if request.idempotency_key is None:
            return None
        receipt = self.committer.find_receipt(request.caller.client_id, request.idempotency_key)
        if receipt is None:
            return None
        if receipt.request_hash != request.fingerprint():
            raise IdempotencyMismatch(
                f"Idempotency-Key {request.idempotency_key!r} was already used for a different "
                "request; use a new key for a new request",
                field="Idempotency-Key",
            )
        return CommandResult(receipt.status, receipt.body, replayed=True)

    def spec(self, entity: str, name: str) -> CommandSpec:
        spec = self.catalogue.get(entity, name)
        if spec is None:
            known = ", ".join(s.name for s in self.catalogue.for_entity(entity)) or "none"
            raise UnknownCommand(
                f"{entity} has no command {name!r} (known: {known})", field="command"
            )
        return spec

    def _check_ownership(self, spec: CommandSpec, request: CommandRequest) -> None:
        try:
            self.policy.check(
                request.caller.system, spec.entity, spec.fields_written(request.payload)
            )
        except OwnershipViolation as refused:
            self.committer.record_conflict(
                ConflictRecord(
                    client_id=request.caller.client_id,
                    system=request.caller.system,
                    entity=spec.entity,
                    aggregate_id=request.aggregate_id,
                    command=spec.name,
                    field=refused.field or "",
                    owner=refused.owner,
                    payload=request.payload.model_dump(mode="json"),
                    at=self.clock(),
                )
            )
            raise

    def _provenance(self, request: CommandRequest) -> Provenance:
        origin = request.origin
        return Provenance(
            source_system=request.caller.source_system,
            source_record_id=origin.source_record_id,
            source_event_id=origin.source_event_id,
            correlation_id=origin.correlation_id,
            causation_id=origin.causation_id,
            actor=request.caller.client_id,
            occurred_at=origin.occurred_at,
        )

    @staticmethod
    def _new_id(request: CommandRequest) -> UUID:
        record = request.origin.source_record_id
        if record:
            return external_id(request.caller.source_system.value, request.entity, record)
        return new_id()

    # -- queries ------------------------------------------------------------------------

    def get(self, entity: str, aggregate_id: UUID, as_of: datetime | None = None) -> dict[str, Any]:
        """Current state, or the state as it was at ``as_of`` (recorded time)."""
        if as_of is None:
            aggregate = self.store.load(entity, aggregate_id)
        else:
            aggregate = None
            for event in self.store.history(entity, aggregate_id):
                if event.timestamp > as_of:
                    break
                aggregate = event.mutate(aggregate)
        if aggregate is None:
            when = f" at {as_of.isoformat()}" if as_of else ""
            raise NotFound(f"no {entity} with id {aggregate_id}{when}", field="id")
        return aggregate_view(aggregate)

    def history(self, entity: str, aggregate_id: UUID) -> list[dict[str, Any]]:
        events = self.store.history(entity, aggregate_id)
        if not events:
            raise NotFound(f"no {entity} with id {aggregate_id}", field="id")
        return [event_envelope(entity, e) for e in events]

    def lookup(self, system: str, entity: str, external: str) -> UUID:
        found = self.committer.lookup(system, entity, external)
        if found is None:
            raise NotFound(f"no {entity} known to {system} as {external!r}", field="external_id")
        return found
