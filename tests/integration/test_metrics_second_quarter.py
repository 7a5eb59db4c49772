"""A second, independently hand-computed quarter (Q1 2026) for the metrics projection on real
PostgreSQL, summed per customer over contracts: the contract's activation is applied before
the invoice whose one-time fee it dates, January's usage is billed in February (recognised in
January, before it is billed), a payment fails after being applied, a
credit note follows the payment it is refunded from, and a proration line floors by day.

Acme (USD) books a three-year deal in December 2025 and is billed in January: a yearly
recurring line, a one-time setup fee recognised on the contract's activation, a proration
line, and January's usage billed in February; one partial payment, one that fails, and a
refund with a credit note. Beside it Nippon (JPY, exponent 0) is billed a quarter upfront.
Every amount below is minor units (cents; whole yen)."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from psycopg import sql

from adapters.bootstrap import Runtime
from projections.metrics.projection import Metrics
from tests.integration.commands import item, new_contract, new_customer, run
from tests.integration.projection_support import connect, rebuild, rows, runner
from tests.integration.quarter import _bill, _pay, at

VIEW = Metrics()


class ContractsFirst(Metrics):
    """Follows the contracts store alone: the activation is applied before its invoice."""

    stores = ("contracts",)


def line(sku: str, amount: str, kind: str, period: tuple[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sku": sku,
        "quantity": "1",
        "unit_price": amount,
        "amount": amount,
        "charge_type": kind,
    }
    if period:
        body |= {"service_period_start": period[0], "service_period_end": period[1]}
    return body | ({"proration": True} if sku == "PRORATE" else {})


def pay(runtime: Runtime, customer: UUID, money: tuple[str, str], day: str) -> UUID:
    return _pay(runtime, customer, {"amount": money[0], "currency": money[1]}, day)


def apply(runtime: Runtime, payment: UUID, bill: UUID, money: tuple[str, str], day: str) -> None:
    body = {"invoice_id": str(bill), "amount": {"amount": money[0], "currency": money[1]}}
    run(runtime, "payment", "apply", body, aggregate_id=payment, origin=at(day))


def quarter(runtime: Runtime) -> tuple[UUID, UUID]:
    acme, nippon = new_customer(runtime, "Acme Inc"), new_customer(runtime, "Nippon KK")
    placed = {
        "customer_id": str(acme),
        "lines": [
            # ACV: 10 seats x 1,200.00 a year x 1 period a year = 12,000.00.
            {
                "sku": "SEAT",
                "quantity": "10",
                "unit_price": "1200.00",
                "charge_type": "recurring",
                "billing_frequency": "year",
                "billing_unit_price": "1200.00",
            },
            {"sku": "SETUP", "quantity": "1", "unit_price": "500.00", "charge_type": "one_time"},
            {"sku": "API", "quantity": "1", "unit_price": "100.00", "charge_type": "usage"},
        ],
        "currency": "USD",
        "term_months": 36,
        "start_date": "2026-01-01",
        "booking_date": "2025-12-22",
        "close_date": "2025-12-20",
    }
    order = UUID(run(runtime, "order", "place", placed).body["id"])
    contract = new_contract(
        runtime,
        acme,
        order,
        [item("SEAT", "RP-1", "10", "100.00", "recurring")],
        term=("2026-01-01", "2028-12-31"),
        currency="USD",
    )
    first = _bill(
        runtime,
        acme,
        "USD",
        "2026-01-01",
        [
            line("SEAT", "12000.00", "recurring", ("2026-01-01", "2027-01-01")),
            line("SETUP", "500.00", "one_time"),
            line("PRORATE", "100.00", "recurring", ("2026-01-20", "2026-03-01")),
        ],
        contract_id=contract,
        order_id=order,
    )
    activate = {"billing_subscription_id": "sub_acme"}
    run(runtime, "contract", "activate", activate, aggregate_id=contract, origin=at("2026-01-15"))
    usage = _bill(
        runtime,
        acme,
        "USD",
        "2026-02-01",
        [line("API", "250.00", "usage", ("2026-01-01", "2026-02-01"))],
        contract_id=contract,
    )
    partial = pay(runtime, acme, ("5000.00", "USD"), "2026-01-20")
    apply(runtime, partial, first, ("5000.00", "USD"), "2026-01-20")
    bounced = pay(runtime, acme, ("7600.00", "USD"), "2026-02-10")
    apply(runtime, bounced, first, ("7600.00", "USD"), "2026-02-10")
    fail = {"reason": "insufficient funds"}
    run(runtime, "payment", "fail", fail, aggregate_id=bounced, origin=at("2026-02-12"))
    refunded = pay(runtime, acme, ("250.00", "USD"), "2026-02-15")
    apply(runtime, refunded, usage, ("250.00", "USD"), "2026-02-15")
    credit = {
        "amount": {"amount": "250.00", "currency": "USD"},
        "lines": [{"line": 0, "amount": "250.00"}],
        "issue_date": "2026-03-05",
    }
    run(runtime, "invoice", "credit", credit, aggregate_id=usage)
    refund = {
        "amount": {"amount": "250.00", "currency": "USD"},
        "refunded_at": "2026-03-06T12:00:00Z",
    }
    run(runtime, "payment", "refund", refund, aggregate_id=refunded, origin=at("2026-03-06"))

    monthly_plan = {
        "sku": "PLAN",
        "quantity": "1",
        "unit_price": "40000",
        "charge_type": "recurring",
        "billing_frequency": "month",
        "billing_unit_price": "40000",
    }
    yen_order = {
        "customer_id": str(nippon),
        "lines": [monthly_plan],
        "currency": "JPY",
        "term_months": 3,
        "start_date": "2026-01-01",
        "booking_date": "2025-12-28",
    }
    booked = UUID(run(runtime, "order", "place", yen_order).body["id"])
    yen = _bill(
        runtime,
        nippon,
        "JPY",
        "2026-01-01",
        [line("PLAN", "120000", "recurring", ("2026-01-01", "2026-04-01"))],
        order_id=booked,
    )
    paid = pay(runtime, nippon, ("120000", "JPY"), "2026-03-31")
    apply(runtime, paid, yen, ("120000", "JPY"), "2026-03-31")
    return acme, nippon


COLUMNS = (
    "month",
    "currency",
    "bookings",
    "acv",
    "billings",
    "cash",
    "recognised",
    "deferred",
    "receivables",
)


def monthly(runtime: Runtime, customer: UUID) -> list[tuple[Any, ...]]:
    """The customer's months summed over its contracts (main's view is per contract)."""
    with connect(runtime) as conn:
        found = conn.execute(
            sql.SQL(
                "SELECT month, currency, sum(bookings), sum(acv), sum(billings), sum(cash), "
                "sum(recognised), sum(deferred), sum(receivables) FROM {} "
                "WHERE customer_id = %s GROUP BY 1, 2 ORDER BY 2, 1"
            ).format(sql.Identifier(runtime.settings.schema_name, "metrics_monthly")),
            (customer,),
        ).fetchall()
    return [(r[0], r[1], *(int(v) for v in r[2:])) for r in found]


# Acme, USD. SEAT: 1,200,000 over 365 days: through Jan 31 floor(1,200,000 x 31 / 365) =
# 101,917; through Feb 28 (59 days) 193,972 (Feb 92,055); through Mar 31 (90) 295,890
# (Mar 101,918). SETUP 50,000 on the activation, 2026-01-15. PRORATE 10,000 over 40 days
# from 01-20: January serves 12, floor(10,000 x 12 / 40) = 3,000; February 7,000.
# Usage 25,000 of [01-01, 02-01): on its last served day, 01-31 (billed 02-01, so January's
# deferred counts it as unbilled). Its credit note (03-05) reverses 25,000 in March.
# Recognised: Jan 101,917 + 50,000 + 3,000 + 25,000 = 179,917; Feb 92,055 + 7,000 = 99,055;
# Mar 101,918 - 25,000 = 76,918.
# Billings: Jan 1,260,000; Feb 25,000; Mar -25,000 (the credit note).
# Cash: Jan 500,000; Feb the 760,000 failed (counts nothing) + 25,000; Mar -25,000 refund.
# Applied: Jan 500,000; Feb 760,000 - 760,000 (failure) + 25,000; Mar -25,000 (refund).
# Deferred: Jan 1,260,000 - 179,917 = 1,080,083; Feb + 25,000 - 99,055 = 1,006,028;
# Mar - 25,000 - 76,918 = 904,110. Receivables: 1,260,000 - 500,000 = 760,000 throughout.
ACME = [
    (date(2025, 12, 1), "USD", 1_260_000, 1_200_000, 0, 0, 0, 0, 0),
    (date(2026, 1, 1), "USD", 0, 0, 1_260_000, 500_000, 179_917, 1_080_083, 760_000),
    (date(2026, 2, 1), "USD", 0, 0, 25_000, 25_000, 99_055, 1_006_028, 760_000),
    (date(2026, 3, 1), "USD", 0, 0, -25_000, -25_000, 76_918, 904_110, 760_000),
]
# Nippon, JPY: booked 2025-12-28 (no close date): 40,000 a month, ACV 1 x 40,000 x 12 =
# 480,000; billed 120,000 over 90 days: Jan floor(120,000 x 31 / 90) = 41,333; through Feb
# (59) 78,666 (Feb 37,333); Mar 41,334. Paid in full 03-31.
NIPPON = [
    (date(2025, 12, 1), "JPY", 40_000, 480_000, 0, 0, 0, 0, 0),
    (date(2026, 1, 1), "JPY", 0, 0, 120_000, 0, 41_333, 78_667, 120_000),
    (date(2026, 2, 1), "JPY", 0, 0, 0, 0, 37_333, 41_334, 120_000),
    (date(2026, 3, 1), "JPY", 0, 0, 0, 120_000, 41_334, 0, 0),
]


def facts_of(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: rows(runtime, t.name, ", ".join(t.primary_key)) for t in VIEW.tables}


def test_a_quarter_by_hand_whichever_store_comes_first(runtime: Runtime) -> None:
    acme, nippon = quarter(runtime)
    # The activation is applied before the invoice whose setup fee it dates.
    runner(runtime, ContractsFirst()).catch_up()
    runner(runtime, VIEW, batch=1).catch_up()
    acme_rows = monthly(runtime, acme)
    assert acme_rows[:4] == ACME
    assert monthly(runtime, nippon)[:4] == NIPPON
    # The seats go on to 2026-12 (Apr-Dec recognise the other 904,110), then nothing is left.
    assert [r[0] for r in acme_rows] == [date(2025, 12, 1)] + [
        date(2026, m, 1) for m in range(1, 13)
    ]
    assert sum(r[6] for r in acme_rows) == 1_260_000 and acme_rows[-1][7] == 0
    facts = facts_of(runtime)

    # A rebuild (invoices before the activation within one batch) gives identical rows.
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500).catch_up()
    assert facts_of(runtime) == facts
    assert monthly(runtime, acme) == acme_rows
