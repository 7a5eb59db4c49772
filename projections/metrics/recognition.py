"""Revenue recognition as pure functions of integers and dates (no float, no clock).

An :class:`Entry` is an amount in minor units (negative for a credit) recognised by one rule:

* ``ratable``: straight-line by day over the service period ``[start, end)`` of N days:
  through day D, ``floor(A * d / N)`` with d the days served up to and including D (clamped
  to 0..N). Floor toward minus infinity (Python's ``//``), so a credit (negative A) is the
  exact mirror of a charge and the total is exactly A once the period is over.
* ``point``: all of A on ``day`` (one-time lines on their order's activation, usage lines on
  the last served day of their period). ``day`` None: not known yet (an activation still to
  come from another store): nothing is recognised until it is.

``not_before`` (a credit note's date) recognises nothing before that day; from it the rule
runs as if the credit had always been there, so the month of the note catches up.

A month's revenue is ``through(month end) - through(previous month end)``: the months of an
entry add up to A exactly, whatever the rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Entry:
    amount: int
    """Minor units; negative for a credit note's reversal."""
    rule: str
    """``ratable`` or ``point``."""
    start: date | None = None
    end: date | None = None
    """Ratable: the service period ``[start, end)``; end is the first day not served."""
    day: date | None = None
    """Point: the day recognised; None while unknown."""
    not_before: date | None = None

    def __post_init__(self) -> None:
        if self.rule == "ratable" and (self.start is None or self.end is None):
            raise ValueError("a ratable entry needs its service period")
        if (
            self.rule == "ratable"
            and self.end is not None
            and self.start is not None
            and (self.end <= self.start)
        ):
            raise ValueError("the service period [start, end) must end after it starts")
        if self.rule not in ("ratable", "point"):
            raise ValueError(f"unknown rule {self.rule!r}")


def served_days(start: date, end: date, day: date) -> int:
    """Days of ``[start, end)`` served up to and including ``day`` (0..N)."""
    total = (end - start).days
    return max(0, min(total, (day - start).days + 1))


def recognised_through(entry: Entry, day: date) -> int:
    """Minor units of ``entry`` recognised up to and including ``day``."""
    if entry.not_before is not None and day < entry.not_before:
        return 0
    if entry.rule == "point":
        return entry.amount if entry.day is not None and day >= entry.day else 0
    assert entry.start is not None and entry.end is not None
    total = (entry.end - entry.start).days
    return entry.amount * served_days(entry.start, entry.end, day) // total


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def month_end(month: date) -> date:
    return next_month(month) - timedelta(days=1)


def last_day(entry: Entry) -> date | None:
    """The last day on which ``entry`` may still recognise something (None: unknown)."""
    if entry.rule == "point":
        if entry.day is None:
            return None
        end = entry.day
    else:
        assert entry.end is not None
        end = entry.end - timedelta(days=1)
    return max(end, entry.not_before) if entry.not_before is not None else end


def first_day(entry: Entry) -> date | None:
    if entry.rule == "point":
        if entry.day is None:
            return None
        begin = entry.day
    else:
        assert entry.start is not None
        begin = entry.start
    return max(begin, entry.not_before) if entry.not_before is not None else begin


def monthly_schedule(entry: Entry) -> list[tuple[date, int]]:
    """(first day of month, minor units) for every month the entry recognises something in;
    empty while a point entry's day is unknown. The amounts add up to ``entry.amount``."""
    first, last = first_day(entry), last_day(entry)
    if first is None or last is None:
        return []
    schedule: list[tuple[date, int]] = []
    month = month_start(first)
    before = recognised_through(entry, month - timedelta(days=1))
    while month <= last:
        through = recognised_through(entry, month_end(month))
        if through != before:
            schedule.append((month, through - before))
        before = through
        month = next_month(month)
    return schedule


def share(amount: int, part: int, whole: int) -> int:
    """``amount * part / whole`` rounded half-even to an integer, exactly (``whole`` > 0)."""
    quotient, remainder = divmod(amount * part, whole)
    twice = 2 * remainder
    if twice > whole or (twice == whole and quotient % 2 == 1):
        quotient += 1
    return quotient
