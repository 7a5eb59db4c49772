"""Revenue recognition as pure functions of integers and business dates.

Why integers: every amount is in the currency's minor units (cents, yen), so a schedule is
exact by construction and its months always add up to the billed amount; there is no
rounding step that could lose or invent a cent. Floors use ``//`` (toward minus infinity),
which keeps the rule the same for negative lines (discounts, credit notes).

One rule covers every line: an amount ``A`` recognised straight-line by day over a half-open
span ``[start, end)`` of ``N`` days. Through day ``D`` (inclusive) ``d`` days are served,
clamped to ``0..N``, and ``floor(A * d / N)`` is recognised. A charge type only chooses the
span:

* recurring (proration lines too): the service period ``[start, end)`` as billed;
* one-time: the single day of its activation ``[activation, activation + 1)``, in full;
* usage: the period's last served day ``[end - 1, end)``. ``end`` is the first day *not*
  served (the invoice line's convention), so usage is recognised in full on ``end - 1``,
  i.e. in the month the usage happened, never in the month after.

A credit note recognises nothing before its own date; from that date on it follows the
credited line's span on the credited amount, negated (a catch-up reversal on the note's
date for days already served, straight-line after).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Recognition:
    """What one line (or one credit of a line) recognises: ``amount`` minor units over the
    half-open span ``[start, end)``, nothing before ``not_before`` (a credit note's date)."""

    amount: int
    start: date
    end: date
    not_before: date | None = None

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty span [{self.start}, {self.end})")

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def credited(self, amount: int, on: date) -> Recognition:
        """The reversal of ``amount`` of this line by a credit note dated ``on``."""
        return Recognition(-amount, self.start, self.end, on)


def recurring(amount: int, start: date, end: date) -> Recognition:
    return Recognition(amount, start, end)


def one_time(amount: int, activated_on: date) -> Recognition:
    return Recognition(amount, activated_on, activated_on + ONE_DAY)


def usage(amount: int, start: date, end: date) -> Recognition:
    """Usage of ``[start, end)`` is recognised on its last served day, ``end - 1``."""
    if end <= start:
        raise ValueError(f"empty span [{start}, {end})")
    return Recognition(amount, end - ONE_DAY, end)


def through(line: Recognition, day: date) -> int:
    """Minor units recognised from the start up to and including ``day``."""
    if line.not_before is not None and day < line.not_before:
        return 0
    served = min(max((day - line.start).days + 1, 0), line.days)
    return (line.amount * served) // line.days


def month_of(day: date) -> date:
    return day.replace(day=1)


def month_end(month: date) -> date:
    return next_month(month) - ONE_DAY


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months(first: date, last: date) -> Iterator[date]:
    """First days of the months from ``first``'s to ``last``'s, both included."""
    month = month_of(first)
    while month <= last:
        yield month
        month = next_month(month)


def monthly_schedule(line: Recognition) -> dict[date, int]:
    """Revenue per month (keyed by the month's first day): through(month end) minus
    through(previous month end). Months that recognise nothing are left out; the values add
    up to ``line.amount`` exactly."""
    first = max(line.start, line.not_before or line.start)
    last = max(line.end - ONE_DAY, first)
    schedule: dict[date, int] = {}
    before = 0
    for month in months(first, last):
        now = through(line, month_end(month))
        if now != before:
            schedule[month] = now - before
        before = now
    return schedule


def deferred(line: Recognition, billed_on: date, day: date) -> int:
    """Billed to date (the amount, from ``billed_on``) less recognised to date, at ``day``."""
    billed = line.amount if day >= billed_on else 0
    return billed - through(line, day)
