"""Plain single-row ``INSERT``\\ s: recognised, and folded into multi-row statements.

Why: a rebuild sends hundreds of inserts of the same few texts (one or more per event). One
``INSERT ... VALUES (...), (...), ...`` holding many of them costs psycopg one statement
instead of many (its per-statement Python cost is most of a batch's time) and PostgreSQL one
parse and one executor run.

Why only plain inserts, ``INSERT INTO t (columns) VALUES (row)`` with at most ``ON CONFLICT
... DO NOTHING`` after it: the rows of one multi-row insert go in in their order, as the
single inserts would, with the same defaults (with ``DO NOTHING`` the first of two equal
keys stays, as it would); a failing row fails the statement as it failed its own (the
runner's replay then names the event). A plain insert also reads nothing, so inserts into
different tables may be sent in any order (projection tables have no foreign keys or
triggers). ``ON CONFLICT ... DO UPDATE`` (two rows of one statement may not update one
row), ``RETURNING``, ``INSERT ... SELECT``, subqueries and anything else are not plain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

from psycopg.types.json import Json, Jsonb

#: Parameters per folded statement. A run's full chunks share one text and go as one
#: ``executemany``, which psycopg parses once whatever the number of parameters (its cache
#: of parsed queries, for at most 50 parameters, only matters to statements sent one by one:
#: the run's rest). Measured on the development VM, 15-column rows: plain ``executemany``
#: 57k rows/s, chunks of 3 rows 80-97k, of 20-100 rows 105-122k; hundreds of parameters
#: is where the gain flattens.
MAX_PARAMS = 480

_INSERT = re.compile(
    r"\s*INSERT\s+INTO\s+(\S+)\s*\([^()]*\)\s*VALUES\s*(?=\()", re.IGNORECASE | re.DOTALL
)
_DO_NOTHING = re.compile(
    r"\s+ON\s+CONFLICT\s*(\([^()]*\)\s*)?DO\s+NOTHING\s*$", re.IGNORECASE | re.DOTALL
)
_UNSAFE = re.compile(r"\b(ON\s+CONFLICT|RETURNING|SELECT|VALUES|DEFAULT)\b", re.IGNORECASE)
_ONLY_PARAMETERS = re.compile(r"\(\s*%s(\s*,\s*%s)*\s*\)")
_TARGET = re.compile(r"\s*INSERT\s+INTO\s+(.*?)\s*VALUES\s*$", re.IGNORECASE | re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\w+\}")
_COLUMNS = re.compile(r"\(([^()]*)\)\s*VALUES\s*$", re.IGNORECASE)

#: Python type -> the column types whose ``COPY`` text of it stores what an ``INSERT`` of it
#: as a parameter stores. Why a list: ``COPY`` hands the column's input function the
#: value's text, an ``INSERT`` a typed parameter that PostgreSQL casts, and the two differ
#: for some pairs (``True`` into text: ``t`` against ``true``; a float into numeric; an
#: aware datetime into a date or a timestamp without time zone). A ``str`` is sent untyped
#: either way, so the column parses it alike; None is NULL everywhere.
_SAME_BY_COPY: dict[type, frozenset[str]] = {
    int: frozenset({"bigint", "integer", "smallint", "numeric", "text"}),
    bool: frozenset({"boolean"}),
    Decimal: frozenset({"numeric"}),
    UUID: frozenset({"uuid", "text"}),
    date: frozenset({"date"}),
    Jsonb: frozenset({"jsonb"}),
    Json: frozenset({"json", "jsonb"}),
}


class PlainInsert(NamedTuple):
    table: str
    """The target as written (``{erp_customers}`` or a quoted name)."""
    head: str
    """Up to and including ``VALUES``."""
    row: str
    """The parenthesised row."""
    tail: str
    """``ON CONFLICT ... DO NOTHING`` or empty."""
    per: int
    """Rows per folded statement (within :data:`MAX_PARAMS`); below 2, do not fold."""
    copy: str | None
    """``COPY <table> (<columns>) FROM STDIN`` when the insert may go as ``COPY``: no
    ``ON CONFLICT`` (``COPY`` has none: an insert that fails on a duplicate fails as
    ``COPY`` too) and a row of bare parameters, each one column's value (``COPY`` takes
    values, not expressions). Else None."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The insert's column names, in order."""
        found = _COLUMNS.search(self.head)
        return tuple(c.strip() for c in found.group(1).split(",")) if found else ()

    def folded(self, rows: int) -> str:
        """The statement inserting ``rows`` rows (their parameters one row after another)."""
        return self.head + ", ".join([self.row] * rows) + self.tail

    def numbered(self, rows: int) -> str | None:
        """:meth:`folded` with PostgreSQL's own ``$1, $2 …`` placeholders, for a raw cursor
        (None when the text holds a ``%%`` escape, which only psycopg's style knows).

        Why: psycopg parses a ``%s`` query's placeholders in Python, and caches the result
        only for queries of at most 50 parameters and 4 KB; every folded statement above
        that was parsed again at each send (an eighth of a reconciliation rebuild). A
        ``$n`` query is sent as it is."""
        return _numbered(self.head, self.row, self.tail, rows)


