"""Payment aggregate and its commands: application, over-payment, refund, failure, chargeback.

Applying, refunding, failing and reversing change the payment and its invoices together, so
most tests run the command specs through a real Unit over an in-memory store.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from hub.application.commands import CommandInput
from hub.application.payments import (
    SPECS,
    ApplyPayment,
    FailPayment,
    ReceivePayment,
    RefundPayment,
    ReversePayment,
)
from hub.application.unit import Unit
from hub.domain.base import creation_fields
from hub.domain.customer import Customer
from hub.domain.errors import (
    CurrencyMismatch,
    DomainError,
    InvalidTransition,
    InvalidValue,
    NotFound,
    Overapplication,
)
from hub.domain.invoice import Invoice, InvoiceLine, InvoiceStatus
from hub.domain.money import Money
from hub.domain.payment import (
    Payment,
    PaymentApplied,
    PaymentMethod,
    PaymentReceived,
    PaymentStatus,
)

from .stamps import T0, MemoryStore, replay, stamp, uid, usd

SPEC = {spec.name: spec for spec in SPECS}
CUSTOMER = uid("customer")


def invoice(name: str, total: str, customer_id: UUID = CUSTOMER) -> Invoice:
    amount = Decimal(total)
    line = InvoiceLine(sku="SEAT", quantity=Decimal(1), unit_price=amount, amount=amount)
    issued = Invoice.issue(
        stamp("billing"),
        uid(name),
        customer_id=customer_id,
        order_id=uid("order"),
        lines=[line],
        currency="USD",
        subtotal=amount,
        tax=Decimal(0),
        total=amount,
        issue_date=date(2026, 1, 1),
        due_date=date(2026, 1, 31),
    )
    issued.collect_events()  # as if loaded from the store
    return issued


def payment(amount: str = "100.00", customer_id: UUID = CUSTOMER) -> Payment:
    received = Payment.receive(
        stamp("billing"),
        uid("payment"),
        customer_id=customer_id,
        amount=usd(amount),
        method=PaymentMethod.CARD,
        received_at=T0,
        reference="ch_1",
    )
    received.collect_events()  # as if loaded from the store
    return received


def run(name: str, pay: Payment, data: CommandInput, unit: Unit) -> None:
    """Run a command spec the way the service does: the payment is loaded through the unit."""
    handler = SPEC[name].handle
    assert handler is not None
    handler(unit.get(Payment, pay.id), stamp("billing"), data, unit)


def refused(error: type[DomainError], field: str | None, command: Any) -> None:
    with pytest.raises(error) as caught:
        command()
    assert caught.value.field == field


def test_receive() -> None:
    pay = payment()
    assert (pay.status, pay.unapplied, pay.refundable) == (
        PaymentStatus.RECEIVED,
        usd(100),
        usd(100),
    )
    refused(InvalidValue, "amount", lambda: payment("0"))


def test_receive_spec_checks_the_customer() -> None:
    spec = SPEC["receive"]
    assert spec.create is not None
    data = ReceivePayment(
        customer_id=CUSTOMER, amount=usd(10), method=PaymentMethod.WIRE, received_at=T0
    )
    with pytest.raises(NotFound):
        spec.create(stamp(), uid("p"), data, Unit(MemoryStore()))
    customer = Customer.register(stamp(), CUSTOMER, legal_name="Acme")
    assert isinstance(spec.create(stamp(), uid("p"), data, Unit(MemoryStore(customer))), Payment)


def test_apply_changes_payment_and_invoice_together() -> None:
    pay, inv = payment(), invoice("i1", "60.00")
    unit = Unit(MemoryStore(pay, inv))
    run("apply", pay, ApplyPayment(invoice_id=inv.id, amount=usd(60)), unit)
    assert pay.amount_applied == usd(60) and pay.unapplied == usd(40)  # over-payment: credit
    assert inv.status is InvoiceStatus.PAID and inv.payments == {pay.id: usd(60)}
    assert {a.id for a in unit.changed()} == {pay.id, inv.id}


def test_apply_refusals_change_neither_side() -> None:
    pay, small, big = payment("50.00"), invoice("small", "30.00"), invoice("big", "500.00")
    foreign = invoice("foreign", "10.00", customer_id=uid("someone-else"))
    customers = [
        Customer.register(stamp(), uid(name), legal_name=name)
        for name in ("customer", "someone-else")
    ]
    for customer in customers:
        customer.collect_events()  # as loaded from the store: nothing pending
    unit = Unit(MemoryStore(pay, small, big, foreign, *customers))
    cases: list[tuple[type[DomainError], str, ApplyPayment]] = [
        (Overapplication, "amount", ApplyPayment(invoice_id=small.id, amount=usd(40))),
        (Overapplication, "amount", ApplyPayment(invoice_id=big.id, amount=usd(60))),
        (CurrencyMismatch, "amount", ApplyPayment(invoice_id=big.id, amount=Money.of(1, "EUR"))),
        (InvalidValue, "invoice_id", ApplyPayment(invoice_id=foreign.id, amount=usd(1))),
        (NotFound, "invoice_id", ApplyPayment(invoice_id=uid("missing"), amount=usd(1))),
    ]
    for error, field, data in cases:
        refused(error, field, lambda data=data: run("apply", pay, data, unit))
    assert unit.changed() == []
    assert pay.version == small.version == big.version == 1


def test_refund_uses_credit_first_then_newest_applications() -> None:
    pay, first, second = payment("100.00"), invoice("first", "50.00"), invoice("second", "30.00")
    unit = Unit(MemoryStore(pay, first, second))
    run("apply", pay, ApplyPayment(invoice_id=first.id, amount=usd(50)), unit)
    run("apply", pay, ApplyPayment(invoice_id=second.id, amount=usd(30)), unit)
    assert pay.unapplied == usd(20)
    run("refund", pay, RefundPayment(amount=usd(15)), unit)  # from the credit only
    assert (pay.unapplied, second.status) == (usd(5), InvoiceStatus.PAID)
    run("refund", pay, RefundPayment(amount=usd(45)), unit)  # 5 credit + 30 second + 10 first
    assert pay.amount_refunded == usd(60) and pay.unapplied == usd(0)
    assert second.status is InvoiceStatus.OPEN and second.balance == usd(30)
    assert first.status is InvoiceStatus.PARTIALLY_PAID and first.balance == usd(10)
    assert pay.applied_to(first.id) == usd(40) and pay.applied_to(second.id) == usd(0)
    refused(
        Overapplication, "amount", lambda: run("refund", pay, RefundPayment(amount=usd(41)), unit)
    )
    run("refund", pay, RefundPayment(amount=usd(40)), unit)
    assert pay.status is PaymentStatus.REFUNDED and first.status is InvoiceStatus.OPEN
    refused(
        InvalidTransition,
        "status",
        lambda: run("apply", pay, ApplyPayment(invoice_id=first.id, amount=usd(1)), unit),
    )


def test_refund_refusals() -> None:
    pay = payment()
    refused(CurrencyMismatch, "amount", lambda: pay.refund(stamp(), Money.of(1, "EUR")))
    refused(InvalidValue, "amount", lambda: pay.refund(stamp(), usd(0)))
    refused(Overapplication, "amount", lambda: pay.refund(stamp(), usd("100.01")))


def test_failure_takes_every_application_back() -> None:
    pay, inv = payment(), invoice("i1", "80.00")
    unit = Unit(MemoryStore(pay, inv))
    run("apply", pay, ApplyPayment(invoice_id=inv.id, amount=usd(80)), unit)
    run("fail", pay, FailPayment(reason="ACH return R01"), unit)
    assert pay.status is PaymentStatus.FAILED and pay.applications == []
    assert inv.status is InvoiceStatus.OPEN and inv.amount_paid == usd(0)
    refused(InvalidTransition, "status", lambda: run("fail", pay, FailPayment(reason="x"), unit))
    refunded = payment()
    refunded.refund(stamp(), usd(1))
    refused(InvalidTransition, "amount_refunded", lambda: refunded.fail(stamp(), "late"))


def test_chargeback_reverses_what_was_not_refunded() -> None:
    pay, inv = payment(), invoice("i1", "80.00")
    unit = Unit(MemoryStore(pay, inv))
    run("apply", pay, ApplyPayment(invoice_id=inv.id, amount=usd(80)), unit)
    run("refund", pay, RefundPayment(amount=usd(10)), unit)  # from the 20 credit
    run("reverse", pay, ReversePayment(reason="fraudulent"), unit)
    reversed_event = pay.pending_events[-1]
    assert reversed_event.data()["amount"] == {"amount": "90.00", "currency": "USD"}
    assert pay.status is PaymentStatus.REVERSED and pay.amount_applied == usd(0)
    assert inv.status is InvoiceStatus.OPEN
    refused(
        InvalidTransition,
        "status",
        lambda: run("reverse", pay, ReversePayment(reason="again"), unit),
    )
    refused(InvalidTransition, "status", lambda: pay.refund(stamp(), usd(1)))


def test_state_round_trips_and_replay_rebuilds_it() -> None:
    pay, a, b = payment(), invoice("a", "30.00"), invoice("b", "40.00")
    unit = Unit(MemoryStore(pay, a, b))
    run("apply", pay, ApplyPayment(invoice_id=a.id, amount=usd(30)), unit)
    run("apply", pay, ApplyPayment(invoice_id=b.id, amount=usd(40)), unit)
    run("refund", pay, RefundPayment(amount=usd(50)), unit)
    events = pay.collect_events()
    assert isinstance(events[0], PaymentApplied)
    events = [
        *[
            PaymentReceived(
                **creation_fields(stamp("billing"), pay.id),
                customer_id=CUSTOMER,
                amount=usd(100),
                method=PaymentMethod.CARD,
                received_at=T0,
                reference="ch_1",
            )
        ],
        *events,
    ]
    assert Payment.model_validate(pay.state()).state() == pay.state()
    assert replay(events).state() == pay.state()
