"""Revenue recognition properties: every entry's months add up to its amount once its period
is over, recognised + deferred = billed at every month end, through-day is monotone, and the
exact figures of a few hand-computed lines (leap year, 1-day period, JPY, credits)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from projections.metrics.projection import credited_parts, minor
from projections.metrics.recognition import (
    Entry,
    month_end,
    monthly_schedule,
    recognised_through,
    share,
)

days = st.dates(min_value=date(2023, 1, 1), max_value=date(2030, 12, 31))
amounts = st.integers(min_value=-(10**15), max_value=10**15)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    amount = draw(amounts)
    not_before = draw(st.none() | days)
    if draw(st.booleans()):
        start = draw(days)
        length = draw(st.integers(min_value=1, max_value=1200))
        return Entry(amount, "ratable", start, start + timedelta(days=length), None, not_before)
    return Entry(amount, "point", day=draw(days), not_before=not_before)


@given(entries())
def test_the_months_add_up_to_the_amount_once_the_period_is_over(entry: Entry) -> None:
    schedule = monthly_schedule(entry)
    assert sum(value for _, value in schedule) == entry.amount
    assert recognised_through(entry, date(2035, 1, 1)) == entry.amount
    assert all(value != 0 for _, value in schedule)
    assert [m for m, _ in schedule] == sorted({m for m, _ in schedule})


@given(entries(), days, days)
def test_recognised_through_is_monotone_toward_the_amount(entry: Entry, a: date, b: date) -> None:
    early, late = sorted((a, b))
    first, second = recognised_through(entry, early), recognised_through(entry, late)
    if entry.amount >= 0:
        assert 0 <= first <= second <= entry.amount
    else:
        assert 0 >= first >= second >= entry.amount


@given(st.lists(entries(), min_size=1, max_size=6), days)
def test_recognised_plus_deferred_is_billed_at_every_month_end(
    billed: list[Entry], day: date
) -> None:
    """Each entry billed in full in its first month; deferred = billed to date - recognised
    to date, from the schedules, equals what recognised_through leaves at the month end."""
    end = month_end(day.replace(day=1))
    billed_to_date = sum(e.amount for e in billed)
    recognised = sum(v for e in billed for m, v in monthly_schedule(e) if m <= end)
    assert recognised == sum(recognised_through(e, end) for e in billed)
    deferred = billed_to_date - recognised
    assert recognised + deferred == billed_to_date
    assert deferred == sum(e.amount - recognised_through(e, end) for e in billed)


def test_straight_line_by_day_floors_and_catches_up_the_rounding() -> None:
    # 100.00 USD = 10000 cents over [2024-02-15, 2024-03-15): 29 days (leap February).
    # Feb: 15 days (15..29) -> floor(10000*15/29) = floor(5172.41) = 5172; Mar: 10000-5172.
    line = Entry(10000, "ratable", date(2024, 2, 15), date(2024, 3, 15))
    assert monthly_schedule(line) == [(date(2024, 2, 1), 5172), (date(2024, 3, 1), 4828)]
    # The credit of the same line: floor(-10000*15/29) = floor(-5172.41) = -5173.
    credit = Entry(-10000, "ratable", date(2024, 2, 15), date(2024, 3, 15))
    assert monthly_schedule(credit) == [(date(2024, 2, 1), -5173), (date(2024, 3, 1), -4827)]
    # A credit dated 2024-03-01 recognises nothing in February; March catches all of it up.
    late = Entry(-10000, "ratable", date(2024, 2, 15), date(2024, 3, 15), None, date(2024, 3, 1))
    assert monthly_schedule(late) == [(date(2024, 3, 1), -10000)]


def test_a_one_day_period_and_jpy_whole_yen() -> None:
    # 1000 JPY (exponent 0: 1000 minor units) for the single day [2025-01-31, 2025-02-01).
    assert minor("1000", "JPY") == 1000
    day = Entry(minor("1000", "JPY"), "ratable", date(2025, 1, 31), date(2025, 2, 1))
    assert monthly_schedule(day) == [(date(2025, 1, 1), 1000)]
    # 100 JPY over 3 days across a month end: Jan 30, 31 -> floor(200/3) = 66; Feb 1 -> 34.
    split = Entry(100, "ratable", date(2025, 1, 30), date(2025, 2, 2))
    assert monthly_schedule(split) == [(date(2025, 1, 1), 66), (date(2025, 2, 1), 34)]
    assert monthly_schedule(Entry(5, "point", day=None)) == []


@given(st.integers(-(10**12), 10**12), st.integers(0, 10**6), st.integers(1, 10**6))
def test_share_rounds_half_even_exactly(amount: int, part: int, whole: int) -> None:
    result = share(amount, part, whole)
    assert abs(2 * (result * whole - amount * part)) <= whole


@given(
    st.lists(st.tuples(st.integers(-500, 10**6), st.integers(0, 10**5)), min_size=1, max_size=5),
    st.data(),
)
def test_a_credit_without_lines_is_spread_over_the_lines_exactly(
    lines: list[tuple[int, int]], data: st.DataObject
) -> None:
    rows = [{"amount": a, "tax": t} for a, t in lines]
    total = sum(a + t for a, t in lines)
    if total <= 0:
        return
    credited = data.draw(st.integers(1, total))
    note = {"amount": {"amount": _cents(credited)}}
    parts = credited_parts(rows, note, "USD")
    subtotal = sum(a for a, _ in lines)
    assert sum(parts.values()) == share(credited, subtotal, total)


def _cents(value: int) -> str:
    sign = "-" if value < 0 else ""
    whole, cents = divmod(abs(value), 100)
    return f"{sign}{whole}.{cents:02d}"