@lru_cache(maxsize=1024)
def _numbered(head: str, row: str, tail: str, rows: int) -> str | None:
    if "%%" in head + row + tail:
        return None
    pieces = row.split("%s")
    marks = len(pieces) - 1
    numbered = []
    for r in range(rows):
        text = pieces[0]
        for k, piece in enumerate(pieces[1:]):
            text += f"${r * marks + k + 1}" + piece
        numbered.append(text)
    return head + ", ".join(numbered) + tail


@lru_cache(maxsize=512)
def plain_insert(statement: str) -> PlainInsert | None:
    """``statement`` taken apart when it is one plain single-row insert, else None."""
    head = _INSERT.match(statement)
    if head is None:
        return None
    rest = statement[head.end() :].rstrip()
    conflict = _DO_NOTHING.search(rest)
    row = rest[: conflict.start()] if conflict else rest
    if not _balanced(row) or _UNSAFE.search(row):
        return None
    per = MAX_PARAMS // max(1, row.count("%s"))
    tail = rest[conflict.start() :] if conflict else ""
    start = statement[: head.end()]
    target = _TARGET.match(start)
    copyable = not tail and target is not None and _ONLY_PARAMETERS.fullmatch(row)
    copy = f"COPY {target.group(1)} FROM STDIN" if copyable and target else None
    return PlainInsert(head.group(1), start, row, tail, per, copy)


@lru_cache(maxsize=512)
def tables_named(statement: str) -> frozenset[str] | None:
    """The view tables a statement names (its ``{table}`` placeholders), or None when it
    names none that way (it may then touch any)."""
    found = frozenset(_PLACEHOLDER.findall(statement))
    return found or None


def _balanced(row: str) -> bool:
    """``row`` is one parenthesised tuple: its first ``(`` closes at its last character."""
    depth = 0
    for i, char in enumerate(row):
        depth += char == "("
        depth -= char == ")"
        if depth == 0:
            return i == len(row) - 1
    return False


def copy_keeps_values(
    insert: PlainInsert, types: Mapping[str, str] | None, rows: Sequence[Sequence[Any]]
) -> bool:
    """Whether ``COPY`` of ``rows`` stores exactly what the insert would (see
    ``_SAME_BY_COPY``), given the table's column types (None: unknown, so no)."""
    if types is None:
        return False
    columns = insert.columns
    if not columns or any(c not in types for c in columns):
        return False
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        column = types[name]
        for kind in set(map(type, values)):
            if kind is str or kind is type(None):
                continue
            if kind is datetime:
                if column != "timestamptz" or any(
                    v.tzinfo is None for v in values if type(v) is datetime
                ):
                    return False
            elif column not in _SAME_BY_COPY.get(kind, ()):
                return False
    return True
