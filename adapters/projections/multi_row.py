"""Folding a run of single-row ``INSERT ... VALUES (...)`` into one multi-row statement.

Why: a rebuild sends hundreds of consecutive inserts of the same text (one per creation
event). One ``INSERT ... VALUES (...), (...), ...`` holding them all costs psycopg one
statement instead of hundreds (its per-statement Python cost is most of a batch's time)
and PostgreSQL one parse and one executor run.

Why only plain inserts: rows of one multi-row ``INSERT`` are inserted in their order, as
the single inserts would be, with the same defaults, and a failing row fails the statement
as it failed its own (the runner's replay then names the event). ``ON CONFLICT`` (two rows
of one statement may not update one row), ``RETURNING``, ``INSERT ... SELECT`` and
anything else are sent as they are.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Parameters per folded statement: psycopg parses a query's ``%s`` marks in Python, and
#: caches the result only for queries of at most 50 parameters (``_queries.py``,
#: ``MAX_CACHED_STATEMENT_PARAMS``); a longer one is parsed again at every execution, which
#: costs more than it saves. Within the limit, a full chunk's text repeats and is prepared.
MAX_PARAMS = 50

_INSERT = re.compile(r"\s*INSERT\s+INTO\s+.+?\)\s*VALUES\s*(?=\()", re.IGNORECASE | re.DOTALL)
_UNSAFE = re.compile(r"\b(ON\s+CONFLICT|RETURNING|SELECT|VALUES|DEFAULT)\b", re.IGNORECASE)


@lru_cache(maxsize=256)
def multi_row(statement: str) -> tuple[str, str, int] | None:
    """``(head, row, rows per statement)`` when ``statement`` is one plain
    ``INSERT INTO t (columns) VALUES (row)`` of which two or more rows fit in
    :data:`MAX_PARAMS`: then ``head + ", ".join([row] * n)`` inserts ``n`` rows (at most
    ``rows per statement``). Else None."""
    head = _INSERT.match(statement)
    if head is None:
        return None
    row = statement[head.end() :].rstrip()
    if not row.endswith(")") or not _balanced(row) or _UNSAFE.search(row):
        return None
    per = MAX_PARAMS // max(1, row.count("%s"))
    return (statement[: head.end()], row, per) if per >= 2 else None


def _balanced(row: str) -> bool:
    """``row`` is one parenthesised tuple: its first ``(`` closes at its last ``)``."""
    depth = 0
    for i, char in enumerate(row):
        depth += char == "("
        depth -= char == ")"
        if depth == 0:
            return i == len(row) - 1
    return False
