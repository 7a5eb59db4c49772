"""Money: exact decimal arithmetic in one currency at that currency's exponent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.errors import CurrencyMismatch, InvalidValue
from hub.domain.money import (
    AMOUNT,
    EXPONENTS,
    Money,
    check_scale,
    exponent,
    money_sum,
    to_decimal,
)

CURRENCIES = ["USD", "JPY", "KWD", "EUR"]


@st.composite
def moneys(draw: st.DrawFn, currency: str | None = None) -> Money:
    code = currency or draw(st.sampled_from(CURRENCIES))
    minor = draw(st.integers(min_value=-(10**12), max_value=10**12))
    return Money.of(Decimal(minor).scaleb(-exponent(code)), code)


@st.composite
def same_currency(draw: st.DrawFn, n: int) -> list[Money]:
    code = draw(st.sampled_from(CURRENCIES))
    return [draw(moneys(code)) for _ in range(n)]


@given(same_currency(3))
def test_addition_is_associative_and_commutative(items: list[Money]) -> None:
    a, b, c = items
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a


@given(same_currency(3))
def test_subtraction_undoes_addition(items: list[Money]) -> None:
    a, b, c = items
    assert (a + b) - b == a
    assert (a - b) - c == a - (b + c)


@given(same_currency(2))
def test_results_keep_the_currency_exponent(items: list[Money]) -> None:
    a, b = items
    for result in (a + b, a - b):
        assert result.amount.as_tuple().exponent == -exponent(a.currency)


@given(moneys("USD"), moneys("EUR"))
def test_currencies_never_mix(usd: Money, eur: Money) -> None:
    with pytest.raises(CurrencyMismatch):
        _ = usd + eur
    with pytest.raises(CurrencyMismatch):
        _ = usd - eur
    with pytest.raises(CurrencyMismatch):
        _ = usd < eur
    with pytest.raises(CurrencyMismatch):
        money_sum([usd, eur], "USD")


@pytest.mark.parametrize(
    ("currency", "ok", "too_fine"),
    [("JPY", "1500", "1500.5"), ("USD", "10.25", "10.255"), ("KWD", "1.125", "1.1255")],
)
def test_exponent_is_enforced(currency: str, ok: str, too_fine: str) -> None:
    assert Money.of(ok, currency).amount == Decimal(ok)
    with pytest.raises(InvalidValue) as refused:
        Money.of(too_fine, currency)
    assert refused.value.field == "amount"


def test_amounts_are_padded_to_the_exponent() -> None:
    assert str(Money.of("10", "USD").amount) == "10.00"
    assert str(Money.of("1", "KWD").amount) == "1.000"
    assert str(Money.of("7", "JPY").amount) == "7"
    assert EXPONENTS["JPY"] == 0 and EXPONENTS["USD"] == 2 and EXPONENTS["KWD"] == 3


def test_unknown_currency_is_refused_by_name() -> None:
    with pytest.raises(InvalidValue) as refused:
        Money.of("1", "XXX")
    assert refused.value.field == "currency"
    with pytest.raises(InvalidValue):
        check_scale(Decimal(1), "usd")


@pytest.mark.parametrize("number", [0.1 + 0.2, 19.99, 0.1, 1e2, 12345678901234567.89])
def test_json_numbers_with_a_fraction_are_refused_not_rounded(number: float) -> None:
    """A float cannot be exact (0.1 + 0.2 is 0.30000000000000004): refused, never guessed."""
    with pytest.raises(InvalidValue) as refused:
        Money.of(number, "USD")
    assert refused.value.field == "amount"
    assert "JSON strings" in refused.value.message


def test_decimal_strings_and_integers_are_exact() -> None:
    assert Money.of("19.99", "USD").amount == Decimal("19.99")
    assert Money.of("0.30", "USD").amount == Decimal("0.30")
    assert Money.of(20, "USD").amount == Decimal("20.00")
    assert to_decimal("-5.125") == Decimal("-5.125")


@pytest.mark.parametrize("bad", ["1e28", "1E+2", 10**28, "1" * 16, "1" * 400, "1.\x00", " 1"])
def test_amounts_beyond_the_bounds_or_in_exponent_form_are_refused(bad: object) -> None:
    with pytest.raises(InvalidValue) as refused:
        Money.of(bad, "USD")
    assert refused.value.field == "amount"


def test_arithmetic_beyond_the_bounds_is_refused_not_overflowed() -> None:
    """Sums and products that would overflow the decimal context when rounded say so."""
    big = Money.of("999999999999999.00", "USD")
    with pytest.raises(InvalidValue):
        big + Money.of("1.00", "USD")
    with pytest.raises(InvalidValue):
        big.times(Decimal("1000000"))
    with pytest.raises(InvalidValue):
        Money.rounded(Decimal("1e26"), "USD")


@pytest.mark.parametrize("bad", [True, float("nan"), float("inf"), "abc", None])
def test_non_numbers_are_refused(bad: object) -> None:
    with pytest.raises(InvalidValue):
        to_decimal(bad)


@pytest.mark.parametrize(
    ("price", "quantity", "expected"),
    [
        ("0.25", "0.5", "0.12"),  # 0.125 -> 0.12 (half to even)
        ("0.75", "0.5", "0.38"),  # 0.375 -> 0.38
        ("1.05", "0.5", "0.52"),  # 0.525 -> 0.52
        ("1.15", "0.5", "0.58"),  # 0.575 -> 0.58
        ("10.00", "3", "30.00"),
    ],
)
def test_times_rounds_half_even(price: str, quantity: str, expected: str) -> None:
    assert Money.of(price, "USD").times(Decimal(quantity)).amount == Decimal(expected)


def test_times_rounds_to_the_currency_exponent() -> None:
    assert Money.of("101", "JPY").times(Decimal("0.5")).amount == Decimal(50)  # 50.5 -> 50
    assert Money.of("103", "JPY").times(Decimal("0.5")).amount == Decimal(52)  # 51.5 -> 52
    assert Money.of("0.001", "KWD").times(Decimal("0.5")).amount == Decimal("0.000")


@given(moneys(), st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False))
def test_times_always_yields_valid_money(price: Money, quantity: Decimal) -> None:
    """Within Concord's largest amount the product is exact to half a minor unit; beyond it
    the hub refuses (never an overflowed or float-rounded amount)."""
    exact = price.amount * quantity
    if not exact.is_zero() and exact.adjusted() >= AMOUNT.integer_digits:
        with pytest.raises(InvalidValue, match="beyond the largest amount"):
            price.times(quantity)
        return
    result = price.times(quantity)
    assert result.currency == price.currency
    assert (
        abs(result.amount - price.amount * quantity)
        <= Decimal(1).scaleb(-exponent(price.currency)) / 2
    )


def test_money_round_trips_through_json() -> None:
    money = Money.of("1234.500", "KWD")
    assert Money.model_validate(money.model_dump(mode="json")) == money
