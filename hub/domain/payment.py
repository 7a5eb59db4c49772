"""Payment: money received from a customer, and where it went.

Lifecycle: received -> (applied to invoices, partially refunded) -> refunded when nothing is
left, or failed (it never settled) / reversed (a chargeback) as ends.

The money rule, kept by every event: ``amount_applied + amount_refunded <= amount``. What is
neither applied nor refunded (``unapplied``) is the customer's credit: an over-payment simply
stays unapplied until it is applied to a later invoice or refunded.

Refunds, failures and reversals take money back off invoices (the invoice reopens; see
invoice.py). A refund first uses the unapplied credit and only then unapplies, newest
application first (last in, first out): the most recent application is the one most likely
still in dispute, and a fixed order makes the outcome the same on every replay. Each such
command returns the unapplications so the command spec can change the invoices in the same
unit of work.

Refunds are documents (``refunds``: reference, amount, date and the credit note they pay
out, if any). Billing resends refunds freely, so a refund reference counts once per payment:
the same reference and amount again records nothing, the reference with another amount
cannot be true and is refused. Refunds without a reference all count.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hub.domain.base import Aggregate, CreationEvent, DomainEvent, creation_fields
from hub.domain.errors import (
    AlreadyExists,
    CurrencyMismatch,
    InvalidTransition,
    InvalidValue,
    Overapplication,
)
from hub.domain.money import Money, money_sum
from hub.domain.provenance import Stamp


class PaymentMethod(StrEnum):
    CARD = "card"
    ACH = "ach"
    WIRE = "wire"
    CHECK = "check"
    OTHER = "other"


class PaymentStatus(StrEnum):
    RECEIVED = "received"
    REFUNDED = "refunded"
    FAILED = "failed"
    REVERSED = "reversed"


class PaymentApplication(BaseModel):
    """Some of the payment applied to one invoice (or, in an event, taken back off it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice_id: UUID
    amount: Money


class Refund(BaseModel):
    """One refund document: what was paid back, when, and for which credit note."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Money
    refunded_at: datetime
    reference: str | None = None
    credit_note_number: str | None = None


def take_newest(
    applications: list[PaymentApplication], amount: Money
) -> tuple[list[PaymentApplication], list[PaymentApplication]]:
    """Split off ``amount`` from the newest applications: (what remains, what was taken)."""
    remaining = list(applications)
    taken: list[PaymentApplication] = []
    left = amount
    while left.amount > 0 and remaining:
        last = remaining.pop()
        if last.amount <= left:
            taken.append(last)
            left = left - last.amount
        else:
            taken.append(PaymentApplication(invoice_id=last.invoice_id, amount=left))
            remaining.append(
                PaymentApplication(invoice_id=last.invoice_id, amount=last.amount - left)
            )
            left = Money.zero(left.currency)
    return remaining, taken


def per_invoice(applications: list[PaymentApplication]) -> dict[UUID, Money]:
    """Sum applications per invoice, in first-seen order (one unapply per invoice)."""
    sums: dict[UUID, Money] = {}
    for item in applications:
        previous = sums.get(item.invoice_id)
        sums[item.invoice_id] = item.amount if previous is None else previous + item.amount
    return sums


class Payment(Aggregate):
    entity = "payment"

    customer_id: UUID
    amount: Money
    method: PaymentMethod
    received_at: datetime
    reference: str | None = None
    status: PaymentStatus = PaymentStatus.RECEIVED
    applications: list[PaymentApplication] = Field(default_factory=list)
    amount_applied: Money
    amount_refunded: Money
    refunds: list[Refund] = Field(default_factory=list)
    failure_reason: str | None = None
    reversal_reason: str | None = None

    @property
    def unapplied(self) -> Money:
        """The customer's credit left on this payment (available to apply or refund)."""
        return self.amount - self.amount_applied - self.amount_refunded

    def derived(self) -> dict[str, Any]:
        return {"unapplied": self.unapplied.model_dump(mode="json")}

    @property
    def refundable(self) -> Money:
        return self.amount - self.amount_refunded

    def applied_to(self, invoice_id: UUID) -> Money:
        """Net amount currently applied to ``invoice_id``."""
        return money_sum(
            [a.amount for a in self.applications if a.invoice_id == invoice_id],
            self.amount.currency,
        )

    # -- commands -------------------------------------------------------------------------

    @classmethod
    def receive(
        cls,
        stamp: Stamp,
        payment_id: UUID,
        *,
        customer_id: UUID,
        amount: Money,
        method: PaymentMethod,
        received_at: datetime,
        reference: str | None = None,
    ) -> Payment:
        if amount.amount <= 0:
            raise InvalidValue("a payment must be above zero", field="amount")
        return cls._start(
            PaymentReceived(
                **creation_fields(stamp, payment_id),
                customer_id=customer_id,
                amount=amount,
                method=method,
                received_at=received_at,
                reference=reference,
            )
        )

    @property
    def has_credit(self) -> bool:
        """Money of the customer still on this payment (neither applied nor refunded)."""
        return self.status is PaymentStatus.RECEIVED and self.unapplied.amount > 0

    def move_to(self, stamp: Stamp, survivor_id: UUID) -> None:
        """The customer was merged into ``survivor_id``: the unapplied credit is theirs."""
        if not self.has_credit:
            raise InvalidTransition("nothing of this payment is left to move", field="status")
        self._record(
            PaymentMovedToSurvivor,
            stamp,
            from_customer_id=self.customer_id,
            customer_id=survivor_id,
        )

    def check_application(self, amount: Money) -> None:
        """Refuse what :meth:`apply_to` would refuse, recording nothing (see Invoice)."""
        self._require_received("apply")
        self._check_amount(amount)
        if amount > self.unapplied:
            raise Overapplication(
                f"{amount} exceeds the unapplied {self.unapplied} of this payment",
                field="amount",
            )

    def apply_to(self, stamp: Stamp, invoice_id: UUID, amount: Money) -> None:
        self.check_application(amount)
        self._record(PaymentApplied, stamp, invoice_id=invoice_id, amount=amount)

    def refund_plan(self, amount: Money) -> list[PaymentApplication]:
        """What a refund of ``amount`` would take back off invoices (refusals included)."""
        self._require_received("refund")
        self._check_amount(amount)
        if amount > self.refundable:
            raise Overapplication(
                f"{amount} exceeds the refundable {self.refundable}", field="amount"
            )
        excess = amount - self.unapplied
        if excess.amount <= 0:
            return []
        return take_newest(self.applications, excess)[1]

    def refund_recorded(self, amount: Money, reference: str | None) -> bool:
        """True when this refund (its reference and amount) is already recorded; a known
        reference with another amount is refused. Checked before the payment's status: a
        re-delivered refund of a payment it fully refunded is still a re-delivery."""
        if reference is None:
            return False
        earlier = next((r for r in self.refunds if r.reference == reference), None)
        if earlier is None:
            return False
        if earlier.amount != amount:
            raise AlreadyExists(
                f"refund {reference!r} was already recorded on this payment for "
                f"{earlier.amount}; a second refund needs its own reference",
                field="reference",
            )
        return True

    def refund(
        self,
        stamp: Stamp,
        amount: Money,
        reference: str | None = None,
        *,
        credit_note_number: str | None = None,
        refunded_at: datetime | None = None,
    ) -> list[PaymentApplication]:
        """Refund ``amount``; returns the applications it took back (newest first)."""
        if self.refund_recorded(amount, reference):
            return []
        unapplied = self.refund_plan(amount)
        self._record(
            PaymentRefunded,
            stamp,
            amount=amount,
            reference=reference,
            unapplied=unapplied,
            credit_note_number=credit_note_number,
            refunded_at=refunded_at or stamp.provenance.occurred_at or stamp.recorded_at,
        )
        return unapplied

    def fail(self, stamp: Stamp, reason: str) -> list[PaymentApplication]:
        """The payment never settled: every application is taken back."""
        self._require_received("fail")
        if not self.amount_refunded.is_zero:
            raise InvalidTransition(
                "a payment with refunds has settled; reverse it instead",
                field="amount_refunded",
            )
        unapplied = list(reversed(self.applications))
        self._record(PaymentFailed, stamp, reason=reason, unapplied=unapplied)
        return unapplied

    def reverse(self, stamp: Stamp, reason: str) -> list[PaymentApplication]:
        """A chargeback: what was not refunded goes back to the payer, applications too."""
        self._require_received("reverse")
        unapplied = list(reversed(self.applications))
        self._record(
            PaymentReversed, stamp, reason=reason, amount=self.refundable, unapplied=unapplied
        )
        return unapplied

    def _check_amount(self, amount: Money) -> None:
        if amount.currency != self.amount.currency:
            raise CurrencyMismatch(
                f"the payment is in {self.amount.currency}, not {amount.currency}",
                field="amount",
            )
        if amount.amount <= 0:
            raise InvalidValue("amount must be above zero", field="amount")

    def _require_received(self, action: str) -> None:
        if self.status is not PaymentStatus.RECEIVED:
            raise InvalidTransition(
                f"cannot {action} a payment that is {self.status.value}", field="status"
            )


# -- events ------------------------------------------------------------------------------


class PaymentReceived(CreationEvent):
    customer_id: UUID
    amount: Money
    method: PaymentMethod
    received_at: datetime
    reference: str | None

    def create(self) -> Payment:
        zero = Money.zero(self.amount.currency)
        return Payment(
            id=self.originator_id,
            version=1,
            created_on=self.timestamp,
            modified_on=self.timestamp,
            customer_id=self.customer_id,
            amount=self.amount,
            method=self.method,
            received_at=self.received_at,
            reference=self.reference,
            amount_applied=zero,
            amount_refunded=zero,
        )


class PaymentApplied(DomainEvent):
    invoice_id: UUID
    amount: Money

    def apply(self, aggregate: Payment) -> None:
        aggregate.applications = [
            *aggregate.applications,
            PaymentApplication(invoice_id=self.invoice_id, amount=self.amount),
        ]
        aggregate.amount_applied = aggregate.amount_applied + self.amount


class PaymentMovedToSurvivor(DomainEvent):
    """The payer was merged; the payment (and its unapplied credit) is the survivor's."""

    from_customer_id: UUID
    customer_id: UUID

    def apply(self, aggregate: Payment) -> None:
        aggregate.customer_id = self.customer_id


def _take_back(aggregate: Payment, unapplied: list[PaymentApplication]) -> None:
    total = money_sum([u.amount for u in unapplied], aggregate.amount.currency)
    aggregate.applications = take_newest(aggregate.applications, total)[0]
    aggregate.amount_applied = aggregate.amount_applied - total


class PaymentRefunded(DomainEvent):
    amount: Money
    reference: str | None = None
    unapplied: list[PaymentApplication] = Field(default_factory=list)
    credit_note_number: str | None = None
    refunded_at: datetime | None = None

    #: v2: the refund's date and the credit note it pays out.
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A v1 refund's date is when the hub recorded it (the best it knows)."""
        state.setdefault("credit_note_number", None)
        state.setdefault("refunded_at", state["timestamp"])

    def apply(self, aggregate: Payment) -> None:
        _take_back(aggregate, self.unapplied)
        aggregate.amount_refunded = aggregate.amount_refunded + self.amount
        document = Refund(
            amount=self.amount,
            refunded_at=self.refunded_at or self.timestamp,
            reference=self.reference,
            credit_note_number=self.credit_note_number,
        )
        aggregate.refunds = [*aggregate.refunds, document]
        if aggregate.amount_refunded == aggregate.amount:
            aggregate.status = PaymentStatus.REFUNDED


class PaymentFailed(DomainEvent):
    reason: str
    unapplied: list[PaymentApplication] = Field(default_factory=list)

    def apply(self, aggregate: Payment) -> None:
        _take_back(aggregate, self.unapplied)
        aggregate.status = PaymentStatus.FAILED
        aggregate.failure_reason = self.reason


class PaymentReversed(DomainEvent):
    """``amount`` is what the chargeback pulled back (the payment less earlier refunds)."""

    reason: str
    amount: Money
    unapplied: list[PaymentApplication] = Field(default_factory=list)

    def apply(self, aggregate: Payment) -> None:
        _take_back(aggregate, self.unapplied)
        aggregate.status = PaymentStatus.REVERSED
        aggregate.reversal_reason = self.reason
