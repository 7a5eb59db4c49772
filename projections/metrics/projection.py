"""The ``metrics`` projection: bookings (orders), billings and revenue (invoices, with
one-time lines dated by their contract's activation), cash (payments), per currency.

Why minor units and business dates only: a month's figures must come out identical from a
rebuild and add up exactly, so nothing here reads the clock or rounds (see recognition.py).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from hub.domain.money import exponent
from projections.definition import Envelope, Position, Projection, Table, View, ViewCursor
from projections.metrics.invoices import (
    FILL_ONE_TIME,
    apply_credited,
    apply_issued,
    event_day,
    minor,
)
from projections.metrics.tables import MONTHLY, TABLES

#: Billing periods a year per billing frequency, for ACV.
PERIODS_A_YEAR = {"month": 12, "quarter": 4, "year": 1}


def acv(lines: list[dict[str, Any]], currency: str) -> int:
    """Σ recurring lines' quantity x billing unit price (else unit price) x periods a year,
    in minor units; a recurring line without a frequency is taken as monthly."""
    total = Decimal(0)
    for line in lines:
        if line["charge_type"] != "recurring":
            continue
        price = Decimal(str(line.get("billing_unit_price") or line["unit_price"]))
        periods = PERIODS_A_YEAR.get(line.get("billing_frequency") or "month", 12)
        total += Decimal(str(line["quantity"])) * price * periods
    return minor(
        {"amount": total.quantize(Decimal(1).scaleb(-exponent(currency))), "currency": currency}
    )


def apply_order(event: Envelope, cursor: ViewCursor) -> None:
    data, kind = event["data"], event["type"]
    order = event["aggregate_id"]
    if kind == "OrderPlaced":
        day = date.fromisoformat(data.get("close_date") or data["booking_date"])
        total, value = minor(data["totals"]["total"]), acv(data["lines"], data["currency"])
        cursor.execute(
            "INSERT INTO {metrics_bookings} (order_id, entry, day, currency, customer_id, "
            "amount, acv, total, total_acv) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                order,
                event["version"],
                day,
                data["currency"],
                data["customer_id"],
                total,
                value,
                total,
                value,
            ),
        )
    elif kind == "OrderAmended":
        last = cursor.fetchone(
            "SELECT currency, customer_id, total, total_acv FROM {metrics_bookings} "
            "WHERE order_id = %s ORDER BY entry DESC LIMIT 1",
            (order,),
        )
        if last is None:
            raise LookupError(f"metrics_bookings has no row for order {order}: never placed")
        currency, customer, before, before_acv = last
        total, value = minor(data["totals"]["total"]), acv(data["lines"], currency)
        cursor.execute(
            "INSERT INTO {metrics_bookings} (order_id, entry, day, currency, customer_id, "
            "amount, acv, total, total_acv) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                order,
                event["version"],
                event_day(event),
                currency,
                customer,
                max(total - before, 0),
                max(value - before_acv, 0),
                total,
                value,
            ),
        )


def apply_contract(event: Envelope, cursor: ViewCursor) -> None:
    if event["type"] != "ContractActivated":
        return
    contract = event["aggregate_id"]
    cursor.execute(
        "INSERT INTO {metrics_contract_activations} (contract_id, activated_on) "
        "VALUES (%s, %s) ON CONFLICT (contract_id) DO NOTHING",
        (contract, event_day(event)),
    )
    cursor.execute(FILL_ONE_TIME + "o.contract_id = %s ON CONFLICT DO NOTHING", (contract,))


def apply_invoice(event: Envelope, cursor: ViewCursor) -> None:
    if event["type"] == "InvoiceIssued":
        apply_issued(event, cursor)
    elif event["type"] == "InvoiceCredited":
        row = cursor.fetchone(
            "SELECT currency, customer_id, contract_id FROM {metrics_billings} "
            "WHERE invoice_id = %s AND entry = 0",
            (event["aggregate_id"],),
        )
        if row is None:
            raise LookupError(f"metrics_billings has no invoice {event['aggregate_id']}")
        invoice = dict(zip(("currency", "customer_id", "contract_id"), row, strict=True))
        apply_credited(event, cursor, invoice)


_CASH = (
    "INSERT INTO {metrics_cash} (payment_id, entry, kind, day, currency, customer_id, amount) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def apply_payment(event: Envelope, cursor: ViewCursor) -> None:
    data, kind, payment = event["data"], event["type"], event["aggregate_id"]
    if kind == "PaymentReceived":
        day = datetime.fromisoformat(data["received_at"]).date()
        money = data["amount"]
        cursor.execute(
            _CASH,
            (
                payment,
                event["version"],
                "cash",
                day,
                money["currency"],
                data["customer_id"],
                minor(money),
            ),
        )
        return
    if kind not in ("PaymentApplied", "PaymentRefunded", "PaymentFailed", "PaymentReversed"):
        return
    row = cursor.fetchone(
        "SELECT currency, customer_id FROM {metrics_cash} WHERE payment_id = %s AND entry = 1",
        (payment,),
    )
    if row is None:
        raise LookupError(f"metrics_cash has no receipt of payment {payment}")
    owner, entry = (row[0], row[1]), event["version"]
    day = event_day(event)
    if kind == "PaymentApplied":
        cursor.execute(_CASH, (payment, entry, "applied", day, *owner, minor(data["amount"])))
        return
    if kind == "PaymentFailed":
        # Never collected: no cash at all, and what it had paid off invoices is open again.
        cursor.execute(
            "DELETE FROM {metrics_cash} WHERE payment_id = %s AND kind = 'cash'", (payment,)
        )
    else:
        if kind == "PaymentRefunded" and data.get("refunded_at"):
            day = datetime.fromisoformat(data["refunded_at"]).date()
        cursor.execute(_CASH, (payment, entry, "cash", day, *owner, -minor(data["amount"])))
    taken = sum(minor(a["amount"]) for a in data.get("unapplied") or [])
    if taken:
        cursor.execute(_CASH, (payment, entry, "applied", day, *owner, -taken))


class Metrics(Projection):
    name: ClassVar[str] = "metrics"
    title: ClassVar[str] = "Finance metrics"
    version: ClassVar[int] = 1
    stores: ClassVar[tuple[str, ...]] = ("orders", "contracts", "invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = TABLES
    views: ClassVar[tuple[View, ...]] = (MONTHLY,)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        handler = {
            "order": apply_order,
            "contract": apply_contract,
            "invoice": apply_invoice,
            "payment": apply_payment,
        }.get(event["aggregate"])
        if handler is not None:
            handler(event, cursor)
