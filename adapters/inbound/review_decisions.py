"""Deciding a match review: the checks and effects shared by ``/v1/matches`` and the
exception workbench.

Why one place: a decision must name a pending review and a live customer, record who
decided, and release the held delivery so it is translated again and follows the decision;
two callers with their own copies would drift (one forgetting the release, say).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from adapters.inbound.reviews import Review, ReviewQueue

if TYPE_CHECKING:
    from adapters.inbound.service import InboundService

__all__ = ["DecisionRefused", "live_customer", "pending_review", "settle_review"]


class DecisionRefused(Exception):
    """The decision cannot be made; ``status``/``code``/``field`` say how to answer."""

    def __init__(self, status: int, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def pending_review(reviews: ReviewQueue, review_id: int, field: str = "path.id") -> Review:
    review = reviews.get(review_id)
    if review is None:
        raise DecisionRefused(404, "not-found", f"no match review {review_id}", field)
    if review.status != "pending":
        raise DecisionRefused(
            409,
            "already-decided",
            f"match review {review_id} was decided already ({review.status})",
            field,
        )
    return review


def live_customer(hub: Any, customer_id: UUID, field: str) -> None:
    """A decision may name only a live customer (not merged away, not erased)."""
    customer: Any = hub.store.load("customer", customer_id)
    if customer is None:
        raise DecisionRefused(404, "not-found", f"no customer {customer_id}", field)
    if customer.merged_into is not None or customer.erased:
        state = "merged into " + str(customer.merged_into) if customer.merged_into else "erased"
        raise DecisionRefused(
            409, "customer-unavailable", f"customer {customer_id} is {state}", field
        )


def settle_review(
    reviews: ReviewQueue,
    inbound: InboundService,
    review_id: int,
    status: str,
    customer: UUID | None,
    actor: str,
    field: str = "path.id",
) -> Review:
    """Record the decision, then release the held delivery (blocking: run it off the loop)."""
    decided = reviews.decide(review_id, status, customer, actor)
    if decided is None:  # decided concurrently
        raise DecisionRefused(
            409, "already-decided", f"match review {review_id} was decided already", field
        )
    inbound.release()
    return decided
