"""A realistic quarter (Q1 2024, a leap year) played through the hub's commands, for the
tests of any view that needs finance-shaped data. ``play(runtime)`` returns the ids.

Globex (USD) signs a 24-month deal (closed 2024-01-10): a 1,000.00 setup fee (one-time),
10 seats at 100.00 a month (2,400.00 per seat over the term, recurring) and 500.00 of
committed API usage. Billing activates the subscription on 2024-01-20 and invoices monthly
in advance (10% tax on the seats), usage in arrears. On 2024-02-15 Globex adds 5 seats (the
order is amended, the contract too) and is billed a prorated line for 2024-02-15..03-31. An
add-on deal (closed 2024-02-01) is cancelled on 2024-03-31. Payments: a partial payment of
the January invoice, a card payment that fails and its retry, a payment of February that
is partly refunded with a credit note for an outage.

Globex belongs to Globex Holdings (a parent account, CRM-linked after its child, no ERP
number). The ERP numbers Globex (C-1001, NET30, ERP record 4711) and Kaisha (C-1002, NET15),
accepts the orders (the deal as SO-1001, again after the upgrade reopened it), posts the
January, February and Kaisha invoices; the prorated and March invoices are still to post.
Every order is won from a CRM opportunity: the deal's opportunity still says 25,500.00 after
the upgrade (an open OPP_AMOUNT_MISMATCH). The products' ERP item ids: SETUP ITEM-100, SEATS
ITEM-200, ADDON ITEM-300, SUPPORT ITEM-400 (then ITEM-401); API has none. Payments carry
card references (ch_1001..ch_1005) and are applied on their receipt (Kaisha's the next day).

Kaisha (JPY, no minor unit) booked a 12-month support plan on 2023-12-20 (billed quarterly
in advance, 10% tax, paid on 2024-01-31) and renews it on 2024-03-20 (the contract's term
is extended and the won renewal opportunity places its own order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from adapters.bootstrap import Runtime
from hub.application.service import Origin
from tests.integration.commands import run


@dataclass(frozen=True)
class Quarter:
    holdings: UUID  # Globex's parent account
    globex: UUID
    kaisha: UUID
    deal: UUID  # the Globex order
    deal_contract: UUID
    addon: UUID
    addon_contract: UUID
    support: UUID  # the Kaisha order
    support_contract: UUID
    renewal: UUID  # the Kaisha renewal order (no contract of its own)
    invoices: dict[str, UUID]
    payments: dict[str, UUID]


def at(day: str, hour: str = "09:00") -> Origin:
    """The source's time of a command: ``day`` at ``hour`` (09:00 unless said) UTC."""
    return Origin(occurred_at=datetime.fromisoformat(f"{day}T{hour}:00+00:00"))


def _id(runtime: Runtime, entity: str, name: str, body: dict[str, Any], **kw: Any) -> UUID:
    return UUID(run(runtime, entity, name, body, **kw).body["id"])


