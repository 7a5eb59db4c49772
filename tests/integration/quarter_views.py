"""Helpers for the view tests on the realistic quarter (tests/integration/quarter.py): play
it, catch a projection up, read a table without the columns that record *when* Concord
wrote a row (its clock and log positions are not the quarter's business)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from adapters.bootstrap import Runtime
from projections.definition import Projection
from tests.integration.projection_support import connect, runner

#: Columns that say when Concord recorded a row's last event, not what the quarter says.
RECORDING = ("changed_at", "position")


def caught_up(runtime: Runtime, view: Projection) -> None:
    runner(runtime, view, batch=7).catch_up()


def table(
    runtime: Runtime, name: str, order_by: str, drop: tuple[str, ...] = RECORDING
) -> list[tuple[Any, ...]]:
    """Rows of ``name`` ordered by ``order_by``, without the ``drop`` columns."""
    with connect(runtime) as conn:
        cursor = conn.execute(
            f'SELECT * FROM "{runtime.settings.schema_name}"."{name}" ORDER BY {order_by}'
        )
        names = [c.name for c in cursor.description or ()]
        keep = [i for i, n in enumerate(names) if n not in drop]
        return [tuple(row[i] for i in keep) for row in cursor.fetchall()]


def utc(day: str, hour: str = "09:00") -> datetime:
    """``day`` at ``hour`` UTC, as the quarter's commands say their source's time."""
    return datetime.fromisoformat(f"{day}T{hour}:00+00:00")


def d(value: str) -> Decimal:
    return Decimal(value)


def day(text: str) -> date:
    return date.fromisoformat(text)
