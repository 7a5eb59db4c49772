"""Order use cases: input models and the command specs the API and batch ingest expose."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from uuid import UUID

from pydantic import Field

from hub.application.commands import CommandInput, CommandSpec, Handler, InputT, NoInput, on
from hub.application.merges import unmerged
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.bounded import (
    MAX_LINES,
    CurrencyCode,
    Reasons,
    Reference,
    RequiredCode,
    RequiredReason,
)
from hub.domain.money import Money
from hub.domain.order import Order, OrderLine
from hub.domain.provenance import Stamp


class PlaceOrder(CommandInput):
    customer_id: UUID
    opportunity_id: Reference | None = None
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES)
    currency: CurrencyCode
    term_months: int = Field(ge=0, le=600)
    start_date: date
    booking_date: date
    opportunity_amount: Money | None = None
    close_date: date | None = None


class RejectOrder(CommandInput):
    reasons: Reasons


class HoldOrder(CommandInput):
    reason: RequiredReason


class ReleaseOrder(CommandInput):
    note: RequiredReason | None = None


class AcceptOrder(CommandInput):
    erp_order_number: RequiredCode


class CancelOrder(CommandInput):
    reason: RequiredReason


class AmendOrder(CommandInput):
    lines: list[OrderLine] = Field(min_length=1, max_length=MAX_LINES)


def _place(stamp: Stamp, order_id: UUID, data: PlaceOrder, unit: Unit) -> Aggregate:
    """An intention (Concord books it in the ERP): refused for a merged customer."""
    unmerged(unit, data.customer_id, field="customer_id", action="place the order")
    return Order.place(
        stamp,
        order_id,
        customer_id=data.customer_id,
        lines=list(data.lines),
        currency=data.currency,
        term_months=data.term_months,
        start_date=data.start_date,
        booking_date=data.booking_date,
        opportunity_id=data.opportunity_id,
        opportunity_amount=data.opportunity_amount,
        close_date=data.close_date,
    )


def _order(handler: Callable[[Order, Stamp, InputT], None]) -> Handler[InputT]:
    """Adapt ``handler(order, stamp, data)`` to the generic handler signature."""
    return on(Order, lambda aggregate, stamp, data, unit: handler(aggregate, stamp, data))


SPECS = [
    CommandSpec(
        "order",
        "place",
        PlaceOrder,
        "Place an order from a won opportunity",
        create=_place,
        writes=(
            "customer_id",
            "opportunity_id",
            "lines",
            "currency",
            "term_months",
            "start_date",
            "booking_date",
            "opportunity_amount",
            "close_date",
        ),
    ),
    CommandSpec(
        "order",
        "validate",
        NoInput,
        "Mark the order as validated",
        handle=_order(lambda o, s, d: o.validate_order(s)),
        writes=("status",),
    ),
    CommandSpec(
        "order",
        "reject",
        RejectOrder,
        "Reject the order with reasons",
        handle=_order(lambda o, s, d: o.reject(s, d.reasons)),
        writes=("status",),
    ),
    CommandSpec(
        "order",
        "accept",
        AcceptOrder,
        "Record the ERP's acceptance and its order number",
        handle=_order(lambda o, s, d: o.accept(s, d.erp_order_number)),
        writes=("status", "erp_order_number"),
    ),
    CommandSpec(
        "order",
        "fulfil",
        NoInput,
        "Mark the order as fulfilled",
        handle=_order(lambda o, s, d: o.fulfil(s)),
        writes=("fulfilment",),
    ),
    CommandSpec(
        "order",
        "cancel",
        CancelOrder,
        "Cancel the order",
        # "cancellation", not "status": CRM may cancel but must not validate or accept.
        handle=_order(lambda o, s, d: o.cancel(s, d.reason)),
        writes=("cancellation",),
    ),
    CommandSpec(
        "order",
        "hold",
        HoldOrder,
        "Put the order on hold, with the reason (a compensation)",
        handle=_order(lambda o, s, d: o.hold(s, d.reason)),
        writes=("hold",),
    ),
    CommandSpec(
        "order",
        "release",
        ReleaseOrder,
        "Take the order off hold",
        handle=_order(lambda o, s, d: o.release(s, d.note)),
        writes=("hold",),
    ),
    CommandSpec(
        "order",
        "amend",
        AmendOrder,
        "Replace the order's lines (totals are recomputed)",
        handle=_order(lambda o, s, d: o.amend(s, d.lines)),
        writes=("lines",),
    ),
]
