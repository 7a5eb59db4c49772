"""What the sources tell beyond the basics, kept for reconciliation and revenue.

Order lines' billing frequency, billing price, term and service start, and the opportunity's
own amount; invoice lines' charge type, half-open service period, proration, what they bill
and their tax; the tax status hold; credit notes naming lines and a credit note after
payment; refund documents; failed payment attempts; the v1 -> v2 upcasts of stored events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from hub.application.invoices import SPECS as INVOICE_SPECS
from hub.application.invoices import IssueInvoice
from hub.application.payments import SPECS as PAYMENT_SPECS
from hub.application.payments import ApplyPayment, RefundPayment
from hub.application.unit import Unit
from hub.application.upcast import upcast
from hub.application.views import aggregate_view
from hub.domain.base import AggregateSnapshot
from hub.domain.contract import ContractStatus, ItemChange
from hub.domain.customer import Customer
from hub.domain.errors import (
    AlreadyExists,
    CurrencyMismatch,
    DomainError,
    InvalidTransition,
    InvalidValue,
    Overapplication,
)
from hub.domain.invoice import (
    CreditNoteLine,
    Invoice,
    InvoiceCredited,
    InvoiceIssued,
    InvoiceLine,
    InvoiceStatus,
    PaymentAttempt,
    TaxStatus,
    UnapplyReason,
)
from hub.domain.money import Money
from hub.domain.order import (
    BillingFrequency,
    ChargeType,
    Order,
    OrderAmended,
    OrderLine,
    OrderPlaced,
)
from hub.domain.payment import Payment, PaymentMethod, PaymentRefunded

from .stamps import D0, T0, MemoryStore, replay, stamp, uid, usd
from .test_contract import active_contract

SEATS = OrderLine(
    sku="SEAT",
    quantity=Decimal(10),
    unit_price=Decimal("240.00"),
    charge_type=ChargeType.RECURRING,
    billing_frequency=BillingFrequency.MONTH,
    billing_unit_price=Decimal("20.00"),
)
SETUP = OrderLine(
    sku="SETUP", quantity=Decimal(1), unit_price=Decimal(500), charge_type=ChargeType.ONE_TIME
)


def refused(error: type[DomainError], field: str | None, command: Any) -> None:
    with pytest.raises(error) as caught:
        command()
    assert caught.value.field == field


def place(lines: list[OrderLine] | None = None, **fields: Any) -> Order:
    values: dict[str, Any] = {
        "customer_id": uid("customer"),
        "lines": [SEATS, SETUP] if lines is None else lines,
        "currency": "USD",
        "term_months": 12,
        "start_date": D0,
        "booking_date": D0,
        "opportunity_id": "006000000000001AAA",
    }
    return Order.place(stamp("crm"), uid("order"), **(values | fields))


# -- orders ------------------------------------------------------------------------------


def test_lines_state_their_billing_term_and_start() -> None:
    later = SEATS.model_copy(update={"term_months": 6, "service_start_date": date(2026, 7, 1)})
    order = place(
        [SEATS, SETUP, later], opportunity_amount=usd(5300), close_date=date(2025, 12, 20)
    )
    seats, setup, half = order.lines
    assert (seats.term_months, seats.service_start_date) == (12, D0)  # the order's
    assert seats.billing_frequency is BillingFrequency.MONTH
    assert seats.billing_unit_price == Decimal("20.00")
    assert setup.billing_frequency is BillingFrequency.ONE_TIME  # a one-time line bills once
    assert (half.term_months, half.service_start_date) == (6, date(2026, 7, 1))
    assert order.totals.total == usd(5300)
    assert (order.opportunity_amount, order.close_date) == (usd(5300), date(2025, 12, 20))
    rebuilt = replay(order.collect_events())
    assert rebuilt.state() == order.state()
    assert AggregateSnapshot.take(rebuilt).mutate(None).state() == order.state()


def test_amended_lines_run_for_the_orders_term_and_keep_the_opportunity_amount() -> None:
    order = place(opportunity_amount=usd(5300))
    order.amend(stamp("crm"), [SEATS.model_copy(update={"quantity": Decimal(12)})])
    (line,) = order.lines
    assert (line.term_months, line.service_start_date, line.amount) == (12, D0, Decimal(2880))
    assert order.opportunity_amount == usd(5300)  # what the opportunity said: not recomputed


@pytest.mark.parametrize(
    ("line", "fields", "field"),
    [
        (SEATS.model_copy(update={"billing_frequency": BillingFrequency.ONE_TIME}), {}, "0"),
        (SETUP.model_copy(update={"billing_frequency": BillingFrequency.YEAR}), {}, "0"),
        (SEATS.model_copy(update={"billing_unit_price": Decimal("20.001")}), {}, "0"),
    ],
)
def test_line_billing_that_cannot_be_true_is_refused(
    line: OrderLine, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        place([line], **fields)
    assert caught.value.field is not None and caught.value.field.startswith(f"lines.{field}.")


def test_the_opportunity_amount_is_in_the_orders_currency() -> None:
    eur = Money.of(100, "EUR")
    refused(CurrencyMismatch, "opportunity_amount", lambda: place(opportunity_amount=eur))
    refused(InvalidValue, "opportunity_amount", lambda: place(opportunity_amount=usd(-1)))


def _stored(event: Any) -> dict[str, Any]:
    """A current event's stored JSON state, without the store-key fields."""
    return dict(event.model_dump(mode="json", exclude={"originator_id", "originator_version"}))


