"""From an order's lines to the contract billing runs: recurring and usage lines only.

Why a pure function: what billing receives is a business rule (one-time fees are the ERP's
to invoice, not a subscription item), and the per-period price is arithmetic that must be
exact. An order line's ``unit_price`` of a recurring line is over its committed term; the
billing system charges per period, so the per-period price is the line's
``billing_unit_price`` when the CRM (or the quote) gave one, else the term price spread over
the term's periods — refused when it does not divide into the currency's smallest unit,
because a subscription that bills a rounded price would not add up to the order.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from hub.domain.money import exponent

__all__ = ["PERIOD_MONTHS", "apply_changes", "contract_items", "item_changes", "term_end"]

PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}


class ItemProblem(ValueError):
    """A line that cannot become a contract item (said in words for the workbench)."""


def contract_items(
    lines: list[dict[str, Any]], prices: dict[str, str], currency: str
) -> list[dict[str, Any]]:
    """Contract items for the recurring and usage ``lines`` (order-line JSON), each under
    its SKU's billing price (``prices``: SKU → billing price id)."""
    items: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        charge = line["charge_type"]
        if charge == "one_time":
            continue
        sku = line["sku"]
        period = line.get("billing_frequency") or "month"
        if period not in PERIOD_MONTHS:
            raise ItemProblem(f"line {index} ({sku}) bills {period!r}: not a billing period")
        items.append(
            {
                "sku": sku,
                "rate_plan": prices[sku],
                "quantity": str(Decimal(str(line["quantity"]))),
                "unit_price": str(_period_price(line, period, currency, index)),
                "billing_period": period,
                "charge_type": charge,
            }
        )
    return items


def _period_price(line: dict[str, Any], period: str, currency: str, index: int) -> Decimal:
    if line.get("billing_unit_price") is not None:
        return Decimal(str(line["billing_unit_price"]))
    unit = Decimal(str(line["unit_price"]))
    if line["charge_type"] == "usage":
        return unit  # a usage price is per unit used, whatever the period
    months = int(line.get("term_months") or 0)
    if months <= 0:
        return unit
    periods = Decimal(months) / PERIOD_MONTHS[period]
    price = unit / periods
    quantum = Decimal(1).scaleb(-exponent(currency))
    if price != price.quantize(quantum):
        raise ItemProblem(
            f"line {index} ({line['sku']}): {unit} {currency} over {months} months is not a "
            f"whole per-{period} price; give the line a billing_unit_price"
        )
    return price.quantize(quantum)


_CHANGEABLE = ("quantity", "unit_price", "rate_plan")


def item_changes(
    held: list[dict[str, Any]], wanted: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """What to change on the contract (``held``) for it to carry ``wanted``: one change per
    SKU that differs (only the values that differ), and the SKUs it does not carry at all.
    A SKU the order no longer has is set to quantity 0 (a downgrade to nothing keeps the
    item on the subscription until billing removes it)."""
    current = {item["sku"]: item for item in held}
    changes: list[dict[str, Any]] = []
    added: list[str] = []
    for item in wanted:
        have = current.get(item["sku"])
        if have is None:
            added.append(item["sku"])
            continue
        change: dict[str, Any] = {"sku": item["sku"]}
        for name in _CHANGEABLE:
            if _differs(have.get(name), item[name], name):
                change[name] = item[name]
        if len(change) > 1:
            changes.append(change)
    gone = {i["sku"] for i in held} - {i["sku"] for i in wanted}
    for sku in sorted(gone):
        if Decimal(str(current[sku]["quantity"])) != 0:
            changes.append({"sku": sku, "quantity": "0"})
    return changes, added


def apply_changes(
    items: list[dict[str, Any]], changes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The items after ``changes`` (what a contract amendment does to them, eventually)."""
    by_sku = {item["sku"]: dict(item) for item in items}
    for change in changes:
        item = by_sku.get(change["sku"])
        if item is None:
            continue
        for name in _CHANGEABLE:
            if change.get(name) is not None:
                item[name] = change[name]
    return list(by_sku.values())


def _differs(have: Any, want: Any, name: str) -> bool:
    if name == "rate_plan":
        return bool(have != want)
    return have is None or Decimal(str(have)) != Decimal(str(want))


def term_end(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months (the day clamped to the month's end)."""
    index = start.year * 12 + start.month - 1 + max(months, 1)
    year, month = divmod(index, 12)
    month += 1
    for day in (start.day, 30, 29, 28):
        try:
            return date(year, month, min(day, start.day))
        except ValueError:
            continue
    return date(year, month, 28)
