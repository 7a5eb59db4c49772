"""Revenue recognition: straight-line by day in minor units, exact to the unit."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from projections.metrics.recognition import (
    Recognition,
    deferred,
    month_end,
    monthly_schedule,
    months,
    one_time,
    recurring,
    through,
    usage,
)

# Amounts in minor units: a JPY amount is already whole yen (exponent 0), a USD one cents.
AMOUNTS = st.integers(min_value=-(10**15), max_value=10**15)
STARTS = st.dates(min_value=date(1999, 1, 1), max_value=date(2030, 12, 31))
DAYS = st.integers(min_value=1, max_value=1500)


@st.composite
def lines(draw: st.DrawFn, amounts: st.SearchStrategy[int] = AMOUNTS) -> Recognition:
    start = draw(STARTS)
    return recurring(draw(amounts), start, start + timedelta(days=draw(DAYS)))


@given(lines())
def test_months_add_up_to_the_amount_once_the_period_is_over(line: Recognition) -> None:
    schedule = monthly_schedule(line)
    assert sum(schedule.values()) == line.amount
    assert through(line, line.end) == line.amount
    assert all(line.start.replace(day=1) <= m < line.end for m in schedule)


@given(lines(st.integers(min_value=0, max_value=10**15)), st.data())
def test_through_is_monotone_and_bounded_for_positive_amounts(
    line: Recognition, data: st.DataObject
) -> None:
    a = data.draw(st.dates(line.start - timedelta(days=40), line.end + timedelta(days=40)))
    b = data.draw(st.dates(a, line.end + timedelta(days=80)))
    assert 0 <= through(line, a) <= through(line, b) <= line.amount


@given(lines(), st.integers(min_value=-60, max_value=60))
def test_recognised_plus_deferred_is_billed_at_every_month_end(
    line: Recognition, billed_offset: int
) -> None:
    billed_on = line.start + timedelta(days=billed_offset)
    schedule = monthly_schedule(line)
    recognised = 0
    for month in months(min(line.start, billed_on), line.end + timedelta(days=31)):
        recognised += schedule.get(month, 0)
        end = month_end(month)
        assert recognised == through(line, end)
        billed = line.amount if end >= billed_on else 0
        assert recognised + deferred(line, billed_on, end) == billed


@given(lines(), st.data())
def test_a_credit_note_reverses_from_its_date_only(line: Recognition, data: st.DataObject) -> None:
    credited = data.draw(st.integers(min_value=0, max_value=abs(line.amount)))
    on = data.draw(st.dates(line.start - timedelta(days=30), line.end + timedelta(days=400)))
    credit = line.credited(credited, on)
    schedule = monthly_schedule(credit)
    assert sum(schedule.values()) == -credited
    assert all(m >= on.replace(day=1) for m in schedule)
    assert through(credit, on - timedelta(days=1)) == 0


def test_a_leap_year_of_jpy_by_hand() -> None:
    # 366 000 yen over 2024 (leap year, 366 days): 1 000 yen a day, February has 29 days.
    line = recurring(366_000, date(2024, 1, 1), date(2025, 1, 1))
    schedule = monthly_schedule(line)
    assert schedule[date(2024, 2, 1)] == 29_000
    assert schedule[date(2024, 12, 1)] == 31_000
    assert len(schedule) == 12


def test_a_proration_floors_and_the_last_month_takes_the_remainder() -> None:
    # $100.00 = 10 000 cents over [2025-01-20, 2025-03-01): 40 days. January serves 12 days:
    # floor(10000 * 12 / 40) = 3000; February the rest, 7000.
    line = recurring(10_000, date(2025, 1, 20), date(2025, 3, 1))
    assert monthly_schedule(line) == {date(2025, 1, 1): 3_000, date(2025, 2, 1): 7_000}
    # -$1.00 over 3 days from Jan 31: floor(-100/3) = -34 in January, -66 in February.
    negative = recurring(-100, date(2025, 1, 31), date(2025, 2, 3))
    assert monthly_schedule(negative) == {date(2025, 1, 1): -34, date(2025, 2, 1): -66}


def test_one_time_on_activation_and_usage_on_the_last_served_day() -> None:
    assert monthly_schedule(one_time(500, date(2025, 3, 31))) == {date(2025, 3, 1): 500}
    # Usage of March is [03-01, 04-01): recognised on 03-31, in March, not April.
    assert monthly_schedule(usage(700, date(2025, 3, 1), date(2025, 4, 1))) == {
        date(2025, 3, 1): 700
    }
