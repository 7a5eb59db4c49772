"""What ``concord projections status`` and ``GET /v1/projections`` report, from PostgreSQL.

Read from the tracking tables and the stores themselves, so any process can tell (the runner
may run in another one): per upstream store the live position, the store's head, the events
not yet applied (counted, since positions have gaps) and how old the oldest of them is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from adapters.nats.runner import lock_held
from adapters.projections.runner import lock_key
from adapters.projections.schema import CHANNEL, LIVE, create_tracking, exists
from projections.definition import Projection


@dataclass
class StoreLag:
    store: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float


@dataclass
class Failure:
    store: str
    position: int
    event_id: str
    reason: str
    at: datetime


@dataclass
class Rebuild:
    version: int
    done: int
    total: int
    started_at: datetime | None


@dataclass
class ProjectionStatus:
    name: str
    title: str
    code_version: int
    version: int | None
    """The version the live tables were built by (None: never built)."""
    state: str
    """running, catching_up, rebuilding, failed, or stopped (no runner holds the lock)."""
    runner: bool
    tables: list[str]
    stores: list[StoreLag] = field(default_factory=list)
    failure: Failure | None = None
    rebuild: Rebuild | None = None
    rebuild_requested: bool = False
    rebuilt_at: datetime | None = None

    @property
    def lag_events(self) -> int:
        return sum(s.lag_events for s in self.stores)


def projection_status(
    conn: psycopg.Connection[Any], schema: str, projections: list[Projection]
) -> list[ProjectionStatus]:
    ident = sql.Identifier(schema)
    tracked = exists(conn, schema, "concord_projections")
    result = []
    for p in projections:
        row = None
        positions: dict[str, int] = {}
        if tracked:
            row = conn.execute(
                sql.SQL(
                    "SELECT version, tables, state, reason, failed_store, failed_position, "
                    "failed_event_id, failed_at, rebuild_requested, rebuild_version, "
                    "rebuild_done, rebuild_total, rebuild_started_at, rebuilt_at "
                    "FROM {}.concord_projections WHERE name = %s"
                ).format(ident),
                (p.name,),
            ).fetchone()
            positions = dict(
                conn.execute(
                    sql.SQL(
                        "SELECT store, position FROM {}.concord_projection_positions "
                        "WHERE projection = %s AND generation = %s"
                    ).format(ident),
                    (p.name, LIVE),
                ).fetchall()
            )
        runner = lock_held(conn, lock_key(schema, p.name))
        status = ProjectionStatus(
            name=p.name,
            title=p.title or p.name,
            code_version=p.version,
            version=None if row is None else row[0],
            state="stopped",
            runner=runner,
            tables=[t.name for t in p.tables],
            stores=[_lag(conn, schema, s, int(positions.get(s, 0))) for s in p.stores],
        )
        if row is not None:
            status.rebuild_requested = bool(row[8])
            status.rebuilt_at = row[13]
            if row[9] is not None:
                status.rebuild = Rebuild(row[9], int(row[10]), int(row[11]), row[12])
            if row[2] == "failed":
                status.failure = Failure(row[4], int(row[5]), row[6], row[3], row[7])
        status.state = _state(status, None if row is None else row[2])
        result.append(status)
    return result


def _state(status: ProjectionStatus, recorded: str | None) -> str:
    if recorded == "failed":
        return "failed"
    if not status.runner:
        return "stopped"
    if status.rebuild is not None or status.rebuild_requested:
        return "rebuilding"
    if recorded == "running" and status.lag_events == 0:
        return "running"
    return "catching_up" if status.lag_events else (recorded or "catching_up")


def _lag(conn: psycopg.Connection[Any], schema: str, store: str, position: int) -> StoreLag:
    table = f"{store}_events"
    if not exists(conn, schema, table):
        return StoreLag(store, position, 0, 0, 0.0)
    row = conn.execute(
        sql.SQL(
            "SELECT (SELECT max(notification_id) FROM {t}), "
            "(SELECT count(*) FROM {t} WHERE notification_id > %s), "
            "(SELECT extract(epoch FROM now() - (convert_from(state, 'UTF8')::jsonb "
            "->> 'timestamp')::timestamptz) FROM {t} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT 1)"
        ).format(t=sql.Identifier(schema, table)),
        (position, position),
    ).fetchone()
    assert row is not None
    return StoreLag(store, position, int(row[0] or 0), int(row[1]), max(0.0, float(row[2] or 0)))


def request_rebuild(conn: psycopg.Connection[Any], schema: str, projection: Projection) -> None:
    """Ask the projection's runner (wherever it runs) to rebuild; it is woken at once."""
    create_tracking(conn, schema)
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.concord_projections (name, version, tables, rebuild_requested) "
            "VALUES (%s, %s, %s, true) ON CONFLICT (name) DO UPDATE SET "
            "rebuild_requested = true, updated_at = now()"
        ).format(sql.Identifier(schema)),
        (projection.name, projection.version, []),
    )
    conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(CHANNEL)))
