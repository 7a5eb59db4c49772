"""Order: what the customer bought, placed from a won opportunity.

Lifecycle: placed -> validated -> accepted (ERP order number) -> fulfilled, with rejected and
cancelled as ends, and amended while not yet fulfilled. An amendment after the ERP accepted
the order sends it back to ``placed``: the ERP accepted other lines, so the new ones await
validation and the ERP's acceptance again (the ERP order number is kept, since the ERP's
document still exists, and the re-acceptance may carry the same number). Totals are
computed here from the lines (half-even rounding per line) so every system sees the same
figures.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hub.domain.base import Aggregate, CreationEvent, DomainEvent, StaleUpdate, creation_fields
from hub.domain.bounded import Amount, Description, OrderPrice, Quantity, RequiredCode
from hub.domain.errors import InvalidTransition, InvalidValue
from hub.domain.money import Money, check_magnitude, check_scale, exponent, money_sum
from hub.domain.provenance import Stamp


class ChargeType(StrEnum):
    ONE_TIME = "one_time"
    RECURRING = "recurring"
    USAGE = "usage"


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


class OrderTotals(BaseModel):
    """Totals per charge type; ``total`` is what the order books."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    one_time: Money
    recurring: Money
    usage: Money
    total: Money


def price_lines(lines: list[OrderLine], currency: str) -> tuple[list[OrderLine], OrderTotals]:
    """Check unit prices against the currency, compute line amounts and totals."""
    if not lines:
        raise InvalidValue("an order needs at least one line", field="lines")
    exponent(currency)
    priced: list[OrderLine] = []
    by_type: dict[ChargeType, list[Money]] = {t: [] for t in ChargeType}
    for index, line in enumerate(lines):
        check_scale(line.unit_price, currency, field=f"lines.{index}.unit_price")
        check_magnitude(line.unit_price * line.quantity, field=f"lines.{index}.quantity")
        amount = Money.of(line.unit_price, currency).times(line.quantity)
        priced.append(line.model_copy(update={"amount": amount.amount}))
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
    erp_order_number: str | None = None
    rejection_reasons: list[str] = Field(default_factory=list)
    cancellation_reason: str | None = None
    amendments: int = 0

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
    ) -> Order:
        if term_months < 0:
            raise InvalidValue("term_months cannot be negative", field="term_months")
        priced, totals = price_lines(lines, currency)
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

    def amend(self, stamp: Stamp, lines: list[OrderLine]) -> None:
        self._require({OrderStatus.PLACED, OrderStatus.VALIDATED, OrderStatus.ACCEPTED}, "amend")
        priced, totals = price_lines(lines, self.currency)
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


class OrderAmended(DomainEvent):
    """``reopened``: the ERP had accepted the order, so it awaits acceptance again.

    A flag in the event rather than a rule in ``apply`` so amendments stored before the rule
    existed (without it) replay exactly as they were recorded.
    """

    lines: list[OrderLine]
    totals: OrderTotals
    reopened: bool = False

    def apply(self, aggregate: Order) -> None:
        aggregate.lines = list(self.lines)
        aggregate.totals = self.totals
        aggregate.amendments += 1
        if self.reopened:
            aggregate.status = OrderStatus.PLACED

    def source_fields(self) -> list[str]:
        return ["lines"]


class OrderUpdateStale(StaleUpdate):
    """An amendment older (by the source's clock) than the lines the order holds."""


Order.stale_event = OrderUpdateStale