def test_a_stored_v1_order_reads_with_its_lines_filled_from_the_order() -> None:
    order = place([SEATS.model_copy(update={"billing_frequency": None}), SETUP])
    placed_event, *_ = order.collect_events()
    state = _stored(placed_event)
    for line in state["lines"]:  # what v1 stored: none of the new line fields
        for key in ("billing_frequency", "billing_unit_price", "term_months"):
            line.pop(key)
        line.pop("service_start_date")
    state.pop("opportunity_amount")
    state.pop("close_date")
    upcast(OrderPlaced, state)
    event = OrderPlaced(originator_id=order.id, originator_version=1, **state)
    seats, setup = event.lines
    assert (seats.term_months, seats.service_start_date, seats.billing_frequency) == (12, D0, None)
    assert setup.billing_frequency is BillingFrequency.ONE_TIME
    assert event.opportunity_amount is None

    rebuilt = event.mutate(None)
    amendment = _stored(
        OrderAmended(
            originator_id=order.id,
            originator_version=2,
            timestamp=T0,
            provenance=stamp("crm").provenance,
            lines=[SEATS],
            totals=order.totals,
        )
    )
    for key in ("billing_frequency", "billing_unit_price", "term_months", "service_start_date"):
        amendment["lines"][0].pop(key)
    amended = OrderAmended(
        originator_id=order.id, originator_version=2, **upcast(OrderAmended, amendment)
    ).mutate(rebuilt)
    assert (amended.lines[0].term_months, amended.lines[0].service_start_date) == (12, D0)


# -- invoices: lines and tax -------------------------------------------------------------

JAN = InvoiceLine(
    sku="SEAT",
    quantity=Decimal(10),
    unit_price=Decimal(20),
    amount=Decimal("200.00"),
    service_period_start=date(2026, 1, 1),
    service_period_end=date(2026, 2, 1),  # half-open: all of January
    charge_type=ChargeType.RECURRING,
    contract_item_sku="SEAT",
    tax=Decimal("20.00"),
)
PRORATED = InvoiceLine(
    sku="SEAT",
    quantity=Decimal(2),
    unit_price=Decimal(10),
    amount=Decimal("20.00"),
    service_period_start=date(2026, 1, 16),
    service_period_end=date(2026, 2, 1),
    charge_type=ChargeType.RECURRING,
    proration=True,
    tax=Decimal("2.00"),
)
ISSUE: dict[str, Any] = {
    "customer_id": uid("customer"),
    "contract_id": uid("contract"),
    "lines": [JAN, PRORATED],
    "currency": "USD",
    "subtotal": Decimal("220.00"),
    "tax": Decimal("22.00"),
    "total": Decimal("242.00"),
    "issue_date": date(2026, 2, 1),
    "due_date": date(2026, 3, 3),
}


def issue(**fields: Any) -> Invoice:
    return Invoice.issue(stamp("billing"), uid("invoice"), **(ISSUE | fields))


def test_lines_say_what_they_bill_and_their_tax() -> None:
    invoice = issue()
    assert [line.proration for line in invoice.lines] == [False, True]
    assert invoice.lines[0].contract_item_sku == "SEAT"
    rebuilt = replay(invoice.collect_events())
    assert rebuilt.state() == invoice.state()


