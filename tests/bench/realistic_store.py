"""A realistic event store for the projection benchmarks, written fast through the stores'
own batched ``save()`` (the path the hub's commands end in).

Why not the commands of ``tests/integration/quarter.py``: one command per HTTP-less call
stores ~1,000 events/s on this VM, so half a million events would take minutes of
generation before the measurement starts. The aggregates' own methods make the same events
(the same domain rules run), and saving 100 accounts per ``save()`` per store stores
them at the library's batched rate.

One *account* is a quarter-shaped customer lifecycle (~22 events): a customer registered,
CRM-linked, numbered and given terms; a deal of a one-time, a recurring and a usage line,
accepted by the ERP, amended (more seats) and accepted again; its contract created,
activated, amended, its usage recorded (every 4th renewed, every 10th suspended and
resumed); two invoices with lines issued and posted; two card payments received and
applied (each application is an event on the payment and on the invoice); every 10th
account's second invoice is partly credited and its payment partly refunded. Five products
are defined once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from adapters.postgres.datastore import open_datastore
from adapters.postgres.stores import store_class
from adapters.settings import Settings
from hub.domain.base import Aggregate
from hub.domain.contract import BillingPeriod, Contract, ContractItem, ItemChange
from hub.domain.customer import Customer
from hub.domain.invoice import CreditNoteLine, Invoice, InvoiceLine
from hub.domain.money import Money
from hub.domain.order import ChargeType, Order, OrderLine
from hub.domain.payment import Payment
from hub.domain.product import Product, ProductIds, product_id
from tests.bench.common import stamp

#: Accounts per ``save()`` of each store (~2,200 events per round).
ACCOUNTS_PER_SAVE = 100
USD = "USD"
MONTH = BillingPeriod("month")
ONE_TIME, RECURRING, USAGE = ChargeType("one_time"), ChargeType("recurring"), ChargeType("usage")


def _usd(amount: str) -> Money:
    return Money(currency=USD, amount=Decimal(amount))


def _deal_lines(seats: int) -> list[OrderLine]:
    return [
        OrderLine(
            sku="SETUP", quantity=Decimal(1), unit_price=Decimal("1000.00"), charge_type=ONE_TIME
        ),
        OrderLine(
            sku="SEATS",
            quantity=Decimal(seats),
            unit_price=Decimal("1200.00"),
            charge_type=RECURRING,
            billing_frequency="month",  # type: ignore[arg-type]
            billing_unit_price=Decimal("100.00"),
        ),
        OrderLine(sku="API", quantity=Decimal(1), unit_price=Decimal("500.00"), charge_type=USAGE),
    ]


def products() -> list[Product]:
    catalogue = [
        ("SETUP", ONE_TIME, None, ["ITEM-100"]),
        ("SEATS", RECURRING, MONTH, ["ITEM-200"]),
        ("API", USAGE, None, []),
        ("ADDON", RECURRING, MONTH, ["ITEM-300"]),
        ("SUPPORT", RECURRING, MONTH, ["ITEM-400", "ITEM-401"]),
    ]
    return [
        Product.define(
            stamp(),
            product_id(sku),
            sku=sku,
            charge_type=kind,
            billing_period=period,
            ids=ProductIds(erp_item_ids=items),
        )
        for sku, kind, period, items in catalogue
    ]


def _invoice(
    customer: Customer, contract: Contract, n: int, month: int, seats: int, setup: bool
) -> Invoice:
    start, end = date(2024, month, 1), date(2024, month + 1, 1)
    seat_cents = seats * 10000
    lines = [
        InvoiceLine(
            sku="SEATS",
            quantity=Decimal(seats),
            unit_price=Decimal("100.00"),
            amount=Decimal(seat_cents) / 100,
            service_period_start=start,
            service_period_end=end,
            charge_type=RECURRING,
        ),
        InvoiceLine(
            sku="API",
            quantity=Decimal(1),
            unit_price=Decimal("37.50"),
            amount=Decimal("37.50"),
            service_period_start=start,
            service_period_end=end,
            charge_type=USAGE,
        ),
    ]
    if setup:
        lines.insert(
            0,
            InvoiceLine(
                sku="SETUP",
                quantity=Decimal(1),
                unit_price=Decimal("1000.00"),
                amount=Decimal("1000.00"),
                charge_type=ONE_TIME,
            ),
        )
    subtotal = sum((line.amount for line in lines), Decimal("0.00"))
    tax = Decimal(seat_cents // 10) / 100
    return Invoice.issue(
        stamp(),
        uuid.uuid4(),
        customer_id=customer.id,
        contract_id=contract.id,
        lines=lines,
        currency=USD,
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        issue_date=start,
        due_date=start,
        source_number=f"INV-{n:07d}-{month}",
    )


def account(n: int) -> dict[str, list[Aggregate]]:
    """One customer's quarter, by store name (``customers``, ``orders`` ...)."""
    customer = Customer.register(stamp(), uuid.uuid4(), legal_name=f"Account {n}", currency=USD)
    customer.link(stamp(), "crm", f"001{n:012d}")  # type: ignore[arg-type]
    customer.assign_number(stamp(), f"C-{n:07d}")
    customer.set_payment_terms(stamp(), "NET30")

    seats = 10 + n % 7
    order = Order.place(
        stamp(),
        uuid.uuid4(),
        customer_id=customer.id,
        lines=_deal_lines(seats),
        currency=USD,
        term_months=12,
        start_date=date(2024, 1, 1),
        booking_date=date(2023, 12, 20),
        close_date=date(2023, 12, 20),
        opportunity_id=f"006{n:012d}",
        opportunity_amount=_usd(f"{1500 + 1200 * seats}.00"),
    )
    order.accept(stamp(), f"SO-{n:07d}")
    order.amend(stamp(), _deal_lines(seats + 5))
    order.accept(stamp(), f"SO-{n:07d}")

    contract = Contract.create(
        stamp(),
        uuid.uuid4(),
        order_id=order.id,
        customer_id=customer.id,
        items=[
            ContractItem(
                sku="SEATS",
                rate_plan="SEATS-M",
                quantity=Decimal(seats),
                unit_price=Decimal("100.00"),
                billing_period=MONTH,
                charge_type=RECURRING,
            ),
            ContractItem(
                sku="API",
                rate_plan="API-M",
                quantity=Decimal(0),
                unit_price=Decimal("0.01"),
                billing_period=MONTH,
                charge_type=USAGE,
            ),
        ],
        currency=USD,
        term_start=date(2024, 1, 1),
        term_end=date(2024, 12, 31),
    )
    contract.activate(stamp(), f"sub-{n:07d}")
    contract.amend(
        stamp(), [ItemChange(sku="SEATS", quantity=Decimal(seats + 5))], date(2024, 2, 15)
    )
    contract.record_usage(
        stamp(),
        sku="API",
        quantity=Decimal(3750),
        period_start=date(2024, 1, 1),
        period_end=date(2024, 2, 1),
        usage_record_id=f"usage-{n}",
    )
    if n % 4 == 0:
        contract.renew(stamp(), date(2025, 12, 31))
    if n % 10 == 5:
        contract.suspend(stamp(), date(2024, 3, 1))
        contract.resume(stamp(), date(2024, 3, 15))

    invoices = [
        _invoice(customer, contract, n, 1, seats, True),
        _invoice(customer, contract, n, 2, seats + 5, False),
    ]
    payments = []
    for k, invoice in enumerate(invoices):
        invoice.post(stamp(), f"INV{n:07d}{k}")
        payment = Payment.receive(
            stamp(),
            uuid.uuid4(),
            customer_id=customer.id,
            amount=invoice.total,
            method="card",  # type: ignore[arg-type]
            received_at=datetime(2024, 1 + k, 25, 10, tzinfo=UTC),
            reference=f"ch_{n:07d}{k}",
        )
        payment.apply_to(stamp(), invoice.id, payment.amount)
        invoice.apply_payment(stamp(), payment.id, payment.amount)
        payments.append(payment)
    if n % 10 == 0:
        invoices[1].credit(
            stamp(),
            _usd("50.00"),
            credit_note_number=f"CN-{n:07d}",
            reason="outage",
            lines=[CreditNoteLine(line=0, amount=Decimal("50.00"))],
            issue_date=date(2024, 3, 10),
        )
        payments[1].refund(
            stamp(),
            _usd("50.00"),
            f"RF-{n:07d}",
            credit_note_number=f"CN-{n:07d}",
            refunded_at=datetime(2024, 3, 12, 10, tzinfo=UTC),
        )
    return {
        "customers": [customer],
        "orders": [order],
        "contracts": [contract],
        "invoices": invoices,
        "payments": payments,
    }


