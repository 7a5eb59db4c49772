"""``concord bi-role create`` on real PostgreSQL: the role reads the projection tables, and
nothing else, and keeps reading them after a rebuild swapped the tables.

Roles are cluster-wide: every test makes its own uniquely named role and drops it after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from typer.testing import CliRunner

from adapters.bootstrap import Runtime
from api.cli import app
from tests.integration.commands import new_customer
from tests.integration.projection_support import connect, rebuild, runner

FORBIDDEN = [
    "customers_events",
    "concord_receipts",
    "concord_personal_keys",
    "concord_inbound",
    "concord_secrets",
    "concord_bi_roles",
    "concord_projections",
]


@pytest.fixture
def role(runtime: Runtime) -> Iterator[str]:
    name = f"bi_{uuid.uuid4().hex[:12]}"
    yield name
    with connect(runtime) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def create(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    assert runtime.settings.database_url
    monkeypatch.setenv("CONCORD_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("CONCORD_SCHEMA_NAME", runtime.settings.schema_name)
    result = CliRunner().invoke(app, ["bi-role", "create", *args])
    assert result.exit_code == 0, result.output
    return result.output


def login(runtime: Runtime, role: str, password: str) -> psycopg.Connection[Any]:
    assert runtime.settings.database_url
    return psycopg.connect(
        runtime.settings.database_url, user=role, password=password, autocommit=True
    )


def password_of(output: str) -> str:
    line = next(x for x in output.splitlines() if x.startswith("Password (shown once"))
    return line.rsplit(" ", 1)[1]


def refused(conn: psycopg.Connection[Any], statement: sql.Composable) -> bool:
    try:
        conn.execute(statement)
    except errors.InsufficientPrivilege:
        return True
    return False


def test_the_role_reads_the_views_and_nothing_else(
    runtime: Runtime, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = runtime.settings.schema_name
    new_customer(runtime, "Acme Ltd")
    runner(runtime).catch_up()
    password = password_of(create(runtime, monkeypatch, "--name", role))
    with connect(runtime) as conn:  # every table the test names must really exist
        for table in FORBIDDEN:
            found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
            assert found and found[0], table
    view = sql.Identifier(schema, "erp_customers")
    with login(runtime, role, password) as bi:
        assert bi.execute(sql.SQL("SELECT legal_name FROM {}").format(view)).fetchall() == [
            ("Acme Ltd",)
        ]
        for table in FORBIDDEN:
            target = sql.Identifier(schema, table)
            assert refused(bi, sql.SQL("SELECT * FROM {}").format(target)), table
        assert refused(
            bi, sql.SQL("INSERT INTO {} (customer_id) VALUES (gen_random_uuid())").format(view)
        )
        assert refused(bi, sql.SQL("UPDATE {} SET legal_name = 'x'").format(view))
        assert refused(bi, sql.SQL("DELETE FROM {}").format(view))
        assert refused(bi, sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(schema, "x")))
    with connect(runtime) as conn:  # the catalogue agrees: SELECT on the view tables only
        readable = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s "
            "AND has_table_privilege(%s, format('%%I.%%I', schemaname, tablename), "
            "'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER')",
            (schema, role),
        ).fetchall()
    assert readable == [("erp_customers",)]


def test_the_role_still_reads_after_a_rebuild_swapped_the_tables(
    runtime: Runtime, role: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    schema = runtime.settings.schema_name
    secret = tmp_path / "bi-password"
    secret.write_text("a-long-password-from-a-vault\n", encoding="utf-8")
    # Created before the projection ever ran: the runner grants its tables when it makes them.
    out = create(runtime, monkeypatch, "--name", role, "--password-file", str(secret))
    assert "Password set from" in out and "a-long-password" not in out
    new_customer(runtime, "Before Ltd")
    runner(runtime).catch_up()
    view = sql.SQL("SELECT legal_name FROM {} ORDER BY 1").format(
        sql.Identifier(schema, "erp_customers")
    )
    with login(runtime, role, "a-long-password-from-a-vault") as bi:
        assert bi.execute(view).fetchall() == [("Before Ltd",)]
    new_customer(runtime, "After Ltd")
    rebuild(runtime)
    runner(runtime).catch_up()
    with connect(runtime) as conn:
        assert conn.execute(
            sql.SQL("SELECT rebuilt_at FROM {}.concord_projections").format(sql.Identifier(schema))
        ).fetchone()[0], "the rebuild did not swap"
    with login(runtime, role, "a-long-password-from-a-vault") as bi:
        assert bi.execute(view).fetchall() == [("After Ltd",), ("Before Ltd",)]
    # Idempotent: a second create keeps the role, its password and its grants.
    again = create(runtime, monkeypatch, "--name", role)
    assert "Updated role" in again and "Existing password kept" in again
    with login(runtime, role, "a-long-password-from-a-vault") as bi:
        assert len(bi.execute(view).fetchall()) == 2


def test_a_bad_role_name_is_refused_naming_the_option(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime.settings.database_url
    monkeypatch.setenv("CONCORD_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("CONCORD_SCHEMA_NAME", runtime.settings.schema_name)
    result = CliRunner().invoke(app, ["bi-role", "create", "--name", 'x"; DROP TABLE y; --'])
    assert result.exit_code == 1
    assert "--name" in result.output
