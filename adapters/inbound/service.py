"""The inbound boundary's one way of handling every system's deliveries.

Per source event, in this order: verify the delivery (nothing is stored for a bad
signature), log it as received, translate it (pure), then either hold it for the dependency
it names, ignore it, or decide its canonical commands exactly as the API would (ownership,
merges, stale updates, the aggregates' rules) and commit all their events together with one
receipt keyed by the source's event id. That receipt is the *exactly one effect*: it commits
in the same transaction as the events, so of two concurrent deliveries of one event one
commits and the other finds the receipt. An ownership refusal inside a delivery is recorded
as a conflict and the rest of the delivery goes on; any other refusal means the source says
something that cannot be true, and nothing of the event is committed.

After every applied event, held deliveries whose dependency has now arrived are applied, in
the order they were received; whether any delivery is held at all is asked in the statement
that settles the applied one, so the search costs nothing while nothing is held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from adapters.inbound.log import FINAL, Delivery, InboundLog
from adapters.inbound.matching import NO_MATCH, Candidate, MatchResult, decide
from adapters.inbound.matching import Known as KnownCustomer
from adapters.inbound.mirror import MirrorStore, MirrorUpdate
from adapters.inbound.model import Ref, ReviewRequest, SourceEvent, Step, Translation
from adapters.inbound.reviews import ReviewQueue, review_ref
from adapters.inbound.source import Incoming, Malformed, SourceAdapter, Unverified
from adapters.postgres.index import customer_of
from adapters.postgres.match_keys import MatchKeys
from adapters.postgres.overlay import BatchOverlay
from hub.application.ports import Change, CommitPort, ConflictRecord, Receipt, ReceiptExists
from hub.application.service import (
    MAX_SOURCE_CLOCK_AHEAD,
    Caller,
    CommandRequest,
    Hub,
    Origin,
    merge_conflicts,
)
from hub.domain.base import Aggregate
from hub.domain.errors import ConcurrencyConflict, DomainError, NotFound, OwnershipViolation

log = logging.getLogger("concord.inbound")

#: A concurrent writer moved an aggregate the event touches: decide again, a few times.
_CONCURRENCY_RETRIES = 5


class UnknownSystem(Exception):
    """No adapter of that name (the path names a system Concord does not speak)."""


class NotConfigured(Exception):
    """The system has no secret configured: its webhooks cannot be verified."""


@dataclass(frozen=True)
class Outcome:
    """What became of one source event of a delivery."""

    event_id: str
    delivery_id: int
    status: str  # applied / duplicate / held / ignored / refused
    detail: dict[str, Any] | None = None
    waiting_for: Ref | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    conflicts: int = 0
    wakes: bool = False
    """It was applied while some delivery is held: look for what it may release."""

    def view(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "delivery_id": self.delivery_id,
            "status": self.status,
        }
        if self.detail is not None:
            body["detail"] = self.detail
        if self.waiting_for is not None:
            body["waiting_for"] = self.waiting_for.describe()
        if self.events:
            body["events"] = self.events
        if self.conflicts:
            body["conflicts"] = self.conflicts
        return body


class _HubKnown:
    """The hub as one source's translator may see it: cross-reference lookups, current
    state, customer matching and reviews, and that source's record mirrors."""

    def __init__(self, service: InboundService, source: str) -> None:
        self.hub = service.hub
        self.service = service
        self.source = source
        #: Customers the translation looked at: the delivery is about them (erasure).
        self.customers: list[UUID] = []

    def mirror(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        mirrors = self.service.mirrors
        return None if mirrors is None else mirrors.get(self.source, object_name, record_id)

    def lookup(self, ref: Ref) -> UUID | None:
        found = self.hub.ports.xref.lookup(ref.system, ref.entity, ref.external_id)
        if found is not None and ref.entity == "customer":
            self.customers.append(found)
        return found

    def state(self, entity: str, aggregate_id: UUID) -> dict[str, Any] | None:
        try:
            view = self.hub.get(entity, aggregate_id)
        except NotFound:
            return None
        if entity == "customer":
            self.customers.append(aggregate_id)
        return {**view["state"], "id": view["id"], "version": view["version"]}

    def match(self, candidate: Candidate) -> MatchResult:
        keys = self.service.match_keys
        if keys is None:
            return NO_MATCH
        known = []
        for customer_id in keys.candidates(candidate):
            state = self.state("customer", customer_id)
            if state is None or state.get("erased") or state.get("merged_into"):
                continue
            known.append(
                KnownCustomer(
                    customer_id, state["legal_name"], state.get("web_domain"), state.get("tax_id")
                )
            )
        return decide(candidate, known)

    def decision(self, external_id: str) -> tuple[str, UUID | None] | None:
        reviews = self.service.reviews
        found = None if reviews is None else reviews.decision(self.source, external_id)
        return None if found is None else (found.status, found.customer_id)


def updates(found: MirrorUpdate | Sequence[MirrorUpdate] | None) -> Sequence[MirrorUpdate]:
    """What an adapter's ``mirror`` answered, as a sequence."""
    if found is None:
        return ()
    return (found,) if isinstance(found, MirrorUpdate) else found


class InboundService:
    """Receives deliveries for every configured source system."""

    def __init__(
        self,
        *,
        hub: Hub,
        commits: CommitPort,
        log: InboundLog,
        adapters: Mapping[str, SourceAdapter],
        secrets: Mapping[str, tuple[str, ...]],
        mirrors: MirrorStore | None = None,
        match_keys: MatchKeys | None = None,
        reviews: ReviewQueue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.hub = hub
        self.commits = commits
        self.log = log
        self.adapters = dict(adapters)
        self.secrets = dict(secrets)
        self.clock = clock
        self._local = threading.local()  # per thread: deliveries run concurrently
        self.mirrors = mirrors
        self.match_keys = match_keys
        self.reviews = reviews

    def adapter(self, name: str) -> SourceAdapter:
        found = self.adapters.get(name)
        if found is None:
            known = ", ".join(sorted(self.adapters))
            raise UnknownSystem(f"Concord has no inbound adapter {name!r} (known: {known})")
        return found

    @property
    def _customers_seen(self) -> list[UUID]:
        """Customers the current thread's translation looked at (see ``_HubKnown``)."""
        seen: list[UUID] = getattr(self._local, "customers", [])
        return seen

    def _known(self, source: str) -> _HubKnown:
        return _HubKnown(self, source)

    # -- deliveries -----------------------------------------------------------------

    def receive(self, name: str, incoming: Incoming) -> list[Outcome]:
        """Verify, log and apply one HTTP delivery (one or several source events)."""
        adapter = self.adapter(name)
        secrets = self.secrets.get(name)
        if not secrets:
            raise NotConfigured(
                f"no secret is configured for {name} webhooks: set CONCORD_WEBHOOK_SECRETS "
                f"to include '{name}=<secret>'"
            )
        try:
            verification = adapter.verify(incoming, secrets)
        except Unverified:
            raise
        except Exception as odd:  # a header no real signature has (encoding, length)
            log.info("inbound %s verification failed on a malformed header: %r", name, odd)
            raise Unverified(f"the {name} signature or credentials are malformed") from None
        events = adapter.split(incoming)
        for index, event in enumerate(events):
            _check_source_time(event, incoming.received_at, index, len(events))
        outcomes = []
        for event in events:
            delivery = self.log.record(name, event, incoming.headers, verification)
            # What the log holds is what runs: a redelivery under the same event id (a
            # retry counter changed, another CDC channel) never runs other bytes.
            if delivery.body_sha256 != sha256(event.raw).hexdigest():
                event = delivery.source_event() or event
            if self.mirrors is not None and delivery.status not in FINAL:
                for update in updates(adapter.mirror(event)):
                    self.mirrors.merge(name, update)  # idempotent: a retry merges it again
            outcomes.append(self._run(adapter, delivery, event))
        return outcomes

    def _run(self, adapter: SourceAdapter, delivery: Delivery, event: SourceEvent) -> Outcome:
        if delivery.status in FINAL:
            return Outcome(event.event_id, delivery.id, "duplicate")
        outcome = self.process(adapter, delivery, event)
        if outcome.wakes:
            try:
                self.release()
            except Exception:  # committed already: the background releaser retries
                log.exception("releasing held deliveries after %s failed", delivery.id)
        return outcome

    def process(self, adapter: SourceAdapter, delivery: Delivery, event: SourceEvent) -> Outcome:
        """Translate and apply one logged event (also used by release and replay)."""
        caller = Caller(client_id=f"inbound:{adapter.name}", system=adapter.system)
        # A delivery this call has just logged has no receipt yet (the receipt commits
        # only after its log row exists): no need to look.
        if not delivery.fresh and self._applied(caller, event):
            self.log.settle(delivery.id, "applied")
            return Outcome(event.event_id, delivery.id, "duplicate")
        for attempt in range(_CONCURRENCY_RETRIES):
            try:
                return self._attempt(adapter, caller, delivery, event)
            except ConcurrencyConflict:
                if attempt == _CONCURRENCY_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _applied(self, caller: Caller, event: SourceEvent) -> bool:
        return self.hub.ports.receipts.find_receipt(caller.client_id, event.event_id) is not None

    def _attempt(
        self, adapter: SourceAdapter, caller: Caller, delivery: Delivery, event: SourceEvent
    ) -> Outcome:
        known = self._known(adapter.name)
        self._local.customers = known.customers
        try:
            translation = adapter.translate(event, known)
        except Malformed as bad:
            return self._refuse(delivery, event, "malformed-payload", bad.message, bad.field)
        except (ArithmeticError, ValueError, RecursionError) as odd:  # a value beyond reason
            return self._refuse(
                delivery, event, "untranslatable", f"a value could not be read: {odd}", "body"
            )
        if translation.steps == () and self._applied(caller, event):
            # A concurrent delivery of this very event committed while we translated: what
            # we saw (e.g. "issued already") is its effect. Its receipt committed with it.
            self.log.settle(delivery.id, "applied")
            return Outcome(event.event_id, delivery.id, "duplicate")
        if translation.ignored is not None:
            self.log.settle(
                delivery.id,
                "ignored",
                {"reason": translation.ignored},
                customers=self._customers_seen,
            )
            return Outcome(event.event_id, delivery.id, "ignored", {"reason": translation.ignored})
        if translation.waits_for is not None:
            return self._hold(delivery, event, translation.waits_for)
        if translation.review is not None:
            return self._review(adapter, delivery, event, translation.review)
        try:
            aggregates, events, conflicts = self._decide(caller, delivery, event, translation)
        except DomainError as refused:
            return self._refuse(delivery, event, refused.code, str(refused), refused.field)
        receipt = Receipt(
            client_id=caller.client_id,
            key=event.event_id,
            request_hash=sha256(event.raw).hexdigest(),
            created=False,
            body={"delivery_id": delivery.id, "events": events},
        )
        try:
            self.commits.commit(Change(aggregates=aggregates, receipt=receipt))
        except ReceiptExists:
            self.log.settle(delivery.id, "applied")
            return Outcome(event.event_id, delivery.id, "duplicate")
        except ConcurrencyConflict:
            raise
        except DomainError as refused:
            return self._refuse(delivery, event, refused.code, str(refused), refused.field)
        wakes = self.log.settle(
            delivery.id,
            "applied",
            {"events": len(events)} if events else None,
            customers=[*_customers(aggregates), *self._customers_seen],
            ask_held=True,
        )
        return Outcome(
            event.event_id,
            delivery.id,
            "applied",
            events=events,
            conflicts=conflicts,
            wakes=wakes,
        )

    def _decide(
        self, caller: Caller, delivery: Delivery, event: SourceEvent, translation: Translation
    ) -> tuple[list[Aggregate], list[dict[str, Any]], int]:
        """Every step decided against the stores plus the earlier steps; ownership refusals
        are recorded and skipped, any other refusal raises."""
        overlay = BatchOverlay(self.hub.store)
        changed: list[Aggregate] = []
        envelopes: list[dict[str, Any]] = []
        found: list[tuple[int, ConflictRecord]] = []
        for index, step in enumerate(translation.steps):
            request = self._request(caller, delivery, event, step)
            collected: list[ConflictRecord] = []
            try:
                change, result = self.hub.decide(request, overlay, conflicts=collected)
            except OwnershipViolation:
                found += [(index + 1, record) for record in collected]
                continue
            if change is None:  # pragma: no cover - steps carry no idempotency key
                continue
            overlay.remember(list(change.aggregates))
            changed += change.aggregates
            envelopes += [
                {"type": e["type"], "aggregate_id": e["aggregate_id"], "version": e["version"]}
                for e in result.body.get("events", [])
            ]
        for record in merge_conflicts(found):
            self.hub.ports.conflicts.record_conflict(record)
        return changed, envelopes, len(found)

    def _request(
        self, caller: Caller, delivery: Delivery, event: SourceEvent, step: Step
    ) -> CommandRequest:
        spec = self.hub.spec(step.entity, step.command)
        try:
            payload = spec.input_model.model_validate(step.data)
        except ValidationError as invalid:
            first = invalid.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise Refusal(
                f"{step.entity}.{step.command}: {where}: {first.get('msg', 'invalid')}",
                field=f"{step.entity}.{where}",
            ) from None
        return CommandRequest(
            entity=step.entity,
            name=step.command,
            payload=payload,
            caller=caller,
            aggregate_id=step.target,
            origin=Origin(
                source_record_id=step.source_record_id,
                source_event_id=event.event_id,
                correlation_id=step.correlation_id,
                causation_id=f"inbound:{delivery.id}",
                occurred_at=step.occurred_at or event.occurred_at,
            ),
        )

    def _hold(self, delivery: Delivery, event: SourceEvent, ref: Ref) -> Outcome:
        """Park the event until ``ref`` is known; if it arrived meanwhile, run it now."""
        self.log.settle(
            delivery.id,
            "held",
            {"waiting_for": ref.describe()},
            waiting_for=ref,
            customers=self._customers_seen,
        )
        if self._known(delivery.system).lookup(ref) is not None:  # arrived meanwhile
            self.release()
            current = self.log.get(delivery.id)
            if current is not None and current.status != "held":
                return Outcome(event.event_id, delivery.id, current.status, current.detail)
        return Outcome(event.event_id, delivery.id, "held", waiting_for=ref)

    def _review(
        self, adapter: SourceAdapter, delivery: Delivery, event: SourceEvent, ask: ReviewRequest
    ) -> Outcome:
        """Hold the event for a person's decision on an uncertain customer match."""
        if self.reviews is None:
            return self._refuse(
                delivery, event, "match-review-unavailable", "no review queue", None
            )
        self.reviews.open(adapter.name, ask.external_id, delivery.id, list(ask.candidates))
        return self._hold(delivery, event, review_ref(adapter.name, ask.external_id))

    def _refuse(
        self, delivery: Delivery, event: SourceEvent, code: str, message: str, where: str | None
    ) -> Outcome:
        detail = {"code": code, "detail": message, "field": where}
        log.warning("inbound %s %s refused: %s", delivery.system, event.event_id, message)
        self.log.settle(delivery.id, "refused", detail, customers=self._customers_seen)
        return Outcome(event.event_id, delivery.id, "refused", detail)

    # -- held and replay ------------------------------------------------------------

    def release(self) -> list[Outcome]:
        """Apply held deliveries whose dependency has arrived, oldest first, until none is
        left (a released one may be the dependency of another). Each is claimed first: one
        another releaser is re-running is left to it (see ``InboundLog.claim_released``)."""
        outcomes: list[Outcome] = []
        while True:
            ready = self.log.claim_released()
            progressed = False
            for delivery in ready:
                outcome = self._again(delivery)
                if outcome is not None:
                    outcomes.append(outcome)
                    progressed = progressed or outcome.status != "held"
            if not progressed:
                return outcomes

    def release_if_held(self) -> list[Outcome]:
        """:meth:`release`, after one cheap check that anything is held at all."""
        return self.release() if self.log.any_held() else []

    def _again(self, delivery: Delivery) -> Outcome | None:
        """Run a logged delivery again; a failure is recorded on it (it stays for the next
        round) and never stops the others behind it."""
        adapter = self.adapters.get(delivery.system)
        event = delivery.source_event()
        if adapter is None or event is None:
            return None
        try:
            return self.process(adapter, delivery, event)
        except Exception as failed:
            log.exception("inbound delivery %s could not be run again", delivery.id)
            self.log.note_failure(delivery.id, f"{type(failed).__name__}: {failed}")
            return None

    def replay(self, *, since: datetime, system: str | None = None) -> dict[str, int]:
        """Re-run logged deliveries received since ``since`` through translation (after a
        translator or mapping fix). Applied ones stay single: their receipt is found."""
        counts: dict[str, int] = {}
        after = 0
        while True:
            page = self.log.list(system=system, since=since, after_id=after, limit=200)
            if not page:
                break
            for delivery in page:
                after = delivery.id
                outcome = self._again(delivery)
                status = "skipped" if outcome is None else outcome.status
                counts[status] = counts.get(status, 0) + 1
        self.release()
        return counts


def _check_source_time(event: SourceEvent, received: datetime, index: int, count: int) -> None:
    """A source time ahead of arrival by more than the hub allows is refused before anything
    is stored: merged into a mirror it would pin that record's fields for good (no later
    update could be newer)."""
    if event.occurred_at is None or event.occurred_at <= received + MAX_SOURCE_CLOCK_AHEAD:
        return
    where = f"body.{index}" if count > 1 else "body"
    raise Malformed(
        f"event {event.event_id} says it happened at {event.occurred_at.isoformat()}, more "
        f"than {int(MAX_SOURCE_CLOCK_AHEAD.total_seconds())} s after it arrived",
        where,
    )


def _customers(aggregates: list[Aggregate]) -> list[UUID]:
    """The customers a delivery's effects concern (each customer, and each aggregate's)."""
    found: list[UUID] = []
    for aggregate in aggregates:
        if aggregate.entity == "customer":
            found.append(aggregate.id)
        owner = customer_of(aggregate)
        if owner is not None:
            found.append(owner)
    return list(dict.fromkeys(found))


class Refusal(DomainError):
    """A translated command's input is not valid canonical data (a source value beyond the
    hub's bounds): the event is refused, naming the field."""

    code = "untranslatable"


__all__ = [
    "InboundService",
    "Incoming",
    "Malformed",
    "NotConfigured",
    "Outcome",
    "Refusal",
    "UnknownSystem",
    "Unverified",
]