def _pending(aggregate: Aggregate) -> int:
    return len(aggregate.pending_events)  # type: ignore[attr-defined]


def fill(settings: Settings, events: int) -> dict[str, int]:
    """Store at least ``events`` events; returns the count per store."""
    url = settings.database_url
    assert url
    env = settings.postgres_env(url)
    kinds: dict[str, Any] = {
        "customers": Customer,
        "products": Product,
        "orders": Order,
        "contracts": Contract,
        "invoices": Invoice,
        "payments": Payment,
    }
    # One pool for the six stores (as the composition root does): six pools would take
    # ~30 of PostgreSQL's 100 connections, which the other jobs on this VM share.
    datastore = open_datastore(env, "bench-fill")
    stores = {name: store_class(cls)(env=env, datastore=datastore) for name, cls in kinds.items()}
    counts = dict.fromkeys(kinds, 0)
    try:
        catalogue = products()
        counts["products"] = sum(_pending(p) for p in catalogue)
        stores["products"].save(*catalogue)
        n = 0
        shown = 0
        while sum(counts.values()) < events:
            round_: dict[str, list[Aggregate]] = {name: [] for name in kinds}
            for _ in range(ACCOUNTS_PER_SAVE):
                n += 1
                for name, aggregates in account(n).items():
                    round_[name] += aggregates
            for name, aggregates in round_.items():
                if aggregates:
                    counts[name] += sum(_pending(a) for a in aggregates)
                    stores[name].save(*aggregates)
            total = sum(counts.values())
            if total - shown >= 50_000 or total >= events:
                shown = total
                print(f"  stored {total:,} / {events:,} events ({n:,} accounts)", flush=True)
    finally:
        for store in stores.values():
            store.close()
        datastore.close()
    return counts