def _money(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def _line(sku: str, qty: str, price: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": qty, "unit_price": price, "charge_type": kind, **extra}


def _seats(qty: str) -> dict[str, Any]:
    return _line(
        "SEATS", qty, "2400.00", "recurring", billing_frequency="month", billing_unit_price="100.00"
    )


def _deal_lines(seats: str) -> list[dict[str, Any]]:
    return [
        _line("SETUP", "1", "1000.00", "one_time"),
        _seats(seats),
        _line("API", "1", "500.00", "usage"),
    ]


def _order(
    runtime: Runtime,
    customer: UUID,
    currency: str,
    lines: list[dict[str, Any]],
    term: int,
    start: str,
    close: str,
    opportunity: tuple[str, str] | None = None,
) -> UUID:
    """An order placed on its close date, won from ``opportunity`` (id, CRM Amount)."""
    won: dict[str, Any] = {}
    if opportunity is not None:
        won = {
            "opportunity_id": opportunity[0],
            "opportunity_amount": _money(opportunity[1], currency),
        }
    body = {
        "customer_id": str(customer),
        "lines": lines,
        "currency": currency,
        "term_months": term,
        "start_date": start,
        "booking_date": close,
        "close_date": close,
        **won,
    }
    return _id(runtime, "order", "place", body, origin=at(close))


def _contract(
    runtime: Runtime,
    customer: UUID,
    order: UUID,
    currency: str,
    items: list[tuple[str, str, str, str]],
    term: tuple[str, str],
    activated: str,
    created: str,
) -> UUID:
    """A contract created on ``created`` (its order's close date) and activated on
    ``activated``, both at 09:00."""
    body = {
        "order_id": str(order),
        "customer_id": str(customer),
        "currency": currency,
        "items": [
            {
                "sku": sku,
                "rate_plan": f"{sku}-M",
                "quantity": qty,
                "unit_price": price,
                "billing_period": "month",
                "charge_type": kind,
            }
            for sku, qty, price, kind in items
        ],
        "term_start": term[0],
        "term_end": term[1],
    }
    contract = _id(runtime, "contract", "create", body, origin=at(created))
    run(
        runtime,
        "contract",
        "activate",
        {"billing_subscription_id": f"sub-{contract.hex[:8]}"},
        aggregate_id=contract,
        origin=at(activated),
    )
    return contract


def _bill(
    runtime: Runtime,
    customer: UUID,
    currency: str,
    issued: str,
    lines: list[dict[str, Any]],
    number: str | None = None,
    **link: UUID,
) -> UUID:
    """An invoice of ``lines`` (sku, amount, period, charge_type, tax...); totals summed in
    minor units of the currency's exponent (2, or 0 for JPY)."""
    scale = 0 if currency == "JPY" else 2
    cents = sum(int(line["amount"].replace(".", "")) for line in lines)
    taxes = sum(int(line.get("tax", "0").replace(".", "")) for line in lines)

    def text(value: int) -> str:
        return str(value) if scale == 0 else f"{value // 100}.{value % 100:02d}"

    body = {
        "customer_id": str(customer),
        **{key: str(value) for key, value in link.items()},
        "lines": [{"quantity": "1", "unit_price": line["amount"], **line} for line in lines],
        "currency": currency,
        "subtotal": text(cents),
        "tax": text(taxes),
        "total": text(cents + taxes),
        "issue_date": issued,
        "due_date": issued,
        **({} if number is None else {"source_number": number}),
    }
    return _id(runtime, "invoice", "issue", body)


def _period(start: str, end: str) -> dict[str, str]:
    return {"service_period_start": start, "service_period_end": end}


def _pay(
    runtime: Runtime,
    customer: UUID,
    amount: dict[str, str],
    day: str,
    reference: str | None = None,
) -> UUID:
    body = {
        "customer_id": str(customer),
        "amount": amount,
        "method": "card",
        "received_at": f"{day}T10:00:00+00:00",
        **({} if reference is None else {"reference": reference}),
    }
    return _id(runtime, "payment", "receive", body, origin=at(day, "10:00"))


def _apply(
    runtime: Runtime, payment: UUID, invoice: UUID, amount: dict[str, str], day: str
) -> None:
    """Cash applied to an invoice at 10:00 on ``day`` (the receipt's hour)."""
    body = {"invoice_id": str(invoice), "amount": amount}
    run(runtime, "payment", "apply", body, aggregate_id=payment, origin=at(day, "10:00"))


def _accounts(runtime: Runtime) -> tuple[UUID, UUID, UUID]:
    """Globex Holdings > Globex Inc, and Kaisha KK: CRM-linked (the parent after its child),
    numbered and given terms by the ERP (the parent is not an ERP customer)."""
    holdings = _id(
        runtime, "customer", "register", {"legal_name": "Globex Holdings", "currency": "USD"}
    )
    globex = _id(
        runtime,
        "customer",
        "register",
        {"legal_name": "Globex Inc", "currency": "USD", "parent_customer_id": str(holdings)},
    )
    kaisha = _id(runtime, "customer", "register", {"legal_name": "Kaisha KK", "currency": "JPY"})
    for customer, crm in ((globex, "001GLOBEX"), (kaisha, "001KAISHA"), (holdings, "001HOLDINGS")):
        run(
            runtime,
            "customer",
            "link",
            {"system": "crm", "external_id": crm},
            aggregate_id=customer,
        )
    run(runtime, "customer", "link", {"system": "erp", "external_id": "4711"}, aggregate_id=globex)
    for customer, number, terms in ((globex, "C-1001", "NET30"), (kaisha, "C-1002", "NET15")):
        run(
            runtime, "customer", "assign_number", {"customer_number": number}, aggregate_id=customer
        )
        run(
            runtime,
            "customer",
            "set_payment_terms",
            {"payment_terms": terms},
            aggregate_id=customer,
        )
    return holdings, globex, kaisha


def _products(runtime: Runtime) -> None:
    """The catalogue with the ERP's item ids (API has none; SUPPORT's first one counts)."""
    monthly = {"charge_type": "recurring", "billing_period": "month"}
    for sku, kind, items in (
        ("SETUP", {"charge_type": "one_time"}, ["ITEM-100"]),
        ("SEATS", monthly, ["ITEM-200"]),
        ("API", {"charge_type": "usage"}, []),
        ("ADDON", monthly, ["ITEM-300"]),
        ("SUPPORT", monthly, ["ITEM-400", "ITEM-401"]),
    ):
        run(runtime, "product", "define", {"sku": sku, **kind, "erp_item_ids": items})


def _accept(runtime: Runtime, order: UUID, number: str, day: str) -> None:
    run(
        runtime, "order", "accept", {"erp_order_number": number}, aggregate_id=order, origin=at(day)
    )


def _post(runtime: Runtime, invoice: UUID, number: str) -> None:
    run(runtime, "invoice", "post", {"erp_document_number": number}, aggregate_id=invoice)


def play(runtime: Runtime) -> Quarter:
    usd = "USD"
    holdings, globex, kaisha = _accounts(runtime)
    _products(runtime)

    deal = _order(
        runtime,
        globex,
        usd,
        _deal_lines("10"),
        24,
        "2024-01-01",
        "2024-01-10",
        ("006DEAL", "25500.00"),
    )
    _accept(runtime, deal, "SO-1001", "2024-01-12")
    deal_contract = _contract(
        runtime,
        globex,
        deal,
        usd,
        [("SEATS", "10", "100.00", "recurring"), ("API", "0", "0.01", "usage")],
        ("2024-01-01", "2025-12-31"),
        "2024-01-20",
        "2024-01-10",
    )
    seats = {"sku": "SEATS", "charge_type": "recurring"}
    # January: names only the order (its contract is found through it).
    jan = _bill(
        runtime,
        globex,
        usd,
        "2024-01-01",
        [
            {"sku": "SETUP", "amount": "1000.00", "charge_type": "one_time"},
            {**seats, "amount": "1000.00", "tax": "100.00", **_period("2024-01-01", "2024-02-01")},
        ],
        "INV-0001",
        order_id=deal,
    )
    _post(runtime, jan, "INV10001")
    feb = _bill(
        runtime,
        globex,
        usd,
        "2024-02-01",
        [{**seats, "amount": "1000.00", "tax": "100.00", **_period("2024-02-01", "2024-03-01")}],
        "INV-0002",
        contract_id=deal_contract,
    )
    _post(runtime, feb, "INV10002")
    # The upgrade: 5 more seats from 2024-02-15 (order amended, contract amended, prorated).
    run(
        runtime,
        "order",
        "amend",
        {"lines": _deal_lines("15")},
        aggregate_id=deal,
        origin=at("2024-02-15"),
    )
    _accept(runtime, deal, "SO-1001", "2024-02-16")  # the amendment reopened the order
    run(
        runtime,
        "contract",
        "amend",
        {"changes": [{"sku": "SEATS", "quantity": "15"}], "effective_date": "2024-02-15"},
        aggregate_id=deal_contract,
    )
    prorated = _bill(
        runtime,
        globex,
        usd,
        "2024-02-15",
        [{**seats, "amount": "758.62", "proration": True, **_period("2024-02-15", "2024-04-01")}],
        "INV-0003",
        contract_id=deal_contract,
    )
    mar = _bill(
        runtime,
        globex,
        usd,
        "2024-03-01",
        [
            {**seats, "amount": "1000.00", "tax": "100.00", **_period("2024-03-01", "2024-04-01")},
            {
                "sku": "API",
                "amount": "37.50",
                "charge_type": "usage",
                **_period("2024-02-01", "2024-03-01"),
            },
        ],
        "INV-0004",
        contract_id=deal_contract,
    )

    addon_line = _line(
        "ADDON", "1", "1200.00", "recurring", billing_frequency="month", billing_unit_price="100.00"
    )
    addon = _order(
        runtime, globex, usd, [addon_line], 12, "2024-02-01", "2024-02-01", ("006ADDON", "1200.00")
    )
    _accept(runtime, addon, "SO-1002", "2024-02-02")
    addon_contract = _contract(
        runtime,
        globex,
        addon,
        usd,
        [("ADDON", "1", "100.00", "recurring")],
        ("2024-02-01", "2025-01-31"),
        "2024-02-01",
        "2024-02-01",
    )
    run(
        runtime,
        "contract",
        "cancel",
        {"effective_date": "2024-03-31", "reason": "unused"},
        aggregate_id=addon_contract,
        origin=at("2024-03-31"),
    )

    partial = _pay(runtime, globex, _money("1500.00", usd), "2024-01-25", "ch_1001")
    _apply(runtime, partial, jan, _money("1500.00", usd), "2024-01-25")
    declined = _pay(runtime, globex, _money("600.00", usd), "2024-02-05", "ch_1002")
    _apply(runtime, declined, jan, _money("600.00", usd), "2024-02-05")
    fail = {"reason": "card declined"}
    run(runtime, "payment", "fail", fail, aggregate_id=declined, origin=at("2024-02-06"))
    retry = _pay(runtime, globex, _money("600.00", usd), "2024-02-10", "ch_1003")
    _apply(runtime, retry, jan, _money("600.00", usd), "2024-02-10")
    february = _pay(runtime, globex, _money("1100.00", usd), "2024-02-20", "ch_1004")
    _apply(runtime, february, feb, _money("1100.00", usd), "2024-02-20")
    credit = {
        "amount": _money("110.00", usd),
        "credit_note_number": "CN-1",
        "reason": "outage",
        "lines": [{"line": 0, "amount": "110.00"}],
        "issue_date": "2024-03-10",
    }
    run(runtime, "invoice", "credit", credit, aggregate_id=feb, origin=at("2024-03-10"))
    refund = {
        "amount": _money("110.00", usd),
        "reference": "RF-1",
        "credit_note_number": "CN-1",
        "refunded_at": "2024-03-12T10:00:00+00:00",
    }
    run(runtime, "payment", "refund", refund, aggregate_id=february, origin=at("2024-03-12"))

    support_line = _line(
        "SUPPORT", "1", "360000", "recurring", billing_frequency="month", billing_unit_price="30000"
    )
    support = _order(
        runtime,
        kaisha,
        "JPY",
        [support_line],
        12,
        "2024-01-01",
        "2023-12-20",
        ("006SUPPORT", "360000"),
    )
    _accept(runtime, support, "SO-0990", "2023-12-21")
    support_contract = _contract(
        runtime,
        kaisha,
        support,
        "JPY",
        [("SUPPORT", "1", "30000", "recurring")],
        ("2024-01-01", "2024-12-31"),
        "2024-01-02",
        "2023-12-20",
    )
    quarterly = _bill(
        runtime,
        kaisha,
        "JPY",
        "2024-01-01",
        [
            {
                "sku": "SUPPORT",
                "charge_type": "recurring",
                "amount": "90000",
                "tax": "9000",
                **_period("2024-01-01", "2024-04-01"),
            }
        ],
        "INV-0005",
        contract_id=support_contract,
    )
    _post(runtime, quarterly, "INV10003")
    yen = _pay(runtime, kaisha, _money("99000", "JPY"), "2024-01-31", "ch_1005")
    _apply(runtime, yen, quarterly, _money("99000", "JPY"), "2024-02-01")
    run(
        runtime,
        "contract",
        "renew",
        {"new_term_end": "2025-12-31"},
        aggregate_id=support_contract,
        origin=at("2024-03-20"),
    )
    renewal = _order(
        runtime,
        kaisha,
        "JPY",
        [support_line],
        12,
        "2025-01-01",
        "2024-03-20",
        ("006RENEWAL", "360000"),
    )
    return Quarter(
        holdings=holdings,
        globex=globex,
        kaisha=kaisha,
        deal=deal,
        deal_contract=deal_contract,
        addon=addon,
        addon_contract=addon_contract,
        support=support,
        support_contract=support_contract,
        renewal=renewal,
        invoices={"jan": jan, "feb": feb, "prorated": prorated, "mar": mar, "yen": quarterly},
        payments={
            "partial": partial,
            "declined": declined,
            "retry": retry,
            "feb": february,
            "yen": yen,
        },
    )
