"""Workbench items from the inbound side: held deliveries and pending match reviews.

Why a delivery held for a review is not listed twice: it waits for the review's decision,
and deciding the review (approve / reject) releases it; the review is the item.
"""

from __future__ import annotations

from adapters.exceptions.model import Item
from adapters.inbound.log import Delivery, InboundLog
from adapters.inbound.reviews import REVIEW, Review, ReviewQueue

__all__ = ["held_items", "review_items"]


def _held_item(delivery: Delivery) -> Item | None:
    wait = delivery.waiting_for
    if wait is None or wait.system == REVIEW:
        return None
    reason = "unmapped_sku" if wait.entity == "product" else "held_delivery"
    return Item(
        source="inbound",
        key=str(delivery.id),
        reason=reason,
        kind="delivery",
        object_id=str(delivery.id),
        canonical=False,
        since=delivery.received_at,
        changed_at=delivery.updated_at,
        summary=f"{delivery.system} {delivery.event_type} {delivery.event_id} waits for "
        f"{wait.describe()}",
        actions=("retry", "replay", "discard", "resolve"),
        detail={
            "system": delivery.system,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "waiting_for": {
                "system": wait.system,
                "entity": wait.entity,
                "external_id": wait.external_id,
            },
            "attempts": delivery.attempts,
        },
        links={"delivery": f"/v1/inbound/{delivery.id}"},
    )


def held_items(log: InboundLog, key: str | None, cap: int) -> list[Item]:
    if key is not None:
        found = log.get(int(key)) if key.isdigit() and len(key) <= 18 else None
        rows = [found] if found is not None and found.status == "held" else []
    else:
        rows = log.list(status="held", limit=cap)
    return [item for row in rows if (item := _held_item(row)) is not None]


def _review_item(review: Review) -> Item:
    names = ", ".join(c["reason"] for c in review.candidates)
    links = {"match": f"/v1/matches/{review.id}"}
    if review.delivery_id is not None:
        links["delivery"] = f"/v1/inbound/{review.delivery_id}"
    return Item(
        source="match",
        key=str(review.id),
        reason="match_review",
        kind="customer",
        object_id=review.external_id,
        canonical=False,
        since=review.created_at,
        changed_at=review.created_at,
        summary=f"{review.source} customer {review.external_id} may be one Concord knows "
        f"({len(review.candidates)} candidate(s): {names[:300]})",
        actions=("approve", "reject"),
        detail={
            "source": review.source,
            "external_id": review.external_id,
            "candidates": review.candidates,
            "review_id": review.id,
        },
        links=links,
    )


def review_items(reviews: ReviewQueue | None, key: str | None, cap: int) -> list[Item]:
    if reviews is None:
        return []
    if key is not None:
        found = reviews.get(int(key)) if key.isdigit() and len(key) <= 18 else None
        rows = [found] if found is not None and found.status == "pending" else []
    else:
        rows = reviews.list("pending", 0, cap)
    return [_review_item(r) for r in rows]
