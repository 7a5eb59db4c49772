"""The hub's use-case service: run one command, answer queries.

Order of checks for a command (the API has authenticated the caller and checked its scope):
ownership first (refused writes are recorded as conflicts; a replay must not hand a caller a
result its system may no longer write), then the idempotent replay, then existence and the
``If-Match`` version, then the aggregate's own rules. Only when all pass is anything
committed, and then all of the command's aggregates and its idempotency receipt commit in
one transaction. ``tests/unit/test_hub_order.py`` pins this order with in-memory ports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from hashlib import sha256
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from hub.application.commands import Catalogue, Command, CommandInput
from hub.application.personal import refuse_reserved
from hub.application.ports import (
    Change,
    ConflictRecord,
    EventStorePort,
    Receipt,
    ReceiptExists,
    StoragePorts,
)
from hub.application.unit import Unit
from hub.application.views import aggregate_view, event_envelope
from hub.domain.base import Aggregate
from hub.domain.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    DomainError,
    InvalidValue,
    NotFound,
    OwnershipViolation,
    VersionMismatch,
)
from hub.domain.identity import external_id, new_id
from hub.domain.ownership import ADMIN, OwnershipPolicy
from hub.domain.provenance import Provenance, Stamp, System


class IdempotencyMismatch(DomainError):
    """The idempotency key was used before with a different request."""

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
    """A command's answer: ``created`` when it made a new aggregate (the API says 201)."""

    created: bool
    body: dict[str, Any]
    replayed: bool = False


def merge_conflicts(
    found: list[tuple[int, ConflictRecord]],
) -> list[ConflictRecord]:
    """One record per distinct violation among ``(line, record)`` pairs, with how many lines
    repeated it and which: a migration file that writes an unowned field on 10,000 lines
    is one problem to resolve, not 10,000."""
    merged: dict[tuple[Any, ...], ConflictRecord] = {}
    for line, record in found:
        key = record.same_violation()
        first = merged.get(key)
        if first is None:
            merged[key] = replace(record, occurrences=1, lines=(line,))
        else:
            merged[key] = replace(
                first, occurrences=first.occurrences + 1, lines=(*first.lines, line)
            )
    return list(merged.values())


def _invalid_value(invalid: ValidationError) -> InvalidValue:
    """A value object refused a value a command computed (a total beyond the bounds): the
    same 422 as a refused input, naming the field, rather than an unhandled error."""
    first = invalid.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or None
    return InvalidValue(str(first.get("msg", "invalid value")), field=field)


class UnknownCommand(DomainError):
    code = "unknown-command"


def utc_now() -> datetime:
    return datetime.now(UTC)


def no_trace_context() -> str | None:
    """Default trace context source: none (the composition root passes OpenTelemetry's)."""
    return None


