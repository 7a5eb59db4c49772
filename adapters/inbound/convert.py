"""Conversions every translator needs: minor units, epoch times, currency codes.

Sources disagree on money and time (Stripe and Chargebee send integer minor units and unix
seconds, HubSpot decimal strings and epoch milliseconds…); translators turn them into the
hub's canonical forms here, exactly (Decimal, never float) and in the source's business
time, never the time a message arrived.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from adapters.inbound.source import Malformed
from hub.domain.money import EXPONENTS


def currency_code(raw: str, *, field: str) -> str:
    """ISO 4217 upper case (Stripe sends ``"eur"``); an unknown code is malformed."""
    code = raw.upper()
    if code not in EXPONENTS:
        raise Malformed(f"{raw!r} is not a currency Concord knows", field)
    return code


def from_minor_units(amount: int, currency: str, *, field: str) -> str:
    """``2500`` EUR → ``"25.00"``; ``2500`` JPY → ``"2500"``; ``2500`` KWD → ``"2.500"``.

    Returned as a decimal string at the currency's exponent (the hub's money form)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise Malformed(f"expected an integer amount in minor units, got {amount!r}", field)
    places = EXPONENTS[currency]
    value = Decimal(amount).scaleb(-places)
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def from_epoch_seconds(value: int | float, *, field: str) -> datetime:
    """Unix seconds (UTC) → aware datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"expected unix seconds, got {value!r}", field)
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise Malformed(f"{value!r} is not a plausible time in unix seconds", field) from None


def from_epoch_millis(value: int | float | str, *, field: str) -> datetime:
    """Epoch milliseconds (HubSpot ``occurredAt``, CDC ``commitTimestamp``) → aware datetime."""
    try:
        millis = int(value)
    except (TypeError, ValueError):
        raise Malformed(f"expected epoch milliseconds, got {value!r}", field) from None
    return from_epoch_seconds(millis / 1000, field=field)


def business_date(moment: datetime) -> date:
    """The calendar day of a source timestamp (UTC: the sources' own reporting day)."""
    return moment.astimezone(UTC).date()


#: Bounds of a number in a source payload: far beyond any amount, quantity or id Concord
#: holds, and small enough that writing it out positionally stays cheap (``1e999999999``
#: would be a gigabyte of zeros).
MAX_NUMBER_DIGITS = 40
MAX_NUMBER_EXPONENT = 40


def exact_number(text: str) -> Decimal:
    """A JSON number with a fraction or exponent as ``Decimal`` (never a float), bounded."""
    value = Decimal(text)
    digits = value.as_tuple()
    exponent = digits.exponent if isinstance(digits.exponent, int) else 0
    if len(digits.digits) > MAX_NUMBER_DIGITS or abs(exponent) > MAX_NUMBER_EXPONENT:
        raise ValueError(f"the number {text[:20]}… is beyond any value a source sends")
    return value


def no_constants(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON numbers any source sends."""
    raise ValueError(f"{name} is not a number")
