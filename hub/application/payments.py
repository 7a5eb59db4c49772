"""Payment use cases: input models and the command specs the API and batch ingest expose.

Applying, refunding, failing and reversing a payment change the payment *and* its invoices.
Each handler loads the invoices through the unit and changes both sides, so the commit saves
them in one transaction: cash and receivables can never disagree, even for a moment. Checks
on both sides run before either records anything, so a refusal changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from pydantic import AwareDatetime

from hub.application.commands import CommandInput, CommandSpec, Handler, InputT, on
from hub.application.merges import same_customer, survivor
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.bounded import Code, Reference, RequiredReason
from hub.domain.errors import InvalidValue
from hub.domain.invoice import Invoice, UnapplyReason
from hub.domain.money import Money
from hub.domain.payment import Payment, PaymentApplication, PaymentMethod, per_invoice
from hub.domain.provenance import Stamp


class ReceivePayment(CommandInput):
    customer_id: UUID
    amount: Money
    method: PaymentMethod
    received_at: AwareDatetime
    reference: Reference | None = None


class ApplyPayment(CommandInput):
    invoice_id: UUID
    amount: Money


class RefundPayment(CommandInput):
    amount: Money
    reference: Reference | None = None
    credit_note_number: Code | None = None
    refunded_at: AwareDatetime | None = None


class FailPayment(CommandInput):
    reason: RequiredReason


class ReversePayment(CommandInput):
    reason: RequiredReason


def _receive(stamp: Stamp, payment_id: UUID, data: ReceivePayment, unit: Unit) -> Aggregate:
    """A fact: money a merged customer sent is the survivor's."""
    customer = survivor(unit, data.customer_id, field="customer_id")
    return Payment.receive(
        stamp,
        payment_id,
        customer_id=customer.id,
        amount=data.amount,
        method=data.method,
        received_at=data.received_at,
        reference=data.reference,
    )


def _apply(payment: Payment, stamp: Stamp, data: ApplyPayment, unit: Unit) -> None:
    invoice = unit.get(Invoice, data.invoice_id, field="invoice_id")
    if not same_customer(unit, invoice.customer_id, payment.customer_id, field="invoice_id"):
        raise InvalidValue(
            f"the invoice belongs to customer {invoice.customer_id}, the payment to "
            f"{payment.customer_id}",
            field="invoice_id",
        )
    payment.check_application(data.amount)
    invoice.check_payment(data.amount)
    payment.apply_to(stamp, invoice.id, data.amount)
    invoice.apply_payment(stamp, payment.id, data.amount)


def _take_back(
    payment: Payment,
    stamp: Stamp,
    unit: Unit,
    unapplied: list[PaymentApplication],
    reason: UnapplyReason,
) -> None:
    """Unapply from each invoice what the payment took back (one event per invoice)."""
    for invoice_id, amount in per_invoice(unapplied).items():
        invoice = unit.get(Invoice, invoice_id, field="invoice_id")
        invoice.unapply_payment(stamp, payment.id, amount, reason)


def _load_invoices(unit: Unit, applications: list[PaymentApplication]) -> None:
    """Load every invoice first so a missing one refuses the command before any change."""
    for invoice_id in per_invoice(applications):
        unit.get(Invoice, invoice_id, field="invoice_id")


def _refund(payment: Payment, stamp: Stamp, data: RefundPayment, unit: Unit) -> None:
    if payment.refund_recorded(data.amount, data.reference):
        return
    _load_invoices(unit, payment.refund_plan(data.amount))
    unapplied = payment.refund(
        stamp,
        data.amount,
        data.reference,
        credit_note_number=data.credit_note_number,
        refunded_at=data.refunded_at,
    )
    _take_back(payment, stamp, unit, unapplied, UnapplyReason.REFUND)


def _fail(payment: Payment, stamp: Stamp, data: FailPayment, unit: Unit) -> None:
    _load_invoices(unit, payment.applications)
    unapplied = payment.fail(stamp, data.reason)
    _take_back(payment, stamp, unit, unapplied, UnapplyReason.FAILURE)


def _reverse(payment: Payment, stamp: Stamp, data: ReversePayment, unit: Unit) -> None:
    _load_invoices(unit, payment.applications)
    unapplied = payment.reverse(stamp, data.reason)
    _take_back(payment, stamp, unit, unapplied, UnapplyReason.REVERSAL)


def _payment(handler: Callable[[Payment, Stamp, InputT, Unit], None]) -> Handler[InputT]:
    """Adapt ``handler(payment, stamp, data, unit)`` to the generic handler signature."""
    return on(Payment, handler)


SPECS = [
    CommandSpec(
        "payment",
        "receive",
        ReceivePayment,
        "Record a payment received from a customer",
        create=_receive,
        writes=("customer_id", "amount", "method", "received_at", "reference"),
    ),
    CommandSpec(
        "payment",
        "apply",
        ApplyPayment,
        "Apply some of the payment to an invoice",
        handle=_payment(_apply),
        writes=("applications",),
        description="Changes the payment and the invoice in one transaction; what is not "
        "applied stays on the payment as the customer's credit.",
    ),
    CommandSpec(
        "payment",
        "refund",
        RefundPayment,
        "Refund some or all of the payment",
        handle=_payment(_refund),
        writes=("amount_refunded", "applications"),
        description="Uses the unapplied credit first, then takes money back off invoices, "
        "newest application first; those invoices reopen (or their credit_balance, from a "
        "credit note after payment, is settled). A reference counts once: the same "
        "reference and amount again records nothing, another amount is refused (409).",
    ),
    CommandSpec(
        "payment",
        "fail",
        FailPayment,
        "Record that the payment did not settle",
        handle=_payment(_fail),
        writes=("status", "applications"),
    ),
    CommandSpec(
        "payment",
        "reverse",
        ReversePayment,
        "Record a chargeback of the payment",
        handle=_payment(_reverse),
        writes=("status", "applications"),
    ),
]
