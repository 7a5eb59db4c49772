"""Which statements the projection runner folds into one multi-row INSERT, and how."""

from __future__ import annotations

import pytest

from adapters.projections.multi_row import MAX_PARAMS, multi_row

PLAIN = 'INSERT INTO "s"."t" (a, b, status) VALUES (%s, %s, \'active\')'


def test_a_plain_insert_folds_into_rows_of_its_own_values() -> None:
    folded = multi_row(PLAIN)
    assert folded is not None
    head, row, per = folded
    assert head == 'INSERT INTO "s"."t" (a, b, status) VALUES '
    assert row == "(%s, %s, 'active')"
    assert per == MAX_PARAMS // 2
    assert head + ", ".join([row] * 2) == (
        "INSERT INTO \"s\".\"t\" (a, b, status) VALUES (%s, %s, 'active'), (%s, %s, 'active')"
    )


def test_a_row_with_nested_parentheses_folds_whole() -> None:
    folded = multi_row("INSERT INTO t (a, b) VALUES (lower(%s), coalesce(%s, 'x'))")
    assert folded is not None and folded[1] == "(lower(%s), coalesce(%s, 'x'))"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT (a) DO NOTHING",
        "INSERT INTO t (a) VALUES (%s) on conflict (a) do update set a = excluded.a",
        "INSERT INTO t (a) VALUES (%s) RETURNING a",
        "INSERT INTO t (a) SELECT %s",
        "INSERT INTO t (a) VALUES (%s), (%s)",
        "INSERT INTO t (a) VALUES (DEFAULT)",
        "UPDATE t SET a = %s WHERE b = %s",
        "WITH touched AS (UPDATE t SET a = %s RETURNING 1) SELECT 1 / (count(*) = 1)::int",
        "INSERT INTO t VALUES (%s)",
    ],
)
def test_anything_but_one_plain_row_is_sent_as_it_is(statement: str) -> None:
    assert multi_row(statement) is None


def test_a_row_too_wide_for_two_per_statement_is_not_folded() -> None:
    marks = ", ".join(["%s"] * (MAX_PARAMS // 2 + 1))
    assert multi_row(f"INSERT INTO t (a) VALUES ({marks})") is None
