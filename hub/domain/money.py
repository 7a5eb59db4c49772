"""Money: a ``Decimal`` amount in an ISO 4217 currency, never a float.

Amounts carry exactly the currency's minor-unit exponent (JPY 0, USD 2, KWD 3). Input with
more precision than the currency allows is refused rather than rounded, because silently
rounding a source system's figure would make reconciliation drift; amounts *computed* by the
hub (quantity x unit price, proration) are rounded half-even with :meth:`Money.rounded`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from hub.domain.bounded import Amount, CurrencyCode, ExactDecimal
from hub.domain.errors import CurrencyMismatch, InvalidValue

#: The bounds of every money amount (digits before and after the point).
AMOUNT = ExactDecimal(15, 3)

# ISO 4217 minor units. Currencies not listed are refused: a wrong exponent is worse than none.
EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "ARS",
            "AUD",
            "BRL",
            "CAD",
            "CHF",
            "CNY",
            "COP",
            "CZK",
            "DKK",
            "EGP",
            "EUR",
            "GBP",
            "HKD",
            "ILS",
            "INR",
            "MXN",
            "MYR",
            "NOK",
            "NZD",
            "PEN",
            "PHP",
            "PLN",
            "RON",
            "RUB",
            "SAR",
            "SEK",
            "SGD",
            "THB",
            "TRY",
            "TWD",
            "USD",
            "ZAR",
        ],
        2,
    ),
    **dict.fromkeys(["JPY", "KRW", "CLP", "ISK", "VND", "UGX", "XOF", "XAF", "HUF"], 0),
    **dict.fromkeys(["KWD", "BHD", "OMR", "JOD", "TND", "LYD", "IQD"], 3),
}
# HUF is listed with exponent 0 on purpose: cash and most billing systems use whole forints.


def exponent(currency: str) -> int:
    """Minor-unit exponent of ``currency``; refuses unknown codes by name."""
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise InvalidValue(
            f"unknown currency {currency!r}; use an ISO 4217 code such as USD, EUR, JPY, KWD",
            field="currency",
        ) from None


def to_decimal(value: Any, *, field: str = "amount") -> Decimal:
    """An amount as ``Decimal``: a decimal string, an integer or a ``Decimal``, bounded like
    every amount (see :mod:`hub.domain.bounded`). Floats are refused: their binary noise
    (``0.1 + 0.2``) is not a figure any source system meant."""
    try:
        return AMOUNT.parse(value)
    except PydanticCustomError as refused:
        raise InvalidValue(str(refused), field=field) from None


def check_magnitude(amount: Decimal, *, field: str = "amount") -> Decimal:
    """Refuse an amount beyond the largest Concord holds (before rounding could overflow the
    28-digit decimal context: a 1e26 line total used to end a request with a 500)."""
    if amount.is_finite() and (amount.is_zero() or amount.adjusted() < AMOUNT.integer_digits):
        return amount
    raise InvalidValue(
        f"{amount:.6g} is beyond the largest amount Concord holds "
        f"({AMOUNT.integer_digits} digits before the decimal point)",
        field=field,
    )


def check_scale(amount: Decimal, currency: str, *, field: str = "amount") -> Decimal:
    """Return ``amount`` at the currency's exponent, refusing extra significant decimals."""
    exp = exponent(currency)
    quantum = Decimal(1).scaleb(-exp)
    check_magnitude(amount, field=field)
    quantized = amount.quantize(quantum)
    if quantized != amount:
        raise InvalidValue(
            f"{amount} has more decimals than {currency} allows ({exp})", field=field
        )
    return quantized


T = TypeVar("T")


def _as_pydantic(check: Callable[..., T], *args: Any) -> T:
    """Run a money check inside a pydantic validator, reporting a refusal as its error."""
    try:
        return check(*args)
    except InvalidValue as refused:
        raise PydanticCustomError(
            "invalid-value", "{reason}", {"reason": refused.message}
        ) from None


def _by_exponent(schema: dict[str, Any]) -> None:
    """State the amount's digits per currency: one ``anyOf`` branch per minor-unit exponent
    (``{"currency": "JPY", "amount": "1.5"}`` is refused, so the schema must not offer it)."""
    groups: dict[int, list[str]] = {}
    for code, exp in sorted(EXPONENTS.items()):
        groups.setdefault(exp, []).append(code)
    schema["anyOf"] = [
        {
            "properties": {
                "currency": {"enum": codes},
                "amount": {"pattern": ExactDecimal(AMOUNT.integer_digits, exp).pattern},
            }
        }
        for exp, codes in sorted(groups.items())
    ]


class Money(BaseModel):
    """An amount of one currency. Immutable; arithmetic refuses to mix currencies."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_by_exponent)

    currency: CurrencyCode  # declared first so the amount's scale check can see it
    amount: Amount

    # Validators report rule breaks as pydantic errors (type ``invalid-value``), so inside a
    # request they come back with their exact path (``body.amount.currency``).

    @field_validator("currency", mode="before")
    @classmethod
    def _known_currency(cls, value: Any) -> Any:
        if isinstance(value, str):
            _as_pydantic(exponent, value)
        return value

    @field_validator("amount", mode="after")
    @classmethod
    def _scaled(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        if not isinstance(currency, str):
            return value  # the currency error is reported on its own
        return _as_pydantic(check_scale, value, currency)

    @classmethod
    def of(cls, amount: Any, currency: str) -> Money:
        """Money from domain code: a bad value raises :class:`InvalidValue` naming the field."""
        try:
            return cls(amount=amount, currency=currency)
        except ValidationError as invalid:
            first = invalid.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "amount"
            raise InvalidValue(
                str(first["ctx"].get("reason", first["msg"])) if first.get("ctx") else first["msg"],
                field=field,
            ) from None

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def rounded(cls, amount: Decimal, currency: str) -> Money:
        """Money from a computed amount, rounded half-even to the currency's exponent."""
        quantum = Decimal(1).scaleb(-exponent(currency))
        check_magnitude(amount)
        return cls.of(amount.quantize(quantum, rounding=ROUND_HALF_EVEN), currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot combine {self.currency} with {other.currency}", field="currency"
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money.of(check_magnitude(self.amount + other.amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money.of(check_magnitude(self.amount - other.amount), self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def times(self, quantity: Decimal) -> Money:
        """Price x quantity, rounded half-even (the only place the hub creates cents)."""
        return Money.rounded(self.amount * quantity, self.currency)

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def money_sum(items: list[Money], currency: str) -> Money:
    """Sum in ``currency``; an empty list is zero, a foreign item is a CurrencyMismatch."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total
