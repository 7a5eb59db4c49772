"""Order: what the customer bought, placed from a won opportunity.

Lifecycle: placed -> validated -> accepted (ERP order number) -> fulfilled, with rejected and
cancelled as ends, and amended while not yet fulfilled. An amendment after the ERP accepted
the order sends it back to ``placed``: the ERP accepted other lines, so the new ones await
validation and the ERP's acceptance again (the ERP order number is kept, since the ERP's
document still exists, and the re-acceptance may carry the same number). Totals are
computed here from the lines (half-even rounding per line) so every system sees the same
figures.

What the sources tell beyond price and quantity is kept per line, for reconciliation and
revenue: how often the line bills (``billing_frequency``) and at what price per billing period
(``billing_unit_price``), its own term and service start (a line without them runs for the
order's ``term_months`` from its ``start_date``: the hub fills them in, as it computes
``amount``, so every line states them). The opportunity's own ``Amount`` and close date
(``opportunity_amount``, ``close_date``) are kept beside the computed totals, unchanged by
amendments: reconciliation compares them with the lines' total instead of trusting either.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hub.domain.base import Aggregate, CreationEvent, DomainEvent, StaleUpdate, creation_fields
from hub.domain.bounded import Amount, Description, OrderPrice, Quantity, RequiredCode
from hub.domain.errors import CurrencyMismatch, InvalidTransition, InvalidValue
from hub.domain.money import Money, check_magnitude, check_scale, exponent, money_sum
from hub.domain.provenance import Stamp


class ChargeType(StrEnum):
    ONE_TIME = "one_time"
    RECURRING = "recurring"
    USAGE = "usage"


class BillingFrequency(StrEnum):
    """How often a line bills; ``one_time`` lines bill once (setup fees, hardware)."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ONE_TIME = "one_time"


class OrderStatus(StrEnum):
    PLACED = "placed"
    VALIDATED = "validated"
    REJECTED = "rejected"
    ACCEPTED = "accepted"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class OrderLine(BaseModel):
    """One line: SKU x quantity at a unit price; ``amount`` is computed by the hub."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: RequiredCode
    description: Description | None = None
    quantity: Quantity
    unit_price: OrderPrice
    charge_type: ChargeType
    amount: Amount | None = None  # computed by the hub; what a client sends is replaced
    billing_frequency: BillingFrequency | None = None
    #: Price per billing period (e.g. the monthly fee of a yearly-priced seat), as the CRM
    #: product schedule or the quote says; not used for ``amount``, kept for reconciliation.
    billing_unit_price: OrderPrice | None = None
    term_months: int | None = Field(default=None, ge=0, le=600)
    service_start_date: date | None = None


def line_defaults(state: dict[str, Any], term_months: int | None, start: str | None) -> None:
    """Upcast one stored v1 line (JSON) to v2: every line states its frequency, term, start."""
    once = state["charge_type"] == ChargeType.ONE_TIME.value
    state.setdefault("billing_frequency", BillingFrequency.ONE_TIME.value if once else None)
    state.setdefault("billing_unit_price", None)
    state.setdefault("term_months", term_months)
    state.setdefault("service_start_date", start)


class OrderTotals(BaseModel):
    """Totals per charge type; ``total`` is what the order books."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    one_time: Money
    recurring: Money
    usage: Money
    total: Money


def _check_billing(line: OrderLine, index: int, currency: str) -> None:
    """A one-time charge bills once and a once-billed line is a one-time charge."""
    frequency = line.billing_frequency
    if frequency is not None and (frequency is BillingFrequency.ONE_TIME) != (
        line.charge_type is ChargeType.ONE_TIME
    ):
        raise InvalidValue(
            f"a {line.charge_type.value} line cannot bill {frequency.value}",
            field=f"lines.{index}.billing_frequency",
        )
    if line.billing_unit_price is not None:
        check_scale(line.billing_unit_price, currency, field=f"lines.{index}.billing_unit_price")