def test_line_taxes_add_up_to_the_invoice_tax() -> None:
    refused(InvalidValue, "tax", lambda: issue(tax=Decimal("21.00"), total=Decimal("241.00")))
    untaxed = PRORATED.model_copy(update={"tax": None})  # a line without tax counts zero
    refused(InvalidValue, "tax", lambda: issue(lines=[JAN, untaxed]))
    ok = issue(lines=[JAN, untaxed], tax=Decimal(20), total=Decimal(240))
    assert ok.tax == usd(20)
    bad = JAN.model_copy(update={"tax": Decimal("0.001")})
    refused(InvalidValue, "lines.0.tax", lambda: issue(lines=[bad, PRORATED]))


def test_the_service_period_is_half_open() -> None:
    empty = JAN.model_copy(update={"service_period_end": date(2026, 1, 1)})
    refused(InvalidValue, "lines.0.service_period_end", lambda: issue(lines=[empty, PRORATED]))


def test_a_line_names_a_line_of_the_invoices_order() -> None:
    customer = Customer.register(stamp(), uid("customer"), legal_name="Acme", display_name="Acme")
    order = place()
    spec = next(s for s in INVOICE_SPECS if s.name == "issue")
    assert spec.create is not None

    def run(line: InvoiceLine, **fields: Any) -> None:
        data = IssueInvoice.model_validate(
            ISSUE
            | {"contract_id": None, "order_id": order.id, "lines": [line], "tax": 20}
            | {"subtotal": 200, "total": 220}
            | fields
        )
        spec.create(stamp("billing"), uid("inv-x"), data, Unit(MemoryStore(customer, order)))

    run(JAN.model_copy(update={"order_line": 1, "contract_item_sku": None}))
    with pytest.raises(InvalidValue) as caught:
        run(JAN.model_copy(update={"order_line": 2, "contract_item_sku": None}))
    assert caught.value.field == "lines.0.order_line"
    with pytest.raises(InvalidValue) as caught:
        run(JAN.model_copy(update={"order_line": None}))  # a contract item, but no contract
    assert caught.value.field == "lines.0.contract_item_sku"


def test_a_failed_tax_calculation_holds_the_invoice_until_it_is_calculated() -> None:
    invoice = issue()
    invoice.record_tax(stamp("erp"), TaxStatus.FAILED, "no nexus for region")
    assert invoice.tax_held and aggregate_view(invoice)["state"]["tax_held"] is True
    with pytest.raises(InvalidTransition) as caught:
        invoice.post(stamp("erp"), "DOC-1")
    assert caught.value.field == "tax_status" and "no nexus for region" in caught.value.message
    invoice.apply_payment(stamp("billing"), uid("payment"), usd(10))  # still collectible
    versions = invoice.version
    invoice.record_tax(stamp("erp"), TaxStatus.FAILED, "no nexus for region")
    assert invoice.version == versions  # the same report again: nothing recorded
    invoice.record_tax(stamp("erp"), TaxStatus.CALCULATED)
    assert (invoice.tax_status, invoice.tax_failure_reason) == (TaxStatus.CALCULATED, None)
    invoice.post(stamp("erp"), "DOC-1")
    assert invoice.erp_document_number == "DOC-1"
    rebuilt = replay(invoice.collect_events())
    assert rebuilt.state() == invoice.state()


def test_an_invoice_issued_with_failed_tax_is_held_from_the_start() -> None:
    invoice = issue(tax_status=TaxStatus.FAILED)
    refused(InvalidTransition, "tax_status", lambda: invoice.post(stamp("erp"), "DOC-1"))
    invoice.record_tax(stamp("erp"), TaxStatus.NOT_APPLICABLE)
    invoice.post(stamp("erp"), "DOC-1")


# -- credit notes ------------------------------------------------------------------------


def test_a_credit_note_names_the_lines_it_credits() -> None:
    invoice = issue()
    part = [CreditNoteLine(line=0, amount=Decimal(100)), CreditNoteLine(line=1, amount=Decimal(5))]
    invoice.credit(stamp("billing"), usd(105), credit_note_number="CN-1", lines=part)
    assert invoice.credit_notes[0].lines == part and invoice.balance == usd(137)
    refused(
        InvalidValue,
        "lines",
        lambda: invoice.credit(stamp(), usd(10), lines=[CreditNoteLine(line=0, amount=9)]),
    )
    refused(
        InvalidValue,
        "lines.0.line",
        lambda: invoice.credit(stamp(), usd(1), lines=[CreditNoteLine(line=2, amount=1)]),
    )
    refused(
        InvalidValue,
        "lines.0.amount",
        lambda: invoice.credit(stamp(), usd(1), lines=[CreditNoteLine(line=0, amount="0.001")]),
    )
    # line 1 billed 20.00 + 2.00 tax; 5 credited already, so at most 17 more
    refused(
        Overapplication,
        "lines.0.amount",
        lambda: invoice.credit(stamp(), usd(18), lines=[CreditNoteLine(line=1, amount=18)]),
    )
    invoice.credit(stamp(), usd(17), lines=[CreditNoteLine(line=1, amount=17)])
    rebuilt = replay(invoice.collect_events())
    assert rebuilt.state() == invoice.state()


