"""Invoice aggregate: issue checks, balance and status as money is applied, credited, voided."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from hub.application.invoices import SPECS, IssueInvoice, PostInvoice
from hub.application.unit import Unit
from hub.application.upcast import upcast
from hub.domain.contract import BillingPeriod, Contract, ContractItem
from hub.domain.customer import Customer
from hub.domain.errors import (
    CurrencyMismatch,
    DomainError,
    InvalidTransition,
    InvalidValue,
    NotFound,
    Overapplication,
)
from hub.domain.invoice import (
    ErpAmounts,
    Invoice,
    InvoiceLine,
    InvoicePosted,
    InvoiceStatus,
    UnapplyReason,
)
from hub.domain.money import Money
from hub.domain.order import ChargeType

from .stamps import MemoryStore, replay, stamp, uid, usd

LINES = [
    InvoiceLine(
        sku="SEAT",
        description="Seats, January",
        quantity=Decimal(10),
        unit_price=Decimal(20),
        amount=Decimal("200.00"),
        service_period_start=date(2026, 1, 1),
        service_period_end=date(2026, 1, 31),
    ),
    InvoiceLine(
        sku="DISCOUNT", quantity=Decimal(1), unit_price=Decimal(-20), amount=Decimal("-20.00")
    ),
]
ISSUE: dict[str, Any] = {
    "customer_id": uid("customer"),
    "contract_id": uid("contract"),
    "lines": LINES,
    "currency": "USD",
    "subtotal": Decimal("180.00"),
    "tax": Decimal("20.00"),
    "total": Decimal("200.00"),
    "issue_date": date(2026, 2, 1),
    "due_date": date(2026, 3, 3),
    "source_number": "INV-0001",
}
P1, P2 = uid("payment-1"), uid("payment-2")


def issue(**fields: Any) -> Invoice:
    return Invoice.issue(stamp("billing"), uid("invoice"), **(ISSUE | fields))


def refused(error: type[DomainError], field: str | None, command: Any) -> None:
    with pytest.raises(error) as caught:
        command()
    assert caught.value.field == field


def test_issue() -> None:
    invoice = issue()
    assert invoice.status is InvoiceStatus.OPEN
    assert (invoice.total, invoice.balance, invoice.amount_paid) == (
        usd("200.00"),
        usd("200.00"),
        usd(0),
    )


def test_a_zero_invoice_is_paid_when_issued() -> None:
    free = [LINES[0].model_copy(update={"unit_price": Decimal(0), "amount": Decimal(0)})]
    invoice = issue(lines=free, subtotal=Decimal(0), tax=Decimal(0), total=Decimal(0))
    assert invoice.status is InvoiceStatus.PAID


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"contract_id": None, "order_id": None}, "contract_id"),
        ({"lines": []}, "lines"),
        ({"lines": [LINES[0].model_copy(update={"amount": Decimal("200.001")})]}, "lines.0.amount"),
        (
            {"lines": [LINES[0].model_copy(update={"service_period_end": date(2025, 12, 1)})]},
            "lines.0.service_period_end",
        ),
        ({"subtotal": Decimal("200.00")}, "subtotal"),
        ({"subtotal": Decimal("180.001")}, "subtotal"),
        ({"tax": Decimal("-1.00"), "total": Decimal("179.00")}, "tax"),
        ({"total": Decimal("199.99")}, "total"),
        (
            {
                "lines": [LINES[1]],
                "subtotal": Decimal(-20),
                "tax": Decimal(0),
                "total": Decimal(-20),
            },
            "total",
        ),
        ({"due_date": date(2026, 1, 31)}, "due_date"),
        ({"currency": "ZZZ"}, "currency"),
    ],
)
def test_issue_refusals(fields: dict[str, Any], field: str) -> None:
    refused(InvalidValue, field, lambda: issue(**fields))


def test_issue_in_a_zero_decimal_currency() -> None:
    line = LINES[0].model_copy(update={"amount": Decimal(2000)})
    invoice = issue(
        lines=[line], currency="JPY", subtotal=Decimal(2000), tax=Decimal(200), total=Decimal(2200)
    )
    assert invoice.total == Money.of(2200, "JPY")
    bad = LINES[0].model_copy(update={"amount": Decimal("2000.50")})
    refused(
        InvalidValue,
        "lines.0.amount",
        lambda: issue(
            lines=[bad], currency="JPY", subtotal=Decimal(2000), tax=Decimal(0), total=Decimal(2000)
        ),
    )


def test_payments_move_balance_and_status() -> None:
    invoice = issue()
    invoice.apply_payment(stamp(), P1, usd("50.00"))
    assert invoice.status is InvoiceStatus.PARTIALLY_PAID
    assert (invoice.amount_paid, invoice.balance) == (usd("50.00"), usd("150.00"))
    invoice.apply_payment(stamp(), P2, usd("150.00"))
    assert invoice.status is InvoiceStatus.PAID and invoice.balance.is_zero
    assert invoice.payments == {P1: usd("50.00"), P2: usd("150.00")}
    invoice.unapply_payment(stamp(), P2, usd("150.00"), UnapplyReason.REFUND)
    assert invoice.status is InvoiceStatus.PARTIALLY_PAID
    assert invoice.payments == {P1: usd("50.00")}
    invoice.unapply_payment(stamp(), P1, usd("50.00"), UnapplyReason.REVERSAL)
    assert invoice.status is InvoiceStatus.OPEN and invoice.balance == invoice.total


def test_apply_payment_refusals() -> None:
    invoice = issue()
    refused(Overapplication, "amount", lambda: invoice.apply_payment(stamp(), P1, usd("200.01")))
    refused(
        CurrencyMismatch, "amount", lambda: invoice.apply_payment(stamp(), P1, Money.of(10, "EUR"))
    )
    refused(InvalidValue, "amount", lambda: invoice.apply_payment(stamp(), P1, usd(0)))
    invoice.void(stamp())
    refused(InvalidTransition, "status", lambda: invoice.apply_payment(stamp(), P1, usd(1)))
    assert invoice.version == 2


def test_unapply_refusals() -> None:
    invoice = issue()
    invoice.apply_payment(stamp(), P1, usd(50))
    refused(
        InvalidValue,
        "payment_id",
        lambda: invoice.unapply_payment(stamp(), P2, usd(1), UnapplyReason.REFUND),
    )
    refused(
        Overapplication,
        "amount",
        lambda: invoice.unapply_payment(stamp(), P1, usd("50.01"), UnapplyReason.REFUND),
    )


def test_credit_notes_reduce_the_balance() -> None:
    invoice = issue()
    invoice.apply_payment(stamp(), P1, usd(50))
    invoice.credit(stamp(), usd(30), credit_note_number="CN-1", reason="outage")
    assert (invoice.amount_credited, invoice.balance) == (usd(30), usd(120))
    refused(Overapplication, "amount", lambda: invoice.credit(stamp(), usd("170.01")))
    refused(CurrencyMismatch, "amount", lambda: invoice.credit(stamp(), Money.of(1, "EUR")))
    invoice.credit(stamp(), usd(120))
    assert invoice.status is InvoiceStatus.PAID  # part paid, rest credited: settled


def test_fully_credited_invoice() -> None:
    invoice = issue()
    invoice.credit(stamp(), usd(200))
    assert invoice.status is InvoiceStatus.CREDITED
    refused(Overapplication, "amount", lambda: invoice.apply_payment(stamp(), P1, usd(1)))


def test_void_only_without_money() -> None:
    paid = issue()
    paid.apply_payment(stamp(), P1, usd(1))
    refused(InvalidTransition, "amount_paid", lambda: paid.void(stamp()))
    credited = issue()
    credited.credit(stamp(), usd(1))
    refused(InvalidTransition, "amount_credited", lambda: credited.void(stamp()))
    invoice = issue()
    invoice.void(stamp(), "issued twice")
    assert invoice.status is InvoiceStatus.VOID and invoice.balance.is_zero
    assert invoice.total == usd(200)  # the document stays as issued
    for command in (
        lambda: invoice.void(stamp()),
        lambda: invoice.credit(stamp(), usd(1)),
        lambda: invoice.mark_uncollectible(stamp()),
    ):
        refused(InvalidTransition, "status", command)


def test_uncollectible_and_later_payment() -> None:
    invoice = issue()
    invoice.apply_payment(stamp(), P1, usd(50))
    invoice.mark_uncollectible(stamp("erp"), "customer insolvent")
    assert invoice.status is InvoiceStatus.UNCOLLECTIBLE and invoice.written_off
    refused(InvalidTransition, "status", lambda: invoice.mark_uncollectible(stamp()))
    invoice.apply_payment(stamp(), P2, usd(150))
    assert invoice.status is InvoiceStatus.PAID
    refused(InvalidTransition, "status", lambda: invoice.mark_uncollectible(stamp()))
    invoice.unapply_payment(stamp(), P2, usd(10), UnapplyReason.REVERSAL)
    assert invoice.status is InvoiceStatus.UNCOLLECTIBLE


def test_post_to_erp() -> None:
    invoice = issue()
    invoice.post(stamp("erp"), "JE-1")
    invoice.post(stamp("erp"), "JE-1")
    assert (invoice.erp_document_number, invoice.version) == ("JE-1", 2)
    refused(InvalidTransition, "erp_document_number", lambda: invoice.post(stamp(), "JE-2"))
    refused(InvalidValue, "erp_document_number", lambda: issue().post(stamp(), " "))


def test_state_round_trips_and_replay_rebuilds_it() -> None:
    invoice = issue()
    invoice.apply_payment(stamp(), P1, usd(50))
    invoice.credit(stamp(), usd(25), credit_note_number="CN-1")
    invoice.post(stamp("erp"), "JE-1")
    invoice.unapply_payment(stamp(), P1, usd(20), UnapplyReason.REFUND)
    events = invoice.collect_events()
    assert Invoice.model_validate(invoice.state()).state() == invoice.state()
    assert replay(events).state() == invoice.state()


def test_issue_spec_checks_what_the_invoice_bills() -> None:
    spec = next(s for s in SPECS if s.name == "issue")
    assert spec.create is not None
    customer = Customer.register(stamp(), uid("customer"), legal_name="Acme")
    other = Customer.register(stamp(), uid("other"), legal_name="Other")
    item = ContractItem(
        sku="SEAT",
        rate_plan="p",
        quantity=Decimal(1),
        unit_price=Decimal(1),
        billing_period=BillingPeriod.MONTH,
        charge_type=ChargeType.RECURRING,
    )
    contract = Contract.create(
        stamp(),
        uid("contract"),
        order_id=uid("order"),
        customer_id=other.id,
        items=[item],
        currency="USD",
        term_start=date(2026, 1, 1),
        term_end=date(2026, 12, 31),
    )
    data = IssueInvoice(**ISSUE)
    with pytest.raises(NotFound) as missing:
        spec.create(stamp(), uid("invoice"), data, Unit(MemoryStore(customer)))
    assert missing.value.field == "contract_id"
    unit = Unit(MemoryStore(customer, other, contract))
    refused(InvalidValue, "contract_id", lambda: spec.create(stamp(), uid("i"), data, unit))
    ok = IssueInvoice(**(ISSUE | {"customer_id": other.id}))
    assert isinstance(spec.create(stamp(), uid("invoice"), ok, unit), Invoice)


def test_the_erp_copy_is_recorded_when_it_differs_and_revised_on_a_later_save() -> None:
    """Facts are facts: the ERP's amounts are its own, kept beside billing's, never refused."""
    invoice = issue()
    assert invoice.erp_copy() == ErpAmounts(total=usd(200), subtotal=usd(180), tax=usd(20))
    invoice.post(stamp("erp"), "JE-1", ErpAmounts(total=usd("210.00")))
    assert (invoice.erp_amounts, invoice.total) == (ErpAmounts(total=usd(210)), usd(200))
    invoice.post(stamp("erp"), "JE-1", ErpAmounts(total=usd(210)))  # the same save again
    invoice.post(stamp("erp"), "JE-1")  # no amounts says nothing new
    assert invoice.version == 2
    corrected = ErpAmounts(total=usd(200), subtotal=usd(180), tax=usd(20))
    invoice.post(stamp("erp"), "JE-1", corrected)
    events = invoice.collect_events()
    assert [e.type_name() for e in events][-2:] == ["InvoicePosted", "InvoiceErpRevised"]
    assert invoice.erp_copy() == corrected and invoice.version == 3
    assert replay(events).state() == invoice.state()
    # Only what cannot be true is refused.
    refused(InvalidTransition, "erp_document_number", lambda: invoice.post(stamp(), "JE-2"))
    eur = Money.of(Decimal(200), "EUR")
    refused(CurrencyMismatch, "total", lambda: invoice.post(stamp(), "JE-1", ErpAmounts(total=eur)))
    unbalanced = ErpAmounts(total=usd(200), subtotal=usd(190), tax=usd(20))
    refused(InvalidValue, "total", lambda: invoice.post(stamp(), "JE-1", unbalanced))
    negative = ErpAmounts(total=usd(-1))
    refused(InvalidValue, "total", lambda: issue().post(stamp(), "JE-9", negative))


def test_a_v1_posting_upcasts_to_billings_amounts() -> None:
    """A stored v1 InvoicePosted had no amounts: the ERP's copy was billing's."""
    state = upcast(InvoicePosted, {"erp_document_number": "JE-1", "originator_version": 2})
    assert state["erp_amounts"] is None


def test_post_spec_takes_the_erps_amounts() -> None:
    data = PostInvoice(erp_document_number="JE-1", total=usd(1), tax=usd(0))
    assert data.erp_amounts() == ErpAmounts(total=usd(1), tax=usd(0))
    assert PostInvoice(erp_document_number="JE-1").erp_amounts() is None
    refused(InvalidValue, "total", PostInvoice(erp_document_number="J", tax=usd(0)).erp_amounts)
