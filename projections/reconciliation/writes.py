"""One event's writes sent as one statement: ``WITH w1 AS (write 1), ... write n``.

Why: an event of this projection writes a few rows of different tables (a fact row, a
payment move, a break row and its history entry), and the events of a store alternate
between kinds, so the runner's held runs of equal statements stayed one statement long: a
round of psycopg's per-statement cost per row. Joined into one statement per event, the
text depends only on what the event wrote (its "shape"): consecutive events of one shape
(every payment's receipt, every posting of an invoice) go as one ``executemany``, and a
receipt's four rows cost one statement instead of four.

Why this is exact: the writes of one event touch each row at most once and none reads
another's effect (each writes final values computed from the memo), which is what a
statement of data-modifying ``WITH`` parts allows (they run on one snapshot). A lone write
is sent as it is (so plain inserts still fold into multi-row inserts). A read (or a write
that must report its row count) first sends what is held, so it sees the event's earlier
writes, as it would have. A failing part fails the event's statement, so the runner's
replay still names the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from projections.definition import ViewCursor

_JOINED: dict[tuple[str, ...], str] = {}
"""Statement texts of a shape -> the joined text (few shapes: one per kind of event)."""


def _joined(statements: tuple[str, ...]) -> str:
    text = _JOINED.get(statements)
    if text is None:
        parts = [f"w{n} AS ({s})" for n, s in enumerate(statements[:-1])]
        text = _JOINED[statements] = f"WITH {', '.join(parts)} {statements[-1]}"
    return text


class EventWrites:
    """A :class:`ViewCursor` holding one event's writes until :meth:`send` (or a read)."""

    def __init__(self, cursor: ViewCursor) -> None:
        self.memo: dict[Any, Any] = cursor.memo
        self._cursor = cursor
        self._statements: list[str] = []
        self._params: list[Any] = []

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._statements.append(statement)
        self._params.extend(params)

    def send(self) -> None:
        """Send the held writes: as they are when one, else joined into one statement."""
        statements, params = self._statements, self._params
        if not statements:
            return
        self._statements, self._params = [], []
        if len(statements) == 1:
            self._cursor.execute(statements[0], params)
        else:
            self._cursor.execute(_joined(tuple(statements)), params)

    def execute_one(self, statement: str, params: Sequence[Any], missing: str) -> None:
        self.send()
        self._cursor.execute_one(statement, params, missing)

    def execute_counted(self, statement: str, params: Sequence[Any] = ()) -> int:
        self.send()
        return self._cursor.execute_counted(statement, params)

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.send()
        return self._cursor.fetchone(statement, params)
