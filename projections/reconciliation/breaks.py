"""Opening and closing breaks: the one place a finding becomes a row and a history entry.

Why a break closes itself rather than being resolved by hand: a break is a statement about
the data ("these systems disagree"), so it is true exactly while the facts disagree. Every
check runs after each fact that could change its answer and hands :func:`settle` what it
found (or None); the row follows, and the history keeps each opening and closing with the
event that caused it. Times are the events' times, never the clock, so a rebuild is
identical; a closing is stamped no earlier than its opening (the closing event may come
from another store whose events are older, e.g. an order applied after its invoice).

Why the rows are written from what is remembered (:class:`Breaks`, kept in the memo with
the object's facts): the row's state decides what to write (insert, reopen, close), and
reading it back cost a round trip per check. Every change sets the row's final values in
the memo, and the row is written once per run in the state its last change left it
(``writes.py``), so the break rows of a batch go as a few runs of one statement each. A
check that finds an open break as it stands changes it only when its time is not the
row's ``changed_at`` already: the row then reads exactly as the upsert of every check made
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from projections.definition import Envelope, ViewCursor
from projections.reconciliation import writes
from projections.rows import business_time


class Finding(NamedTuple):
    """A disagreement: who says what, for whom, in words. A named tuple: every check that
    finds a disagreement builds one, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) costs several times a tuple's."""

    customer_id: str
    currency: str | None
    expected: Decimal | None
    expected_by: str
    actual: Decimal | None
    actual_by: str
    detail: str

    def same(self, other: Finding) -> bool:
        """The same row values (amounts by their text: 2 and 2.0 are written apart)."""
        return (
            self.detail == other.detail
            and str(self.expected) == str(other.expected)
            and str(self.actual) == str(other.actual)
            and self.customer_id == other.customer_id
            and self.currency == other.currency
            and self.expected_by == other.expected_by
            and self.actual_by == other.actual_by
        )


@dataclass(slots=True)
class Break:
    """A row of recon_breaks as stored (its key, kind and lineage follow from the object)."""

    open: bool
    found: Finding
    opened_at: datetime
    changed_at: datetime


_LOAD = (
    "SELECT closed_at IS NULL, customer_id::text, currency, expected_amount, expected_by, "
    "actual_amount, actual_by, detail, opened_at, changed_at FROM {recon_breaks} "
    "WHERE break_key = %s"
)


class Breaks(dict[str, Break | None]):
    """One object's break rows by code (None: no row); ``known``: a code not held has no
    row. The dict itself, not an object holding one: the memo holds one per object, and
    every object it holds is one more for each of the garbage collector's full passes."""

    __slots__ = ("known",)

    def __init__(self, known: bool) -> None:
        super().__init__()
        self.known = known

    def row(self, cursor: ViewCursor, code: str, key: str) -> Break | None:
        if code in self:
            return self[code]
        found = None
        if not self.known:
            row = writes.read(cursor, _LOAD, (key,))
            if row is not None:
                finding = Finding(row[1], row[2], row[3], row[4], row[5], row[6], row[7])
                found = Break(bool(row[0]), finding, row[8], row[9])
        self[code] = found
        return found


_HISTORY = (
    "INSERT INTO {recon_break_events} (break_key, event_id, change, at, expected_amount, "
    "actual_amount) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def _hold(cursor: ViewCursor, key: str, row: Break, history: tuple[object, ...] = ()) -> None:
    """The row is written as it now stands, once, at the end of the run (see ``writes.py``);
    the history entry is written now, in its order."""
    rows = writes.held(cursor).breaks
    if key not in rows:
        rows[key] = writes.HeldBreak(row, None)
    if history:
        cursor.execute(_HISTORY, (key, *history))


def settle(
    cursor: ViewCursor,
    event: Envelope,
    code: str,
    kind: str,
    object_id: str,
    found: Finding | None,
    breaks: Breaks,
) -> None:
    """Make break ``code`` of ``object_id`` open with ``found``, or closed when None."""
    key = f"{code}:{object_id}"
    row = breaks.row(cursor, code, key)
    if found is None:
        if row is not None and row.open:
            # Never before its opening, whichever store came first.
            closed = max(row.opened_at, business_time(event))
            row.open, row.changed_at = False, closed
            history = (event["event_id"], "closed", closed, row.found.expected, row.found.actual)
            _hold(cursor, key, row, history)
        return
    at = business_time(event)
    if row is not None and row.open:
        if row.changed_at == at and row.found.same(found):
            return
        row.found, row.changed_at = found, at
        _hold(cursor, key, row)
        return
    opening = (event["event_id"], "opened", at, found.expected, found.actual)
    if row is not None:  # closed: it opens again
        row.open, row.found, row.opened_at, row.changed_at = True, found, at, at
        _hold(cursor, key, row, opening)
        return
    made = breaks[code] = Break(True, found, at, at)
    rows = writes.held(cursor).breaks
    if key in rows:  # a row the memo says is not there: its insert fails, at this event
        cursor.execute(writes.BREAK_INSERT, writes.break_row(key, made, (code, kind, object_id)))
    else:
        rows[key] = writes.HeldBreak(made, (code, kind, object_id))
    cursor.execute(_HISTORY, (key, *opening))