def price_lines(
    lines: list[OrderLine], currency: str, term_months: int, start_date: date
) -> tuple[list[OrderLine], OrderTotals]:
    """Check unit prices against the currency, compute line amounts and totals, and fill
    each line's term and service start from the order's where the line does not say."""
    if not lines:
        raise InvalidValue("an order needs at least one line", field="lines")
    exponent(currency)
    priced: list[OrderLine] = []
    by_type: dict[ChargeType, list[Money]] = {t: [] for t in ChargeType}
    for index, line in enumerate(lines):
        check_scale(line.unit_price, currency, field=f"lines.{index}.unit_price")
        check_magnitude(line.unit_price * line.quantity, field=f"lines.{index}.quantity")
        _check_billing(line, index, currency)
        amount = Money.of(line.unit_price, currency).times(line.quantity)
        filled: dict[str, Any] = {
            "amount": amount.amount,
            "term_months": term_months if line.term_months is None else line.term_months,
            "service_start_date": line.service_start_date or start_date,
        }
        if line.billing_frequency is None and line.charge_type is ChargeType.ONE_TIME:
            filled["billing_frequency"] = BillingFrequency.ONE_TIME
        priced.append(line.model_copy(update=filled))
        by_type[line.charge_type].append(amount)
    totals = OrderTotals(
        one_time=money_sum(by_type[ChargeType.ONE_TIME], currency),
        recurring=money_sum(by_type[ChargeType.RECURRING], currency),
        usage=money_sum(by_type[ChargeType.USAGE], currency),
        total=money_sum([m for ms in by_type.values() for m in ms], currency),
    )
    return priced, totals


