"""Writes several views share: moving an aggregate's row to the event just applied.

Why one helper: every view row that mirrors one aggregate records the aggregate version,
the time and the store position of the last event it reflects (so a BI reader can tell how
fresh a row is and join it to the event log), and a missing row means the aggregate's
creation was never applied, which must stop the projection rather than pass unseen.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from projections.definition import Envelope, Position, Projection, ViewCursor


def update_latest(
    cursor: ViewCursor,
    table: str,
    key: str,
    event: Envelope,
    at: Position,
    changes: dict[str, Any],
) -> None:
    """``changes`` (column -> value) plus version, changed_at and position on the row of
    ``event``'s aggregate; raises :class:`LookupError` when the row is not there."""
    sets = [f"{column} = %s" for column in changes]
    sets += ["version = %s", "changed_at = %s", "position = %s"]
    params = [*changes.values(), event["version"]]
    params += [datetime.fromisoformat(event["recorded_at"]), at.position]
    cursor.execute_one(
        f"UPDATE {{{table}}} SET {', '.join(sets)} WHERE {key} = %s",
        (*params, event["aggregate_id"]),
        str(missing_row(table, key, event)),
    )


def missing_row(table: str, key: str, event: Envelope) -> LookupError:
    return LookupError(
        f"{table} has no row with {key} {event['aggregate_id']} "
        f"({event['type']} at version {event['version']}): its creation was never applied"
    )


class PerAggregate(Projection):
    """A projection with one handler per aggregate type it follows, named ``_<aggregate>``
    (``_order(event, cursor)``, ``_invoice(...)``): the finance views follow the same four
    stores and treat each aggregate's events apart; other aggregates are ignored."""

    handles: ClassVar[tuple[str, ...]] = ("order", "contract", "invoice", "payment")

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["aggregate"] in self.handles:
            handler: Callable[[Envelope, ViewCursor], None] = getattr(
                self, f"_{event['aggregate']}"
            )
            handler(event, cursor)


def business_time(event: Envelope) -> datetime:
    """The source's time of the event when it says one, else when Concord recorded it: the
    time every view stamps a milestone, break or fact with (never the clock)."""
    return datetime.fromisoformat(event.get("occurred_at") or event["recorded_at"])
