"""Contract: a subscription created from an order's recurring and usage lines.

Lifecycle: pending (created from the order) -> active (the billing system's subscription id)
<-> suspended, and cancelled as the end. While not cancelled it is amended (quantity, price,
plan per item, with an effective date) and renewed (a later term end); usage is recorded
against usage items while active or suspended.

Contracts get long streams (monthly usage, many amendments), which is why snapshots exist:
the state keeps running totals (usage per SKU, counters) rather than growing lists, so it
stays small and round-trips through :meth:`Aggregate.state` and ``model_validate``.

Items are keyed by SKU (unique within a contract) so an amendment can name what it changes
without positional indexes that would shift under concurrent edits. Prices may be finer than
the currency's minor unit (a usage rate of 0.0004 USD per call is normal); amounts are
rounded when invoiced, not here.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hub.domain.base import Aggregate, CreationEvent, DomainEvent, creation_fields
from hub.domain.bounded import NonNegativeQuantity, RatePrice, RequiredCode
from hub.domain.errors import AlreadyExists, InvalidTransition, InvalidValue
from hub.domain.money import exponent
from hub.domain.order import ChargeType
from hub.domain.provenance import Stamp


class BillingPeriod(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class ContractStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"


class ContractItem(BaseModel):
    """One subscribed SKU on a rate plan. Usage items may have quantity 0 (pay as you go)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: RequiredCode
    rate_plan: RequiredCode
    quantity: NonNegativeQuantity
    unit_price: RatePrice
    billing_period: BillingPeriod
    charge_type: ChargeType


class ItemChange(BaseModel):
    """An amendment of one item: only the values given change."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: RequiredCode
    quantity: NonNegativeQuantity | None = None
    unit_price: RatePrice | None = None
    rate_plan: RequiredCode | None = None


def check_item_quantity(charge_type: ChargeType, quantity: Decimal, field: str) -> None:
    """A recurring item bills quantity x price every period, so zero would be a free seat."""
    if charge_type is ChargeType.RECURRING and quantity <= 0:
        raise InvalidValue("a recurring item needs a quantity above zero", field=field)


def check_items(items: list[ContractItem]) -> None:
    if not items:
        raise InvalidValue("a contract needs at least one item", field="items")
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.charge_type is ChargeType.ONE_TIME:
            raise InvalidValue(
                "one-time charges are invoiced from the order, not subscribed",
                field=f"items.{index}.charge_type",
            )
        if item.sku in seen:
            raise InvalidValue(
                f"sku {item.sku!r} appears twice; amend the one item instead",
                field=f"items.{index}.sku",
            )
        seen.add(item.sku)
        check_item_quantity(item.charge_type, item.quantity, f"items.{index}.quantity")


def amended_items(items: list[ContractItem], changes: list[ItemChange]) -> list[ContractItem]:
    """The items after ``changes`` (pure: used by the command to check, by the event to apply)."""
    by_sku = {change.sku: change for change in changes}
    result: list[ContractItem] = []
    for item in items:
        change = by_sku.get(item.sku)
        if change is None:
            result.append(item)
            continue
        update = change.model_dump(include={"quantity", "unit_price", "rate_plan"})
        result.append(item.model_copy(update={k: v for k, v in update.items() if v is not None}))
    return result


def usage_fingerprint(sku: str, quantity: Decimal, period_start: date, period_end: date) -> str:
    """What a usage record said, to tell a re-delivery (equal) from a clash (different)."""
    return f"{sku} x {quantity.normalize():f} for {period_start} to {period_end}"


class ScheduledChange(BaseModel):
    """An amendment recorded before its effective date: not in force until that day."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    effective_date: date
    changes: list[ItemChange]


def bring_into_force(
    items: list[ContractItem], scheduled: list[ScheduledChange], day: date
) -> tuple[list[ContractItem], list[ScheduledChange]]:
    """Apply the scheduled changes effective on or before ``day``, in effective-date order
    (among equal dates, in the order recorded); return the items and what is still ahead."""
    for change in scheduled:
        if change.effective_date <= day:
            items = amended_items(items, change.changes)
    return items, [c for c in scheduled if c.effective_date > day]


