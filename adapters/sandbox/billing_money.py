"""Billing periods and amounts for the billing sandbox: how Stripe advances a period and
prices a line, in integer minor units (never float).

Why apart: both the first invoice of a subscription, every cycle and every proration use
them, and they are the arithmetic a test checks by hand.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

__all__ = ["advance", "line_amount", "prorated", "unit_minor"]


def advance(start: int, interval: str, count: int) -> int:
    """The end of a period of ``count`` ``interval``s from ``start`` (unix seconds); months
    keep the day of month, clamped to the month's last day (Jan 31 → Feb 28)."""
    moment = datetime.fromtimestamp(start, UTC)
    if interval == "day":
        return int((moment + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((moment + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def unit_minor(price: dict[str, Any]) -> Decimal:
    """The price's unit amount in minor units (``unit_amount_decimal`` may hold fractions)."""
    if price.get("unit_amount_decimal") is not None:
        return Decimal(str(price["unit_amount_decimal"]))
    return Decimal(int(price.get("unit_amount") or 0))


def line_amount(price: dict[str, Any], quantity: int) -> int:
    """Quantity times unit, rounded half-even to a whole minor unit as Stripe does per line."""
    return int((unit_minor(price) * quantity).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def prorated(amount: int, start: int, end: int, at: int) -> int:
    """The part of ``amount`` for the rest of the period ``[start, end)`` from ``at``."""
    if end <= start:
        return 0
    left = Decimal(max(0, min(end, end - max(at, start)))) / Decimal(end - start)
    return int((Decimal(amount) * left).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
