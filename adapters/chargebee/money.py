"""Chargebee's money: integer "cents", or ``*_in_decimal`` strings in major units.

Chargebee does not use the ISO 4217 exponent. Its API takes and sends whole-number amounts
in the major unit for its zero-decimal currencies (JPY, KRW, XAF, XOF: 15 is ¥15) and in
hundredths for every other currency: it keeps at most two decimals (docs, "Currencies"), so
a three-decimal currency would still arrive in hundredths, and its list of supported
currencies has none of them (no KWD, BHD, JOD, OMR, TND). Converting by the ISO exponent
would read a 1.53 amount of such a currency as 0.153; here it is read as 1.53 and written at
the hub's exponent ("1.530"). With multi-decimal pricing on, the ``*_in_decimal`` strings
carry the exact values in major units, and win over the rounded integers.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from adapters.inbound.source import Malformed
from hub.domain.money import EXPONENTS

#: Chargebee's zero-decimal currencies (amounts in the major unit); all others are cents.
ZERO_DECIMAL = frozenset({"JPY", "KRW", "XAF", "XOF"})


def cents(amount: int, currency: str, *, field: str) -> str:
    """A Chargebee integer amount as a decimal string at the hub's exponent of ``currency``."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise Malformed(f"expected an integer amount in cents, got {amount!r}", field)
    places = 0 if currency in ZERO_DECIMAL else 2
    return _at_exponent(Decimal(amount).scaleb(-places), currency, field)


def in_decimal(value: str, *, field: str) -> Decimal:
    """A ``*_in_decimal`` string (major units, up to 20 decimals) as an exact Decimal."""
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise Malformed(f"expected a decimal string, got {value!r}", field) from None
    if not parsed.is_finite():
        raise Malformed(f"expected a finite decimal, got {value!r}", field)
    return parsed


def _at_exponent(value: Decimal, currency: str, field: str) -> str:
    unit = Decimal(1).scaleb(-EXPONENTS[currency])
    exact = value.quantize(unit)
    if exact != value:
        raise Malformed(f"{value} has more decimals than {currency} allows", field)
    return format(exact, "f")


def money_at(value: Decimal, currency: str, *, field: str) -> str:
    """A major-unit amount at the hub's exponent (refusing what it cannot hold exactly)."""
    return _at_exponent(value, currency, field)