def test_a_credit_note_after_payment_leaves_a_credit_balance() -> None:
    invoice = issue()
    invoice.apply_payment(stamp("billing"), uid("payment"), usd(242))
    assert invoice.status is InvoiceStatus.PAID
    invoice.credit(stamp("billing"), usd(42), credit_note_number="CN-9", reason="outage")
    assert (invoice.balance, invoice.credit_balance) == (usd(0), usd(42))
    assert invoice.status is InvoiceStatus.PAID and invoice.amount_credited == usd(42)
    refused(Overapplication, "amount", lambda: invoice.credit(stamp(), usd("200.01")))
    # refunding the credit note takes the money back off the invoice: the credit is settled
    invoice.unapply_payment(stamp("billing"), uid("payment"), usd(42), UnapplyReason.REFUND)
    assert (invoice.balance, invoice.credit_balance) == (usd(0), usd(0))
    assert AggregateSnapshot.take(invoice).mutate(None).state() == invoice.state()


def test_a_snapshot_from_before_credit_balance_reads_with_none_owed() -> None:
    invoice = issue()
    state = invoice.state()
    state.pop("credit_balance")
    assert Invoice.model_validate(state).credit_balance == usd(0)


def test_stored_v1_invoice_events_read_as_v2() -> None:
    invoice = issue()
    invoice.credit(stamp("billing"), usd(1), credit_note_number="CN-1")
    issued, credited = invoice.collect_events()
    state = _stored(issued)
    for line in state["lines"]:
        for key in ("charge_type", "proration", "contract_item_sku", "order_line", "tax"):
            line.pop(key)
    state.pop("tax_status")
    upcast(InvoiceIssued, state)
    assert state["lines"][0]["proration"] is False and state["tax_status"] is None
    InvoiceIssued(originator_id=invoice.id, originator_version=1, **state)
    note = _stored(credited)
    note["credit"].pop("lines")
    note["credit"].pop("issue_date")
    upcast(InvoiceCredited, note)
    assert note["credit"]["lines"] == []


# -- failed payment attempts -------------------------------------------------------------


def test_failed_payment_attempts_are_listed_and_change_no_balance() -> None:
    invoice = issue()
    first = PaymentAttempt(attempted_at=T0, amount=usd(242), reason="card_declined", attempt=1)
    invoice.record_payment_failure(stamp("billing"), first)
    invoice.record_payment_failure(stamp("billing"), first)  # re-delivered: counted once
    second = first.model_copy(update={"attempt": 2, "attempted_at": T0 + timedelta(days=3)})
    invoice.record_payment_failure(stamp("billing"), second)
    assert invoice.payment_failures == [first, second]
    assert invoice.balance == usd(242) and invoice.status is InvoiceStatus.OPEN
    eur = first.model_copy(update={"amount": Money.of(1, "EUR")})
    refused(CurrencyMismatch, "amount", lambda: invoice.record_payment_failure(stamp(), eur))
    assert replay(invoice.collect_events()).state() == invoice.state()


# -- payments: unapplied cash and refund documents ---------------------------------------

PAYMENT_SPEC = {spec.name: spec for spec in PAYMENT_SPECS}


def paying(amount: int) -> tuple[Payment, Invoice, Unit]:
    invoice = issue()
    payment = Payment.receive(
        stamp("billing"),
        uid("payment"),
        customer_id=uid("customer"),
        amount=usd(amount),
        method=PaymentMethod.CARD,
        received_at=T0,
    )
    customer = Customer.register(stamp(), uid("customer"), legal_name="Acme", display_name="Acme")
    return payment, invoice, Unit(MemoryStore(customer, payment, invoice))


