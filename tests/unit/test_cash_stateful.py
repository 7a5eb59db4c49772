"""Invoices and payments under any sequence of commands: the money always adds up.

A hypothesis state machine issues invoices, receives payments, and applies, refunds, credits,
voids, fails and reverses in any order and amount, through the real command specs (so both
aggregates change together as in production). After every step:

* each invoice: ``0 <= amount_paid <= total`` and
  ``total - credited - paid = balance - credit_balance`` (balance 0 once void), neither
  negative and at most one above zero (a credit note after payment leaves a credit balance);
* each payment: ``0 <= applied <= amount - refunded``;
* both sides agree on how much of each payment sits on each invoice;
* a refused command changed nothing, anywhere;
* replaying each aggregate's events rebuilds its state.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from hub.application.commands import CommandInput
from hub.application.payments import (
    SPECS,
    ApplyPayment,
    FailPayment,
    RefundPayment,
    ReversePayment,
)
from hub.application.unit import Unit
from hub.domain.base import Aggregate, DomainEvent
from hub.domain.errors import DomainError
from hub.domain.invoice import Invoice, InvoiceLine, InvoiceStatus
from hub.domain.money import Money
from hub.domain.payment import Payment, PaymentMethod

from .stamps import T0, MemoryStore, replay, stamp, uid

SPEC = {spec.name: spec for spec in SPECS}
CUSTOMER = uid("customer")
CENTS = st.integers(min_value=0, max_value=40_000)
PICK = st.integers(min_value=0, max_value=10**6)


def usd_cents(cents: int) -> Money:
    return Money.of(Decimal(cents).scaleb(-2), "USD")


class CashMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryStore()
        self.invoices: list[Invoice] = []
        self.payments: list[Payment] = []
        self.history: dict[UUID, list[DomainEvent]] = {}

    # -- helpers --------------------------------------------------------------------------

    def everything(self) -> list[Aggregate]:
        return [*self.invoices, *self.payments]

    def commit(self, aggregates: list[Aggregate]) -> None:
        for aggregate in aggregates:
            self.history.setdefault(aggregate.id, []).extend(aggregate.collect_events())

    def attempt(self, command: Any, name: str = "") -> None:
        """Run a command; on refusal, check nothing changed on any aggregate."""
        before = {a.id: a.state() for a in self.everything()}
        try:
            command()
        except DomainError as refused:
            event(f"{name} refused: {type(refused).__name__}")
            assert {a.id: a.state() for a in self.everything()} == before
            assert all(not a.pending_events for a in self.everything())
        else:
            event(f"{name} accepted")
            self.commit(self.everything())

    def run(self, name: str, payment: Payment, data: CommandInput) -> None:
        handler = SPEC[name].handle
        assert handler is not None
        unit = Unit(self.store)
        self.attempt(
            lambda: handler(unit.get(Payment, payment.id), stamp("billing"), data, unit), name
        )

    # -- rules ----------------------------------------------------------------------------

    @initialize(subtotal=st.integers(0, 100_000), cents=st.integers(1, 150_000))
    def start(self, subtotal: int, cents: int) -> None:
        self.issue(subtotal, 0)
        self.receive(cents)

    @precondition(lambda self: len(self.invoices) < 5)
    @rule(subtotal=st.integers(0, 100_000), tax=st.integers(0, 10_000))
    def issue(self, subtotal: int, tax: int) -> None:
        amount = Decimal(subtotal).scaleb(-2)
        line = InvoiceLine(sku="SEAT", quantity=Decimal(1), unit_price=amount, amount=amount)
        tax_amount = Decimal(tax).scaleb(-2)
        invoice = Invoice.issue(
            stamp("billing"),
            uuid4(),
            customer_id=CUSTOMER,
            order_id=uid("order"),
            lines=[line],
            currency="USD",
            subtotal=amount,
            tax=tax_amount,
            total=amount + tax_amount,
            issue_date=date(2026, 1, 1),
            due_date=date(2026, 2, 1),
        )
        self.invoices.append(invoice)
        self.store.aggregates[invoice.id] = invoice
        self.commit([invoice])

    @precondition(lambda self: len(self.payments) < 4)
    @rule(cents=st.integers(1, 150_000))
    def receive(self, cents: int) -> None:
        payment = Payment.receive(
            stamp("billing"),
            uuid4(),
            customer_id=CUSTOMER,
            amount=usd_cents(cents),
            method=PaymentMethod.ACH,
            received_at=T0,
        )
        self.payments.append(payment)
        self.store.aggregates[payment.id] = payment
        self.commit([payment])

    @precondition(lambda self: self.invoices and self.payments)
    @rule(p=PICK, i=PICK, cents=CENTS)
    def apply(self, p: int, i: int, cents: int) -> None:
        payment = self.payments[p % len(self.payments)]
        invoice = self.invoices[i % len(self.invoices)]
        self.run("apply", payment, ApplyPayment(invoice_id=invoice.id, amount=usd_cents(cents)))

    @precondition(lambda self: self.payments)
    @rule(p=PICK, cents=CENTS)
    def refund(self, p: int, cents: int) -> None:
        payment = self.payments[p % len(self.payments)]
        self.run("refund", payment, RefundPayment(amount=usd_cents(cents)))

    @precondition(lambda self: self.payments)
    @rule(p=PICK)
    def fail(self, p: int) -> None:
        self.run("fail", self.payments[p % len(self.payments)], FailPayment(reason="returned"))

    @precondition(lambda self: self.payments)
    @rule(p=PICK)
    def reverse(self, p: int) -> None:
        self.run(
            "reverse", self.payments[p % len(self.payments)], ReversePayment(reason="chargeback")
        )

    @precondition(lambda self: self.invoices)
    @rule(i=PICK, cents=CENTS)
    def credit(self, i: int, cents: int) -> None:
        invoice = self.invoices[i % len(self.invoices)]
        self.attempt(lambda: invoice.credit(stamp("billing"), usd_cents(cents)), "credit")

    @precondition(lambda self: self.invoices)
    @rule(i=PICK)
    def void(self, i: int) -> None:
        invoice = self.invoices[i % len(self.invoices)]
        self.attempt(lambda: invoice.void(stamp("billing")), "void")

    @precondition(lambda self: self.invoices)
    @rule(i=PICK)
    def write_off(self, i: int) -> None:
        invoice = self.invoices[i % len(self.invoices)]
        self.attempt(lambda: invoice.mark_uncollectible(stamp("erp")), "write_off")

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def invoices_add_up(self) -> None:
        for inv in self.invoices:
            zero = Money.zero("USD")
            assert zero <= inv.amount_paid <= inv.total
            assert zero <= inv.amount_credited <= inv.total
            if inv.status is InvoiceStatus.VOID:
                assert inv.balance == zero and inv.amount_paid == zero
            else:
                owed = inv.total - inv.amount_credited - inv.amount_paid
                assert inv.balance - inv.credit_balance == owed
                assert inv.balance >= zero and inv.credit_balance >= zero
                assert inv.balance.is_zero or inv.credit_balance.is_zero
            paid = sum((m.amount for m in inv.payments.values()), Decimal(0))
            assert paid == inv.amount_paid.amount
            if inv.balance.is_zero and inv.status is not InvoiceStatus.VOID:
                assert inv.status in (InvoiceStatus.PAID, InvoiceStatus.CREDITED)

    @invariant()
    def payments_add_up(self) -> None:
        for pay in self.payments:
            zero = Money.zero("USD")
            assert zero <= pay.amount_applied <= pay.amount - pay.amount_refunded
            assert zero <= pay.amount_refunded <= pay.amount
            applied = sum((a.amount.amount for a in pay.applications), Decimal(0))
            assert applied == pay.amount_applied.amount
            assert all(a.amount.amount > 0 for a in pay.applications)

    @invariant()
    def both_sides_agree(self) -> None:
        for pay in self.payments:
            for inv in self.invoices:
                on_invoice = inv.payments.get(pay.id, Money.zero("USD"))
                assert pay.applied_to(inv.id) == on_invoice

    @invariant()
    def replay_rebuilds_every_aggregate(self) -> None:
        for aggregate in self.everything():
            events = self.history[aggregate.id]
            assert len(events) == aggregate.version
            assert replay(events).state() == aggregate.state()


CashMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=50, deadline=None)
TestCashMachine = CashMachine.TestCase
