"""The read-only PostgreSQL role BI tools log in as: SELECT on the projection tables, nothing else.

Why a role of its own rather than a view-reading API key: BI tools speak SQL. The role gets
USAGE on the Concord schema and SELECT on each projection's declared (live) tables only, so
event tables, receipts, personal keys, inbound payloads and secrets stay out of its reach
(PostgreSQL grants nothing inside a schema by default).

Why the role names are kept in ``concord_bi_roles``: a rebuild swaps in shadow tables by
drop-and-rename, and a new table carries no grants. The runner (in whichever process it
runs) reads this table inside the swap's transaction and grants again, so the BI role never
sees the view disappear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from psycopg import Connection, sql

from adapters.projections.schema import exists

#: A plain lowercase identifier: no quoting surprises in ``psql -U`` or a BI tool's form.
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

TABLE = """
    CREATE TABLE IF NOT EXISTS {schema}.concord_bi_roles (
        role       text        PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now()
    )
"""


class BiRoleError(ValueError):
    """A role name or password that cannot be used, with the reason."""


def check_name(name: str) -> str:
    if not ROLE_NAME.match(name):
        raise BiRoleError(
            f"role name {name!r} is not a lowercase identifier (letters, digits, _; "
            "at most 63, not starting with a digit)"
        )
    return name


def _role_exists(conn: Connection[Any], name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def create_bi_role(
    conn: Connection[Any], schema: str, name: str, password: str | None, tables: Iterable[str]
) -> bool:
    """Create (or update) the login role and grant it the projection ``tables``.

    Idempotent: an existing role keeps its password unless one is given. Returns whether
    the role was created now. Tables not built yet are granted by the runner when it
    creates them."""
    check_name(name)
    if password is not None and not password.strip():
        raise BiRoleError("the password is empty")
    ident = sql.Identifier(name)
    with conn.transaction():
        # Serialise concurrent `bi-role create`s: CREATE ROLE has no IF NOT EXISTS.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('concord-bi-role'))")
        conn.execute(sql.SQL(TABLE).format(schema=sql.Identifier(schema)))
        created = not _role_exists(conn, name)
        if created:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE").format(ident)
            )
        if password is not None:
            conn.execute(
                sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password))
            )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.concord_bi_roles (role) VALUES (%s) ON CONFLICT DO NOTHING"
            ).format(sql.Identifier(schema)),
            (name,),
        )
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), ident)
        )
        _grant(conn, schema, [name], [t for t in tables if exists(conn, schema, t)])
    return created


def bi_roles(conn: Connection[Any], schema: str) -> list[str]:
    """The recorded BI roles that still exist in the cluster (none if never created)."""
    if not exists(conn, schema, "concord_bi_roles"):
        return []
    rows = conn.execute(
        sql.SQL(
            "SELECT b.role FROM {}.concord_bi_roles b JOIN pg_roles r ON r.rolname = b.role "
            "ORDER BY b.role"
        ).format(sql.Identifier(schema))
    ).fetchall()
    return [row[0] for row in rows]


def grant_bi_select(conn: Connection[Any], schema: str, tables: Iterable[str]) -> None:
    """GRANT SELECT on freshly created live ``tables`` to every BI role (caller's transaction)."""
    _grant(conn, schema, bi_roles(conn, schema), list(tables))


def _grant(conn: Connection[Any], schema: str, roles: list[str], tables: list[str]) -> None:
    if not roles or not tables:
        return
    conn.execute(
        sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables),
            sql.SQL(", ").join(sql.Identifier(r) for r in roles),
        )
    )