def test_a_payment_larger_than_its_invoice_keeps_the_rest_unapplied() -> None:
    payment, invoice, unit = paying(300)
    handle = PAYMENT_SPEC["apply"].handle
    assert handle is not None
    handle(payment, stamp("billing"), ApplyPayment(invoice_id=invoice.id, amount=usd(242)), unit)
    assert invoice.status is InvoiceStatus.PAID and payment.unapplied == usd(58)
    assert aggregate_view(payment)["state"]["unapplied"] == {"currency": "USD", "amount": "58.00"}
    refused(
        Overapplication,
        "amount",
        lambda: handle(payment, stamp(), ApplyPayment(invoice_id=invoice.id, amount=usd(1)), unit),
    )
    assert "unapplied" not in payment.state()  # derived: snapshots keep only what events set


def test_refunds_are_documents_linked_to_their_credit_note_and_counted_once() -> None:
    payment, invoice, unit = paying(242)
    apply, refund = PAYMENT_SPEC["apply"].handle, PAYMENT_SPEC["refund"].handle
    assert apply is not None and refund is not None
    apply(payment, stamp("billing"), ApplyPayment(invoice_id=invoice.id, amount=usd(242)), unit)
    invoice.credit(stamp("billing"), usd(42), credit_note_number="CN-9")
    assert invoice.credit_balance == usd(42)
    when = datetime(2026, 2, 10, 12, tzinfo=UTC)
    data = RefundPayment(
        amount=usd(42), reference="re_1", credit_note_number="CN-9", refunded_at=when
    )
    refund(payment, stamp("billing"), data, unit)
    (document,) = payment.refunds
    assert (document.reference, document.credit_note_number, document.refunded_at) == (
        "re_1",
        "CN-9",
        when,
    )
    assert (invoice.balance, invoice.credit_balance, invoice.status) == (
        usd(0),
        usd(0),
        InvoiceStatus.PAID,
    )
    version = payment.version
    refund(payment, stamp("billing"), data, unit)  # the same refund again
    assert payment.version == version and payment.amount_refunded == usd(42)
    other = data.model_copy(update={"amount": usd(10)})
    refused(AlreadyExists, "reference", lambda: refund(payment, stamp(), other, unit))
    rebuilt = replay(payment.collect_events())
    assert rebuilt.state() == payment.state()


def test_a_refund_of_a_fully_refunded_payment_delivered_again_is_a_redelivery() -> None:
    payment, _, unit = paying(50)
    refund = PAYMENT_SPEC["refund"].handle
    assert refund is not None
    data = RefundPayment(amount=usd(50), reference="re_all")
    refund(payment, stamp("billing"), data, unit)
    refund(payment, stamp("billing"), data, unit)  # refunded payment: still no refusal
    assert len(payment.refunds) == 1


def test_a_stored_v1_refund_reads_with_its_recorded_time_as_its_date() -> None:
    payment, _, _ = paying(50)
    payment.refund(stamp("billing", minutes=5), usd(5), "re_1")
    _, refunded = payment.collect_events()
    state = _stored(refunded)
    state.pop("credit_note_number")
    state.pop("refunded_at")
    upcast(PaymentRefunded, state)
    event = PaymentRefunded(originator_id=payment.id, originator_version=2, **state)
    assert event.refunded_at == T0 + timedelta(minutes=5)


# -- scheduled contract changes ----------------------------------------------------------

TODAY = T0.date()


def test_a_downgrade_at_the_next_period_is_a_scheduled_change() -> None:
    contract = active_contract()
    next_period = date(2026, 2, 1)
    contract.amend(stamp("billing"), [ItemChange(sku="SEAT", quantity=Decimal(5))], next_period)
    seats = next(i for i in contract.items if i.sku == "SEAT")
    assert seats.quantity == 10  # in force today: the current period keeps its seats
    assert [c.effective_date for c in contract.scheduled_changes] == [next_period]
    on_the_day = contract.on_business_date(next_period)
    assert next(i for i in on_the_day.items if i.sku == "SEAT").quantity == 5


def test_cancel_at_period_end_runs_until_the_cancellation_date() -> None:
    contract = active_contract()
    period_end = date(2026, 2, 1)
    contract.cancel(stamp("billing"), period_end, "cancel at period end")
    assert contract.status is ContractStatus.CANCELLED  # recorded (and listed) as cancelled
    assert contract.on_business_date(TODAY).status is ContractStatus.ACTIVE
    assert contract.on_business_date(period_end - timedelta(days=1)).status is (
        ContractStatus.ACTIVE
    )
    assert contract.on_business_date(period_end).status is ContractStatus.CANCELLED
    assert contract.cancellation_date == period_end
