"""A command naming a merged customer: facts follow the merge, intentions are refused.

Facts (billing's invoice, a payment received, billing's subscription) are recorded on the
surviving customer; an intention (placing an order, which asks Concord to book it) is
refused with the survivor's id so the caller can resend it there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.application import contracts, invoices, orders, payments
from hub.application.commands import CommandSpec
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.contract import BillingPeriod, ContractItem
from hub.domain.customer import Customer, CustomerDetails
from hub.domain.errors import InvalidValue, MergedAway
from hub.domain.order import ChargeType, Order, OrderLine

from .stamps import D0, MemoryStore, stamp, uid, usd
from .test_invoice import LINES

LINE = OrderLine(
    sku="SEAT", quantity=Decimal(1), unit_price=Decimal(10), charge_type=ChargeType.RECURRING
)


def chain(length: int) -> tuple[list[Customer], MemoryStore]:
    """Customers c0 <- c1 <- ... : each merged into the previous one; c0 survives."""
    customers = [
        Customer.register(stamp(), uid(f"c{i}"), legal_name=f"C{i}") for i in range(length)
    ]
    for i in range(1, length):
        customers[i].merge_into(stamp(), customers[i - 1].id)
    return customers, MemoryStore(*customers)


def create(specs: list[CommandSpec], name: str, store: MemoryStore, **data: Any) -> Aggregate:
    spec = next(s for s in specs if s.name == name)
    assert spec.create is not None
    return spec.create(stamp("billing"), uid(name), spec.input_model(**data), Unit(store))


def invoice_data(customer_id: Any, **more: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "lines": LINES,
        "currency": "USD",
        "subtotal": Decimal(180),
        "tax": Decimal(20),
        "total": Decimal(200),
        "issue_date": D0,
        "due_date": D0,
    } | more


def order_of(customer: Customer) -> Order:
    return Order.place(
        stamp(),
        uid(f"order-{customer.id}"),
        customer_id=customer.id,
        lines=[LINE],
        currency="USD",
        term_months=12,
        start_date=D0,
        booking_date=D0,
    )


@given(st.integers(min_value=2, max_value=6))
def test_facts_follow_the_merge_to_the_survivor(length: int) -> None:
    customers, store = chain(length)
    survivor, merged = customers[0], customers[-1]
    order = order_of(merged)  # placed before the merge
    store.aggregates[order.id] = order
    invoice = create(invoices.SPECS, "issue", store, **invoice_data(merged.id, order_id=order.id))
    assert invoice.customer_id == survivor.id  # type: ignore[attr-defined]
    payment = create(
        payments.SPECS,
        "receive",
        store,
        customer_id=merged.id,
        amount=usd(10),
        method="wire",
        received_at=datetime(2026, 1, 5, tzinfo=UTC),
    )
    assert payment.customer_id == survivor.id  # type: ignore[attr-defined]
    item = ContractItem(
        sku="SEAT",
        rate_plan="p",
        quantity=Decimal(1),
        unit_price=Decimal(10),
        billing_period=BillingPeriod.MONTH,
        charge_type=ChargeType.RECURRING,
    )
    contract = create(
        contracts.SPECS,
        "create",
        store,
        order_id=order.id,
        customer_id=customers[1].id,  # another merged-away record of the same survivor
        items=[item],
        currency="USD",
        term_start=D0,
        term_end=D0.replace(year=2027),
    )
    assert contract.customer_id == survivor.id  # type: ignore[attr-defined]


def test_an_intention_naming_a_merged_customer_is_refused_with_the_survivor() -> None:
    customers, store = chain(3)
    with pytest.raises(MergedAway) as caught:
        create(
            orders.SPECS,
            "place",
            store,
            customer_id=customers[2].id,
            lines=[LINE],
            currency="USD",
            term_months=12,
            start_date=D0,
            booking_date=D0,
        )
    assert caught.value.survivor_id == customers[0].id
    assert caught.value.field == "customer_id"
    assert str(customers[0].id) in caught.value.message


def test_commands_on_a_merged_customer_name_the_survivor() -> None:
    customers, _ = chain(2)
    with pytest.raises(MergedAway) as caught:
        customers[1].change_details(stamp(), CustomerDetails(display_name="X"))
    assert caught.value.survivor_id == customers[0].id


def test_another_customer_is_still_refused_after_following() -> None:
    customers, store = chain(2)
    stranger = Customer.register(stamp(), uid("stranger"), legal_name="S")
    store.aggregates[stranger.id] = stranger
    order = order_of(stranger)
    store.aggregates[order.id] = order
    with pytest.raises(InvalidValue) as caught:
        create(invoices.SPECS, "issue", store, **invoice_data(customers[1].id, order_id=order.id))
    assert caught.value.field == "order_id"


# -- a merge moves the merged customer's open invoices and credit to the survivor ----------


def test_a_merge_moves_open_invoices_and_unapplied_payments() -> None:
    from hub.application.customers import SPECS as CUSTOMER_SPECS
    from hub.application.customers import MergeCustomer
    from hub.domain.invoice import Invoice
    from hub.domain.payment import Payment, PaymentMethod

    survivor = Customer.register(stamp(), uid("survivor"), legal_name="Acme")
    merged = Customer.register(stamp(), uid("merged"), legal_name="Acme Dup")

    def invoice(name: str) -> Invoice:
        return Invoice.issue(
            stamp("billing"), uid(name), **(invoice_data(merged.id, order_id=uid("o")))
        )

    open_one, paid, void = invoice("open"), invoice("paid"), invoice("void")
    paid.apply_payment(stamp("billing"), uid("p0"), usd(200))
    void.void(stamp("billing"))

    def received(name: str, amount: int) -> Payment:
        return Payment.receive(
            stamp("billing"),
            uid(name),
            customer_id=merged.id,
            amount=usd(amount),
            method=PaymentMethod.WIRE,
            received_at=datetime(2026, 1, 5, tzinfo=UTC),
        )

    credit, spent = received("credit", 50), received("spent", 200)
    spent.apply_to(stamp("billing"), paid.id, usd(200))
    everything = [survivor, merged, open_one, paid, void, credit, spent]
    for aggregate in everything:
        aggregate.collect_events()
    unit = Unit(MemoryStore(*everything))
    spec = next(s for s in CUSTOMER_SPECS if s.name == "merge")
    assert spec.handle is not None
    target = MergeCustomer(target_customer_id=survivor.id)
    spec.handle(unit.get(Customer, merged.id), stamp("crm"), target, unit)

    changed = {a.id for a in unit.changed()}
    assert changed == {merged.id, survivor.id, open_one.id, credit.id}
    assert open_one.customer_id == survivor.id and credit.customer_id == survivor.id
    assert paid.customer_id == merged.id and void.customer_id == merged.id
    moved = open_one.pending_events[-1]
    assert moved.type_name() == "InvoiceMovedToSurvivor"
    assert moved.data()["from_customer_id"] == str(merged.id)
    assert credit.pending_events[-1].type_name() == "PaymentMovedToSurvivor"