class Contract(Aggregate):
    entity = "contract"

    order_id: UUID
    customer_id: UUID
    currency: str
    items: list[ContractItem]
    term_start: date
    term_end: date
    status: ContractStatus = ContractStatus.PENDING
    billing_subscription_id: str | None = None
    suspended_on: date | None = None
    cancellation_date: date | None = None
    cancellation_reason: str | None = None
    #: The status a cancellation ended: shown on business days before the cancellation
    #: takes effect (a cancellation at period end is a scheduled change).
    cancelled_from: ContractStatus | None = None
    amendments: int = 0
    last_amendment_date: date | None = None
    renewals: int = 0
    usage_totals: dict[str, Decimal] = Field(default_factory=dict)
    usage_records: int = 0
    usage_record_ids: dict[str, str] = Field(default_factory=dict)
    scheduled_changes: list[ScheduledChange] = Field(default_factory=list)
    initial_items: list[ContractItem] | None = None
    amendment_log: list[ScheduledChange] = Field(default_factory=list)
    """Every amendment by effective date (equal dates: as recorded), with the items the
    contract was created with, so the items of *any* business date can be rebuilt; an
    amendment is small and contracts have tens of them, unlike usage (kept as totals).
    ``initial_items`` is None only in snapshots taken before the log existed."""

    def on_business_date(self, day: date) -> Contract:
        """The contract as in force on ``day``: the amendments effective by then applied,
        later ones listed in ``scheduled_changes``. A read-only copy (or self, unchanged).

        ``items`` in the state is what was in force on the day the last amendment was
        recorded; a query names its business date (today by default), so today's state
        never shows tomorrow's price and an earlier day shows what was in force then.
        """
        if self.initial_items is None:  # a snapshot from before the log: forward only
            items, ahead = bring_into_force(self.items, self.scheduled_changes, day)
        else:
            items, ahead = bring_into_force(self.initial_items, self.amendment_log, day)
        update: dict[str, object] = {}
        if items != self.items or ahead != self.scheduled_changes:
            update = {"items": items, "scheduled_changes": ahead}
        if (
            self.status is ContractStatus.CANCELLED
            and self.cancelled_from is not None
            and self.cancellation_date is not None
            and day < self.cancellation_date
        ):
            update["status"] = self.cancelled_from  # cancelled at a later date: runs until then
        return self.model_copy(update=update) if update else self

    # -- commands -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        stamp: Stamp,
        contract_id: UUID,
        *,
        order_id: UUID,
        customer_id: UUID,
        items: list[ContractItem],
        currency: str,
        term_start: date,
        term_end: date,
    ) -> Contract:
        exponent(currency)
        check_items(items)
        if term_end <= term_start:
            raise InvalidValue("term_end must be after term_start", field="term_end")
        return cls._start(
            ContractCreated(
                **creation_fields(stamp, contract_id),
                order_id=order_id,
                customer_id=customer_id,
                items=items,
                currency=currency,
                term_start=term_start,
                term_end=term_end,
            )
        )

    def activate(self, stamp: Stamp, billing_subscription_id: str) -> None:
        """Billing confirmed the subscription; its id is how later webhooks find this contract."""
        self._require({ContractStatus.PENDING}, "activate")
        if not billing_subscription_id.strip():
            raise InvalidValue(
                "billing_subscription_id cannot be empty", field="billing_subscription_id"
            )
        self._record(ContractActivated, stamp, billing_subscription_id=billing_subscription_id)

    def amend(self, stamp: Stamp, changes: list[ItemChange], effective_date: date) -> None:
        self._require_not_cancelled("amend")
        if not changes:
            raise InvalidValue("name at least one item change", field="changes")
        items = {item.sku: item for item in self.items}
        seen: set[str] = set()
        for index, change in enumerate(changes):
            item = items.get(change.sku)
            if item is None:
                raise InvalidValue(
                    f"the contract has no item {change.sku!r}", field=f"changes.{index}.sku"
                )
            if change.sku in seen:
                raise InvalidValue(
                    f"sku {change.sku!r} is changed twice", field=f"changes.{index}.sku"
                )
            seen.add(change.sku)
            if change.quantity is None and change.unit_price is None and change.rate_plan is None:
                raise InvalidValue("the change changes nothing", field=f"changes.{index}")
            if change.quantity is not None:
                check_item_quantity(item.charge_type, change.quantity, f"changes.{index}.quantity")
        self._require_in_term(effective_date, "effective_date")
        self._record(ContractAmended, stamp, changes=changes, effective_date=effective_date)

    def renew(self, stamp: Stamp, new_term_end: date) -> None:
        """Extend a running contract; a pending one has not started its first term yet."""
        self._require({ContractStatus.ACTIVE, ContractStatus.SUSPENDED}, "renew")
        if new_term_end <= self.term_end:
            raise InvalidValue(
                f"new_term_end must be after the current term end {self.term_end}",
                field="new_term_end",
            )
        self._record(ContractRenewed, stamp, new_term_end=new_term_end)

    def suspend(self, stamp: Stamp, effective_date: date) -> None:
        self._require({ContractStatus.ACTIVE}, "suspend")
        self._require_in_term(effective_date, "effective_date")
        self._record(ContractSuspended, stamp, effective_date=effective_date)

    def resume(self, stamp: Stamp, effective_date: date) -> None:
        self._require({ContractStatus.SUSPENDED}, "resume")
        if self.suspended_on is not None and effective_date < self.suspended_on:
            raise InvalidValue(
                f"cannot resume before the suspension on {self.suspended_on}",
                field="effective_date",
            )
        self._record(ContractResumed, stamp, effective_date=effective_date)

    def cancel(self, stamp: Stamp, effective_date: date, reason: str | None = None) -> None:
        self._require_not_cancelled("cancel")
        self._require_in_term(effective_date, "effective_date")
        self._record(ContractCancelled, stamp, effective_date=effective_date, reason=reason)

    def record_usage(
        self,
        stamp: Stamp,
        *,
        sku: str,
        quantity: Decimal,
        period_start: date,
        period_end: date,
        usage_record_id: str | None = None,
    ) -> None:
        """Usage of a usage item; late usage of a suspended contract is still accepted.

        ``usage_record_id`` is billing's id of the usage record: a record counts once. The
        same record delivered again (same item, quantity and period) records nothing; the id
        with other values cannot be true and is refused. The ids stay in the state (one short
        string each) so the check needs no other read; usage without an id always counts.
        """
        self._require({ContractStatus.ACTIVE, ContractStatus.SUSPENDED}, "record usage on")
        record = usage_fingerprint(sku, quantity, period_start, period_end)
        if usage_record_id is not None and usage_record_id in self.usage_record_ids:
            if self.usage_record_ids[usage_record_id] == record:
                return
            raise AlreadyExists(
                f"usage record {usage_record_id!r} was already counted as "
                f"{self.usage_record_ids[usage_record_id]}; a new record needs its own id",
                field="usage_record_id",
            )
        item = next((i for i in self.items if i.sku == sku), None)
        if item is None:
            raise InvalidValue(f"the contract has no item {sku!r}", field="sku")
        if item.charge_type is not ChargeType.USAGE:
            raise InvalidValue(f"{sku!r} is not a usage item", field="sku")
        if quantity <= 0:
            raise InvalidValue("usage quantity must be above zero", field="quantity")
        if period_end < period_start:
            raise InvalidValue("period_end is before period_start", field="period_end")
        self._require_in_term(period_start, "period_start")
        self._require_in_term(period_end, "period_end")
        self._record(
            ContractUsageRecorded,
            stamp,
            sku=sku,
            quantity=quantity,
            period_start=period_start,
            period_end=period_end,
            usage_record_id=usage_record_id,
        )

    def _require(self, allowed: set[ContractStatus], action: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(
                f"cannot {action} a contract that is {self.status.value}", field="status"
            )

    def _require_not_cancelled(self, action: str) -> None:
        self._require(
            {ContractStatus.PENDING, ContractStatus.ACTIVE, ContractStatus.SUSPENDED}, action
        )

    def _require_in_term(self, day: date, field: str) -> None:
        if not self.term_start <= day <= self.term_end:
            raise InvalidValue(
                f"{day} is outside the term {self.term_start} to {self.term_end}", field=field
            )


# -- events ------------------------------------------------------------------------------


class ContractCreated(CreationEvent):
    order_id: UUID
    customer_id: UUID
    items: list[ContractItem]
    currency: str
    term_start: date
    term_end: date

    def create(self) -> Contract:
        return Contract(
            id=self.originator_id,
            version=1,
            created_on=self.timestamp,
            modified_on=self.timestamp,
            order_id=self.order_id,
            customer_id=self.customer_id,
            items=list(self.items),
            currency=self.currency,
            term_start=self.term_start,
            term_end=self.term_end,
            initial_items=list(self.items),
        )


class ContractActivated(DomainEvent):
    billing_subscription_id: str

    def external_refs(self) -> list[tuple[str, str]]:
        return [("billing", self.billing_subscription_id)]

    def apply(self, aggregate: Contract) -> None:
        aggregate.status = ContractStatus.ACTIVE
        aggregate.billing_subscription_id = self.billing_subscription_id


class ContractAmended(DomainEvent):
    changes: list[ItemChange]
    effective_date: date

    def apply(self, aggregate: Contract) -> None:
        """In force at once when effective by the day it is recorded (the event's own
        timestamp, so replay decides the same), else scheduled for its effective date."""
        today = self.timestamp.date()
        change = ScheduledChange(effective_date=self.effective_date, changes=self.changes)
        if aggregate.initial_items is None:  # resumed from a snapshot older than the log
            items, ahead = bring_into_force(aggregate.items, aggregate.scheduled_changes, today)
            if self.effective_date <= today:
                items = amended_items(items, self.changes)
            else:
                ahead = sorted([*ahead, change], key=lambda c: c.effective_date)
        else:
            log = sorted([*aggregate.amendment_log, change], key=lambda c: c.effective_date)
            aggregate.amendment_log = log
            items, ahead = bring_into_force(aggregate.initial_items, log, today)
        aggregate.items = items
        aggregate.scheduled_changes = ahead
        aggregate.amendments += 1
        aggregate.last_amendment_date = self.effective_date


class ContractRenewed(DomainEvent):
    new_term_end: date

    def apply(self, aggregate: Contract) -> None:
        aggregate.term_end = self.new_term_end
        aggregate.renewals += 1


class ContractSuspended(DomainEvent):
    effective_date: date

    def apply(self, aggregate: Contract) -> None:
        aggregate.status = ContractStatus.SUSPENDED
        aggregate.suspended_on = self.effective_date


class ContractResumed(DomainEvent):
    effective_date: date

    def apply(self, aggregate: Contract) -> None:
        aggregate.status = ContractStatus.ACTIVE
        aggregate.suspended_on = None


class ContractCancelled(DomainEvent):
    effective_date: date
    reason: str | None = None

    def apply(self, aggregate: Contract) -> None:
        if aggregate.status is not ContractStatus.CANCELLED:
            aggregate.cancelled_from = aggregate.status
        aggregate.status = ContractStatus.CANCELLED
        aggregate.cancellation_date = self.effective_date
        aggregate.cancellation_reason = self.reason


class ContractUsageRecorded(DomainEvent):
    sku: str
    quantity: Decimal
    period_start: date
    period_end: date
    usage_record_id: str | None = None

    def apply(self, aggregate: Contract) -> None:
        totals = dict(aggregate.usage_totals)
        totals[self.sku] = totals.get(self.sku, Decimal(0)) + self.quantity
        aggregate.usage_totals = totals
        aggregate.usage_records += 1
        if self.usage_record_id is not None:
            aggregate.usage_record_ids = {
                **aggregate.usage_record_ids,
                self.usage_record_id: usage_fingerprint(
                    self.sku, self.quantity, self.period_start, self.period_end
                ),
            }
