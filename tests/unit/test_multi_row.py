"""Which statements the projection runner holds and folds as plain inserts, and how."""

from __future__ import annotations

import pytest

from adapters.projections.multi_row import MAX_PARAMS, plain_insert

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
