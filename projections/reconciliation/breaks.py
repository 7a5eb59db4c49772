"""Opening and closing breaks: the one place a finding becomes a row and a history entry.

Why a break closes itself rather than being resolved by hand: a break is a statement about
the data ("these systems disagree"), so it is true exactly while the facts disagree. Every
check runs after each fact that could change its answer and hands :func:`settle` what it
found (or None); the row follows, and the history keeps each opening and closing with the
event that caused it. Times are the events' times, never the clock, so a rebuild is
identical; a closing is stamped no earlier than its opening (the closing event may come
from another store whose events are older, e.g. an order applied after its invoice).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from projections.definition import Envelope, ViewCursor
from projections.rows import business_time


@dataclass(frozen=True)
class Finding:
    """A disagreement: who says what, for whom, in words."""

    customer_id: str
    currency: str | None
    expected: Decimal | None
    expected_by: str
    actual: Decimal | None
    actual_by: str
    detail: str


_UPSERT = (
    "INSERT INTO {recon_breaks} (break_key, code, object_kind, object_id, customer_id, "
    "currency, expected_amount, expected_by, actual_amount, actual_by, detail, opened_at, "
    "closed_at, lineage, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "NULL, %s, %s) ON CONFLICT (break_key) DO UPDATE SET customer_id = EXCLUDED.customer_id, "
    "currency = EXCLUDED.currency, expected_amount = EXCLUDED.expected_amount, "
    "expected_by = EXCLUDED.expected_by, actual_amount = EXCLUDED.actual_amount, "
    "actual_by = EXCLUDED.actual_by, detail = EXCLUDED.detail, changed_at = EXCLUDED.changed_at, "
    "opened_at = CASE WHEN {recon_breaks}.closed_at IS NULL THEN {recon_breaks}.opened_at "
    "ELSE EXCLUDED.opened_at END, closed_at = NULL"
)
_HISTORY = (
    "INSERT INTO {recon_break_events} (break_key, event_id, change, at, expected_amount, "
    "actual_amount) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def settle(
    cursor: ViewCursor,
    event: Envelope,
    code: str,
    kind: str,
    object_id: str,
    found: Finding | None,
) -> None:
    """Make break ``code`` of ``object_id`` open with ``found``, or closed when None."""
    key = f"{code}:{object_id}"
    at = business_time(event)
    row = cursor.fetchone(
        "SELECT closed_at IS NULL, expected_amount, actual_amount, greatest(opened_at, %s) "
        "FROM {recon_breaks} "
        "WHERE break_key = %s",
        (at, key),
    )
    is_open = row is not None and bool(row[0])
    if found is None:
        if is_open:
            assert row is not None
            closed = row[3]  # never before its opening, whichever store came first
            cursor.execute(
                "UPDATE {recon_breaks} SET closed_at = %s, changed_at = %s WHERE break_key = %s",
                (closed, closed, key),
            )
            cursor.execute(_HISTORY, (key, event["event_id"], "closed", closed, row[1], row[2]))
        return
    cursor.execute(
        _UPSERT,
        (
            key,
            code,
            kind,
            object_id,
            found.customer_id,
            found.currency,
            found.expected,
            found.expected_by,
            found.actual,
            found.actual_by,
            found.detail,
            at,
            f"/v1/lineage/{object_id}",
            at,
        ),
    )
    if not is_open:
        history = (key, event["event_id"], "opened", at, found.expected, found.actual)
        cursor.execute(_HISTORY, history)