class Order(Aggregate):
    entity = "order"

    customer_id: UUID
    opportunity_id: str | None
    lines: list[OrderLine]
    currency: str
    term_months: int
    start_date: date
    booking_date: date
    totals: OrderTotals
    status: OrderStatus
    opportunity_amount: Money | None = None
    close_date: date | None = None
    erp_order_number: str | None = None
    rejection_reasons: list[str] = Field(default_factory=list)
    cancellation_reason: str | None = None
    amendments: int = 0
    hold_reason: str | None = None
    """Why the order is on hold (a compensation: billing refused its subscription), else None;
    a hold stops nothing in the hub, it tells the ERP and the CRM to stop and why."""

    # -- commands -------------------------------------------------------------------------

    @classmethod
    def place(
        cls,
        stamp: Stamp,
        order_id: UUID,
        *,
        customer_id: UUID,
        lines: list[OrderLine],
        currency: str,
        term_months: int,
        start_date: date,
        booking_date: date,
        opportunity_id: str | None = None,
        opportunity_amount: Money | None = None,
        close_date: date | None = None,
    ) -> Order:
        if term_months < 0:
            raise InvalidValue("term_months cannot be negative", field="term_months")
        priced, totals = price_lines(lines, currency, term_months, start_date)
        if opportunity_amount is not None:
            if opportunity_amount.currency != currency:
                raise CurrencyMismatch(
                    f"the order is in {currency}, not {opportunity_amount.currency}",
                    field="opportunity_amount",
                )
            if opportunity_amount.is_negative:
                raise InvalidValue(
                    "an opportunity amount cannot be negative", field="opportunity_amount"
                )
        return cls._start(
            OrderPlaced(
                **creation_fields(stamp, order_id),
                customer_id=customer_id,
                opportunity_id=opportunity_id,
                lines=priced,
                currency=currency,
                term_months=term_months,
                start_date=start_date,
                booking_date=booking_date,
                totals=totals,
                opportunity_amount=opportunity_amount,
                close_date=close_date,
            )
        )

    def validate_order(self, stamp: Stamp) -> None:
        self._require({OrderStatus.PLACED}, "validate")
        self._record(OrderValidated, stamp)

    def reject(self, stamp: Stamp, reasons: list[str]) -> None:
        self._require({OrderStatus.PLACED, OrderStatus.VALIDATED}, "reject")
        if not reasons:
            raise InvalidValue("give at least one reason", field="reasons")
        self._record(OrderRejected, stamp, reasons=reasons)

    def accept(self, stamp: Stamp, erp_order_number: str) -> None:
        self._require({OrderStatus.PLACED, OrderStatus.VALIDATED}, "accept")
        self._record(OrderAcceptedByErp, stamp, erp_order_number=erp_order_number)

    def fulfil(self, stamp: Stamp) -> None:
        self._require({OrderStatus.ACCEPTED}, "fulfil")
        self._record(OrderFulfilled, stamp)

    def cancel(self, stamp: Stamp, reason: str) -> None:
        self._require({OrderStatus.PLACED, OrderStatus.VALIDATED, OrderStatus.ACCEPTED}, "cancel")
        self._record(OrderCancelled, stamp, reason=reason)

    def hold(self, stamp: Stamp, reason: str) -> None:
        """Put the order on hold with a reason (the same hold twice records nothing)."""
        self._require({OrderStatus.PLACED, OrderStatus.VALIDATED, OrderStatus.ACCEPTED}, "hold")
        if not reason.strip():
            raise InvalidValue("give the reason for the hold", field="reason")
        if self.hold_reason == reason:
            return
        self._record(OrderHeld, stamp, reason=reason)

    def release(self, stamp: Stamp, note: str | None = None) -> None:
        """Take the order off hold (nothing to do when it is not on hold)."""
        if self.hold_reason is None:
            return
        self._record(OrderReleased, stamp, note=note)

    def amend(self, stamp: Stamp, lines: list[OrderLine]) -> None:
        self._require({OrderStatus.PLACED, OrderStatus.VALIDATED, OrderStatus.ACCEPTED}, "amend")
        priced, totals = price_lines(lines, self.currency, self.term_months, self.start_date)
        if not self._fresh(stamp, ["lines"]):
            return
        reopened = self.status is OrderStatus.ACCEPTED
        self._record(OrderAmended, stamp, lines=priced, totals=totals, reopened=reopened)

    def _require(self, allowed: set[OrderStatus], action: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(
                f"cannot {action} an order that is {self.status.value}", field="status"
            )


# -- events ------------------------------------------------------------------------------


class OrderPlaced(CreationEvent):
    customer_id: UUID
    opportunity_id: str | None
    lines: list[OrderLine]
    currency: str
    term_months: int
    start_date: date
    booking_date: date
    totals: OrderTotals
    opportunity_amount: Money | None = None
    close_date: date | None = None

    #: v2: lines state frequency, billing price, term and service start; the opportunity's
    #: amount and close date are kept.
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        for line in state["lines"]:
            line_defaults(line, state["term_months"], state["start_date"])
        state.setdefault("opportunity_amount", None)
        state.setdefault("close_date", None)

    def source_fields(self) -> list[str]:
        return ["lines"]

    def create(self) -> Order:
        return Order(
            id=self.originator_id,
            version=1,
            created_on=self.timestamp,
            modified_on=self.timestamp,
            status=OrderStatus.PLACED,
            **self.model_dump(include=set(OrderPlacedFields)),
        )


OrderPlacedFields = (
    "customer_id",
    "opportunity_id",
    "lines",
    "currency",
    "term_months",
    "start_date",
    "booking_date",
    "totals",
    "opportunity_amount",
    "close_date",
)


class OrderValidated(DomainEvent):
    def apply(self, aggregate: Order) -> None:
        aggregate.status = OrderStatus.VALIDATED


class OrderRejected(DomainEvent):
    reasons: list[str]

    def apply(self, aggregate: Order) -> None:
        aggregate.status = OrderStatus.REJECTED
        aggregate.rejection_reasons = list(self.reasons)


class OrderAcceptedByErp(DomainEvent):
    erp_order_number: str

    def external_refs(self) -> list[tuple[str, str]]:
        return [("erp", self.erp_order_number)]

    def apply(self, aggregate: Order) -> None:
        aggregate.status = OrderStatus.ACCEPTED
        aggregate.erp_order_number = self.erp_order_number


class OrderFulfilled(DomainEvent):
    def apply(self, aggregate: Order) -> None:
        aggregate.status = OrderStatus.FULFILLED


class OrderCancelled(DomainEvent):
    reason: str

    def apply(self, aggregate: Order) -> None:
        aggregate.status = OrderStatus.CANCELLED
        aggregate.cancellation_reason = self.reason


class OrderHeld(DomainEvent):
    """Compensation: a later step failed for good (billing refused the subscription), so the
    ERP should hold the sales order and the CRM show why."""

    reason: str

    def apply(self, aggregate: Order) -> None:
        aggregate.hold_reason = self.reason


class OrderReleased(DomainEvent):
    note: str | None = None

    def apply(self, aggregate: Order) -> None:
        aggregate.hold_reason = None


class OrderAmended(DomainEvent):
    """``reopened``: the ERP had accepted the order, so it awaits acceptance again.

    A flag in the event rather than a rule in ``apply`` so amendments stored before the rule
    existed (without it) replay exactly as they were recorded.
    """

    lines: list[OrderLine]
    totals: OrderTotals
    reopened: bool = False

    #: v2: lines state frequency, billing price, term and service start (see OrderPlaced).
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A v1 amendment does not know the order's term and start: those stay ``None`` here
        and ``apply`` fills them from the order, as the hub fills them on amending today."""
        for line in state["lines"]:
            line_defaults(line, None, None)

    def apply(self, aggregate: Order) -> None:
        aggregate.lines = [
            line
            if line.term_months is not None and line.service_start_date is not None
            else line.model_copy(
                update={
                    "term_months": aggregate.term_months
                    if line.term_months is None
                    else line.term_months,
                    "service_start_date": line.service_start_date or aggregate.start_date,
                }
            )
            for line in self.lines
        ]
        aggregate.totals = self.totals
        aggregate.amendments += 1
        if self.reopened:
            aggregate.status = OrderStatus.PLACED

    def source_fields(self) -> list[str]:
        return ["lines"]


class OrderUpdateStale(StaleUpdate):
    """An amendment older (by the source's clock) than the lines the order holds."""


Order.stale_event = OrderUpdateStale