class Hub:
    """Runs commands from the catalogue and answers queries about aggregates."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        policy: OwnershipPolicy,
        ports: StoragePorts,
        aggregates: dict[str, type[Aggregate]],
        clock: Callable[[], datetime] = utc_now,
        trace_context: Callable[[], str | None] = no_trace_context,
    ) -> None:
        """``trace_context`` returns the caller's W3C ``traceparent`` (stamped on every
        event so NATS consumers continue the request's trace); tracing itself stays
        outside the hub."""
        self.catalogue = catalogue
        self.policy = policy
        self.ports = ports
        self.store = ports.events
        self.aggregates = aggregates
        self.clock = clock
        self.trace_context = trace_context

    # -- commands -----------------------------------------------------------------------

    def decide(
        self,
        request: CommandRequest,
        store: EventStorePort | None = None,
        *,
        brief: bool = False,
        conflicts: list[ConflictRecord] | None = None,
    ) -> tuple[Change | None, CommandResult]:
        """Check and decide a command without committing it (bulk ingest commits many at
        once): ownership, then replay (no change: ``None``), then the command itself.

        ``store`` lets bulk ingest read through its own not-yet-committed aggregates;
        ``brief`` answers with id and version only (bulk ingest reports no more per line),
        unless an idempotency key needs the full answer remembered. ``conflicts`` collects
        ownership refusals instead of recording each at once (see :func:`merge_conflicts`).
        """
        spec = self.spec(request.entity, request.name)
        self._check_ownership(spec, request, conflicts)
        replay = self.replay(request)
        if replay is not None:
            return None, replay
        return self._decide(spec, request, store, brief)

    def prepare(
        self, request: CommandRequest, store: EventStorePort | None = None
    ) -> tuple[Change, CommandResult]:
        """Decide a command ignoring any stored receipt (tests commit the change themselves)."""
        spec = self.spec(request.entity, request.name)
        self._check_ownership(spec, request)
        return self._decide(spec, request, store, brief=False)

    def _decide(
        self, spec: Command, request: CommandRequest, store: EventStorePort | None, brief: bool
    ) -> tuple[Change, CommandResult]:
        stamp = Stamp(
            provenance=self._provenance(request),
            recorded_at=self.clock(),
            traceparent=self.trace_context(),
        )
        _check_source_time(stamp)
        refuse_reserved(request.entity, request.payload)
        unit = Unit(store or self.store)
        try:
            aggregate = self._run(spec, request, stamp, unit)
        except ValidationError as invalid:
            raise _invalid_value(invalid) from None
        except ArithmeticError as overflow:  # decimal.InvalidOperation, Overflow
            raise InvalidValue(f"a number is out of range ({overflow})") from None
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
                created=spec.creates,
                body=body,
            )
        return Change(aggregates=changed, receipt=receipt), CommandResult(spec.creates, body)

    def execute(self, request: CommandRequest) -> CommandResult:
        """Run one command: replay, or decide and commit atomically."""
        change, result = self.decide(request)
        if change is None:
            return result
        try:
            self.ports.commits.commit(change)
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
        existing = (  # deterministic: the twin
            request.aggregate_id or spec.natural_id(request.payload) or self._new_id(request)
        )
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
        receipt = self.ports.receipts.find_receipt(
            request.caller.client_id, request.idempotency_key
        )
        if receipt is None:
            return None
        if receipt.request_hash != request.fingerprint():
            raise IdempotencyMismatch(
                f"Idempotency-Key {request.idempotency_key!r} was already used for a different "
                "request; use a new key for a new request",
                field="Idempotency-Key",
            )
        return CommandResult(receipt.created, receipt.body, replayed=True)

    def spec(self, entity: str, name: str) -> Command:
        spec = self.catalogue.get(entity, name)
        if spec is None:
            known = ", ".join(s.name for s in self.catalogue.for_entity(entity)) or "none"
            raise UnknownCommand(
                f"{entity} has no command {name!r} (known: {known})", field="command"
            )
        return spec

    def _run(self, spec: Command, request: CommandRequest, stamp: Stamp, unit: Unit) -> Aggregate:
        """Create or load the aggregate and run the command on it."""
        if spec.creates:
            aggregate_id = (
                request.aggregate_id or spec.natural_id(request.payload) or self._new_id(request)
            )
            aggregate = spec.run_create(stamp, aggregate_id, request.payload, unit)
            unit.add(aggregate)
        else:
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
            spec.run_handle(aggregate, stamp, request.payload, unit)
        return aggregate

    def _check_ownership(
        self,
        spec: Command,
        request: CommandRequest,
        collect: list[ConflictRecord] | None = None,
    ) -> None:
        try:
            self.policy.check(
                request.caller.system, spec.entity, spec.fields_written(request.payload)
            )
        except OwnershipViolation as refused:
            record = ConflictRecord(
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
            if collect is None:
                self.ports.conflicts.record_conflict(record)
            else:
                collect.append(record)
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

    def get(
        self,
        entity: str,
        aggregate_id: UUID,
        as_of: datetime | None = None,
        business_date: date | None = None,
    ) -> dict[str, Any]:
        """Current state, or the state as it was at ``as_of`` (recorded time), as in force on
        ``business_date`` (default: the day of ``as_of``, or today by the hub's clock)."""
        if as_of is None:
            aggregate = self.store.load(entity, aggregate_id)
        else:
            aggregate = self.store.load_as_of(entity, aggregate_id, as_of)
        if aggregate is None:
            when = f" at {as_of.isoformat()}" if as_of else ""
            raise NotFound(f"no {entity} with id {aggregate_id}{when}", field="id")
        day = business_date or (as_of or self.clock()).astimezone(UTC).date()
        return aggregate_view(aggregate.on_business_date(day))

    def history(
        self, entity: str, aggregate_id: UUID, *, after_version: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Envelopes of the events after ``after_version`` (a page of at most ``limit``).

        An empty page past the end is an answer; an aggregate that does not exist is not."""
        events = self.store.history(entity, aggregate_id, after_version=after_version, limit=limit)
        if not events and not (after_version and self.store.history(entity, aggregate_id, limit=1)):
            raise NotFound(f"no {entity} with id {aggregate_id}", field="id")
        return [event_envelope(entity, e) for e in events]

    def lookup(self, system: str, entity: str, external: str) -> UUID:
        found = self.ports.xref.lookup(system, entity, external)
        if found is None:
            raise NotFound(f"no {entity} known to {system} as {external!r}", field="external_id")
        return found


#: How far a source's clock may run ahead of the hub's (``Concord-Occurred-At`` after the
#: recording time). Why bounded: an older update never overwrites a newer one, so a source
#: time years ahead would make every real update of that field "stale" until that day.
MAX_SOURCE_CLOCK_AHEAD = timedelta(minutes=5)


def _check_source_time(stamp: Stamp) -> None:
    occurred = stamp.provenance.occurred_at
    if occurred is not None and occurred > stamp.recorded_at + MAX_SOURCE_CLOCK_AHEAD:
        raise InvalidValue(
            f"occurred_at {occurred.isoformat()} is later than the time it is recorded "
            f"({stamp.recorded_at.isoformat()}) by more than "
            f"{int(MAX_SOURCE_CLOCK_AHEAD.total_seconds())} s; a source cannot report "
            "the future",
            field="occurred_at",
        )
