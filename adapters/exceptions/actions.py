"""Acting on a workbench item: validate the action against the item, hand it to the
operation that already exists for its source, and record who did it and when.

Why nothing here changes a source by itself (but the dispatch retry, which is the
dispatcher's own protocol): dead letters, reviews, held deliveries each have one place
that knows their states and races (conditional updates, the held delivery's release); the
workbench only routes to it. ``resolve`` changes nothing at the source: it records the note
and hides the item until the source changes again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import sql

from adapters.exceptions.history import record_action
from adapters.exceptions.model import Item
from adapters.exceptions.workbench import find_item
from adapters.inbound.review_decisions import (
    DecisionRefused,
    live_customer,
    pending_review,
    settle_review,
)
from adapters.nats.dead_letters import DeadLetterError, discard, request_retry

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

__all__ = ["ActionRefused", "ActionRequest", "act"]


class ActionRefused(Exception):
    """The action cannot be done; ``status``/``code``/``field`` say how to answer."""

    def __init__(self, status: int, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass(frozen=True)
class ActionRequest:
    exception_id: str
    action: str
    note: str | None
    actor: str
    customer_id: UUID | None = None


def act(runtime: Runtime, request: ActionRequest) -> dict[str, Any]:
    """Do ``request`` on its item; what the source said and the recorded action."""
    schema = runtime.settings.schema_name
    with runtime.connection() as conn:
        item = find_item(runtime, conn, request.exception_id)
        if item is None:
            raise ActionRefused(
                404, "not-found", f"no open exception {request.exception_id}", "path.exception_id"
            )
        _check(item, request)
        outcome = _delegate(runtime, conn, item, request)
        recorded = record_action(
            conn,
            schema,
            exception_id=item.id,
            kind=item.kind,
            object_id=_object_of(item, request),
            reason=item.reason,
            action=request.action,
            note=request.note,
            actor=request.actor,
        )
        conn.commit()
    return {"exception_id": item.id, "action": recorded, "outcome": outcome}


def _check(item: Item, request: ActionRequest) -> None:
    if request.action not in item.actions:
        raise ActionRefused(
            422,
            "action-not-allowed",
            f"{item.reason} item {item.id} allows {', '.join(item.actions)}, not "
            f"{request.action!r}",
            "body.action",
        )
    if request.action == "resolve" and not (request.note or "").strip():
        raise ActionRefused(
            422, "note-required", "resolve needs a note saying what was done", "body.note"
        )
    if request.customer_id is not None and request.action != "approve":
        raise ActionRefused(
            422, "validation-failed", "customer_id goes only with approve", "body.customer_id"
        )


def _object_of(item: Item, request: ActionRequest) -> str:
    """The object the action is recorded on: an approved review's customer is known now."""
    if item.source == "match" and request.action == "approve":
        return str(_approved_customer(item, request))
    return item.object_id


def _approved_customer(item: Item, request: ActionRequest) -> UUID:
    if request.customer_id is not None:
        return request.customer_id
    candidates = item.detail["candidates"]
    if len(candidates) != 1:
        raise ActionRefused(
            422,
            "customer-required",
            f"the review has {len(candidates)} candidates: name the customer it is",
            "body.customer_id",
        )
    return UUID(candidates[0]["customer_id"])


def _delegate(runtime: Runtime, conn: Any, item: Item, request: ActionRequest) -> dict[str, Any]:
    action, source = request.action, item.source
    if action == "resolve":
        return {"resolved": True}
    if source == "dl":
        return _dead_letter(runtime, conn, item, request)
    if source == "inbound":
        return _inbound(runtime, item, request)
    if source == "match":
        return _review(runtime, item, request)
    if source == "command" and action == "retry":
        return _dispatch_retry(conn, runtime.settings.schema_name, item)
    raise ActionRefused(422, "action-not-allowed", f"{action} is not possible", "body.action")


def _dead_letter(runtime: Runtime, conn: Any, item: Item, request: ActionRequest) -> dict[str, Any]:
    schema, dead_letter_id = runtime.settings.schema_name, int(item.key)
    operation = request_retry if request.action == "retry" else discard
    try:
        row = operation(conn, schema, dead_letter_id, actor=request.actor)
    except DeadLetterError as refused:
        raise ActionRefused(
            refused.status, "dead-letter-state", str(refused), "path.exception_id"
        ) from None
    return {"dead_letter": {"id": row["id"], "status": row["status"]}}


def _inbound(runtime: Runtime, item: Item, request: ActionRequest) -> dict[str, Any]:
    service, delivery_id = runtime.inbound, int(item.key)
    if request.action == "discard":
        reason = request.note or "discarded from the exception workbench"
        if service.log.discard(delivery_id, request.actor, reason) is None:
            raise ActionRefused(
                409,
                "not-discardable",
                f"delivery {delivery_id} is no longer held",
                "path.exception_id",
            )
    elif request.action == "replay":
        delivery = service.log.get(delivery_id)
        event = None if delivery is None else delivery.source_event()
        if delivery is None or event is None:
            raise ActionRefused(
                409,
                "not-replayable",
                f"delivery {delivery_id} has no payload to translate",
                "path.exception_id",
            )
        service.process(service.adapter(delivery.system), delivery, event)
    else:  # retry: apply what is held and whose dependency has arrived
        service.release()
    after = service.log.get(delivery_id)
    return {"delivery": {"id": delivery_id, "status": None if after is None else after.status}}


def _review(runtime: Runtime, item: Item, request: ActionRequest) -> dict[str, Any]:
    reviews = runtime.inbound.reviews
    assert reviews is not None  # an item of a review exists, so the queue does
    review_id = int(item.key)
    field = "path.exception_id"
    try:
        pending_review(reviews, review_id, field)
        if request.action == "approve":
            customer: UUID | None = _approved_customer(item, request)
            assert customer is not None
            live_customer(runtime.hub, customer, "body.customer_id")
            status = "linked"
        else:
            customer, status = None, "new"
        decided = settle_review(
            reviews, runtime.inbound, review_id, status, customer, request.actor, field
        )
    except DecisionRefused as refused:
        raise ActionRefused(refused.status, refused.code, refused.message, refused.field) from None
    return {"match": decided.view()}


def _dispatch_retry(conn: Any, schema: str, item: Item) -> dict[str, Any]:
    """Ask the dispatcher to execute it again now (a refused or stale command is due)."""
    cursor = conn.execute(
        sql.SQL(
            "UPDATE {} SET status = 'retrying', next_at = now() "
            "WHERE command_id = %s AND status IN ('refused', 'stale')"
        ).format(sql.Identifier(schema, "concord_q2c_dispatch")),
        (item.key,),
    )
    if cursor.rowcount != 1:
        raise ActionRefused(
            409, "not-refused", f"command {item.key} is no longer refused", "path.exception_id"
        )
    return {"command": {"command_id": item.key, "status": "pending"}}
