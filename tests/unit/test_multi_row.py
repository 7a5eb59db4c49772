"""Which statements the projection runner holds and folds as plain inserts, and how."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from uuid import uuid4

import pytest

from adapters.projections.multi_row import MAX_PARAMS, copy_keeps_values, plain_insert

PLAIN = 'INSERT INTO "s"."t" (a, b, status) VALUES (%s, %s, \'active\')'


def test_a_plain_insert_folds_into_rows_of_its_own_values() -> None:
    insert = plain_insert(PLAIN)
    assert insert is not None
    assert insert.table == '"s"."t"' and insert.tail == ""
    assert insert.row == "(%s, %s, 'active')" and insert.per == MAX_PARAMS // 2
    assert insert.folded(2) == (
        "INSERT INTO \"s\".\"t\" (a, b, status) VALUES (%s, %s, 'active'), (%s, %s, 'active')"
    )


def test_do_nothing_on_conflict_stays_after_the_rows() -> None:
    insert = plain_insert("INSERT INTO {t} (a, b) VALUES (%s, %s) ON CONFLICT (a) DO NOTHING")
    assert insert is not None and insert.table == "{t}"
    assert insert.folded(2) == (
        "INSERT INTO {t} (a, b) VALUES (%s, %s), (%s, %s) ON CONFLICT (a) DO NOTHING"
    )
    bare = plain_insert("INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING")
    assert bare is not None and bare.folded(1).endswith("VALUES (%s) ON CONFLICT DO NOTHING")


def test_a_row_with_nested_parentheses_is_one_row() -> None:
    insert = plain_insert("INSERT INTO t (a, b) VALUES (lower(%s), coalesce(%s, 'x'))")
    assert insert is not None and insert.row == "(lower(%s), coalesce(%s, 'x'))"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO t (a) VALUES (%s) on conflict (a) do update set a = excluded.a",
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT ON CONSTRAINT t_pkey DO NOTHING",
        "INSERT INTO t (a) VALUES (%s) RETURNING a",
        "INSERT INTO t (a) SELECT %s",
        "INSERT INTO t (a) VALUES ((SELECT max(a) FROM u))",
        "INSERT INTO t (a) VALUES (%s), (%s)",
        "INSERT INTO t (a) VALUES (DEFAULT)",
        "UPDATE t SET a = %s WHERE b = %s",
        "WITH touched AS (UPDATE t SET a = %s RETURNING 1) SELECT 1 / (count(*) = 1)::int",
        "INSERT INTO t VALUES (%s)",
    ],
)
def test_anything_but_one_plain_row_is_not_a_plain_insert(statement: str) -> None:
    assert plain_insert(statement) is None


def test_a_row_too_wide_for_two_per_statement_is_not_folded() -> None:
    marks = ", ".join(["%s"] * (MAX_PARAMS // 2 + 1))
    insert = plain_insert(f"INSERT INTO t (a) VALUES ({marks})")
    assert insert is not None and insert.per == 1


def test_numbered_gives_postgres_placeholders_row_after_row() -> None:
    insert = plain_insert(
        "INSERT INTO {t} (a, b, c) VALUES (%s, %s, 'x') ON CONFLICT (a) DO NOTHING"
    )
    assert insert is not None
    assert insert.numbered(3) == (
        "INSERT INTO {t} (a, b, c) VALUES ($1, $2, 'x'), ($3, $4, 'x'), ($5, $6, 'x') "
        "ON CONFLICT (a) DO NOTHING"
    )
    escaped = plain_insert("INSERT INTO {t} (a, b) VALUES (%s, '100%%')")
    assert escaped is not None and escaped.numbered(2) is None  # psycopg's escape: kept


def test_copy_is_used_only_for_values_it_stores_as_an_insert_would() -> None:
    insert = plain_insert("INSERT INTO {t} (a, b) VALUES (%s, %s)")
    assert insert is not None and insert.columns == ("a", "b")
    aware = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=5)))
    keeps = {"a": "timestamptz", "b": "boolean"}
    assert copy_keeps_values(insert, keeps, [(aware, True), (None, None), ("2024-01-01", False)])
    assert not copy_keeps_values(insert, {"a": "timestamptz", "b": "text"}, [(aware, True)])
    assert not copy_keeps_values(insert, {"a": "date", "b": "boolean"}, [(aware, True)])
    assert not copy_keeps_values(insert, keeps, [(datetime(2024, 1, 1), True)])  # naive
    assert not copy_keeps_values(insert, {"a": "numeric", "b": "boolean"}, [(0.5, True)])
    assert copy_keeps_values(insert, {"a": "numeric", "b": "uuid"}, [(Decimal("1.50"), uuid4())])
    assert not copy_keeps_values(insert, None, [(1, 2)])  # a table of unknown columns
    assert not copy_keeps_values(insert, {"a": "bigint"}, [(1, 2)])  # a column unknown
    assert not copy_keeps_values(insert, {"a": "bigint[]", "b": "text"}, [([1], "x")])
