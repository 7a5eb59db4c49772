"""The runner's own tables, and the DDL of a projection's view tables per generation.

``concord_projections``: one row per projection: the version the live tables were built by,
its state (``failed`` with the event, store, position and reason), and a rebuild in progress
(target version, events done of total).

``concord_projection_positions``: per projection, generation (``live`` or ``shadow``) and
upstream store, the last event applied. It is updated in the same transaction as the view
rows, so each event is applied exactly once per generation, and the update names the position
it expects to move from, so a second writer (which the advisory lock should already keep out)
fails instead of applying events twice.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection, sql

from projections.definition import Projection, Table, View

LIVE = "live"
SHADOW = "shadow"
SHADOW_SUFFIX = "__rebuild"
#: NOTIFY channel on which a rebuild request wakes the runner at once.
CHANNEL = "concord_projections"

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_projections (
        name               text        PRIMARY KEY,
        version            integer     NOT NULL,
        tables             text[]      NOT NULL,
        state              text        NOT NULL DEFAULT 'catching_up',
        reason             text,
        failed_store       text,
        failed_position    bigint,
        failed_event_id    text,
        failed_at          timestamptz,
        rebuild_requested  boolean     NOT NULL DEFAULT false,
        rebuild_version    integer,
        rebuild_done       bigint      NOT NULL DEFAULT 0,
        rebuild_total      bigint      NOT NULL DEFAULT 0,
        rebuild_started_at timestamptz,
        rebuilt_at         timestamptz,
        updated_at         timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_projection_positions (
        projection  text        NOT NULL,
        generation  text        NOT NULL,
        store       text        NOT NULL,
        position    bigint      NOT NULL DEFAULT 0,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (projection, generation, store)
    )
    """,
]


def create_tracking(conn: Connection[Any], schema: str) -> None:
    ident = sql.Identifier(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('concord-projections-ddl'))")
        for statement in TABLES:
            conn.execute(sql.SQL(statement).format(schema=ident))


def physical(table: Table, generation: str) -> str:
    return table.name if generation == LIVE else f"{table.name}{SHADOW_SUFFIX}"


def table_ddl(schema: str, table: Table, name: str, indexes: bool = True) -> list[sql.Composed]:
    """CREATE TABLE plus a COMMENT ON for the table and each column, then its indexes
    (unless ``indexes`` is false: :func:`index_ddl` makes them later)."""
    target = sql.Identifier(schema, name)
    columns = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name), sql.SQL(c.type), sql.SQL(" NOT NULL" if c.not_null else "")
        )
        for c in table.columns
    ]
    columns.append(
        sql.SQL("PRIMARY KEY ({})").format(
            sql.SQL(", ").join(sql.Identifier(k) for k in table.primary_key)
        )
    )
    statements = [
        sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(", ").join(columns)),
        sql.SQL("COMMENT ON TABLE {} IS {}").format(target, sql.Literal(table.comment)),
    ]
    statements += [
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
            target, sql.Identifier(c.name), sql.Literal(c.comment)
        )
        for c in table.columns
    ]
    return statements + (index_ddl(schema, table, name) if indexes else [])


def index_ddl(schema: str, table: Table, name: str) -> list[sql.Composed]:
    """The table's secondary indexes (those not there yet).

    An index is named after the table it is created on (``{name}_{columns}_idx``), so a
    shadow's indexes start with the shadow's name and the rebuild swap renames them with it."""
    return [
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(f"{name}_{'_'.join(index)}_idx"),
            sql.Identifier(schema, name),
            sql.SQL(", ").join(sql.Identifier(k) for k in index),
        )
        for index in table.indexes
    ]


def create_indexes(
    conn: Connection[Any], schema: str, projection: Projection, generation: str
) -> None:
    """Build the secondary indexes a rebuild deferred (see ``Projection.writes_only``)."""
    for table in projection.tables:
        for statement in index_ddl(schema, table, physical(table, generation)):
            conn.execute(statement)


def exists(conn: Connection[Any], schema: str, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',)).fetchone()
    return bool(row and row[0])


def drop_views(conn: Connection[Any], schema: str, projection: Projection) -> None:
    """Drop the projection's views (before its live tables are dropped or replaced)."""
    for view in reversed(projection.views):
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, view.name)))


def view_ddl(schema: str, projection: Projection, view: View) -> list[sql.Composed]:
    """CREATE OR REPLACE VIEW over the live tables, with its comments."""
    target = sql.Identifier(schema, view.name)
    live = {t.name: sql.Identifier(schema, t.name) for t in projection.tables}
    live |= {v.name: sql.Identifier(schema, v.name) for v in projection.views}
    statements = [
        sql.SQL("CREATE OR REPLACE VIEW {} ({}) AS {}").format(
            target,
            sql.SQL(", ").join(sql.Identifier(c.name) for c in view.columns),
            sql.SQL(view.select).format(**live),
        ),
        sql.SQL("COMMENT ON VIEW {} IS {}").format(target, sql.Literal(view.comment)),
    ]
    statements += [
        sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
            target, sql.Identifier(c.name), sql.Literal(c.comment)
        )
        for c in view.columns
    ]
    return statements


def create_views(conn: Connection[Any], schema: str, projection: Projection) -> None:
    """(Re)create the projection's views over its live tables (caller's transaction)."""
    for view in projection.views:
        for statement in view_ddl(schema, projection, view):
            conn.execute(statement)


def create_generation(
    conn: Connection[Any], schema: str, projection: Projection, generation: str
) -> None:
    """(Re)create the generation's tables empty (inside the caller's transaction); for the
    live generation, its views over them too."""
    if generation == LIVE:
        drop_views(conn, schema, projection)
    for table in projection.tables:
        name = physical(table, generation)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name)))
        # A live generation is read at once; a shadow of a writes-only projection gets its
        # secondary indexes when its rows are in (``create_indexes``, before the swap).
        deferred = generation == SHADOW and projection.writes_only
        for statement in table_ddl(schema, table, name, indexes=not deferred):
            conn.execute(statement)
    if generation == LIVE:
        create_views(conn, schema, projection)


def swap(conn: Connection[Any], schema: str, projection: Projection, old: list[str]) -> None:
    """Replace the live tables by the shadow ones (inside the caller's transaction).

    DROP and RENAME take ACCESS EXCLUSIVE locks: a reader waits for the commit, then reads
    the new table (PostgreSQL looks the name up again after the lock wait); nobody sees an
    empty or half-built table. Indexes get the live names back, so a next rebuild's shadow
    can use its own. The views are dropped first and recreated over the new tables, in the
    same transaction, so they too are never missing for a reader."""
    drop_views(conn, schema, projection)
    for name in old:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name)))
    for table in projection.tables:
        shadow = physical(table, SHADOW)
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(schema, shadow), sql.Identifier(table.name)
            )
        )
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (schema, table.name),
        ).fetchall()
        for (index,) in rows:
            if index.startswith(shadow):
                conn.execute(
                    sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                        sql.Identifier(schema, index),
                        sql.Identifier(table.name + index[len(shadow) :]),
                    )
                )
    create_views(conn, schema, projection)
