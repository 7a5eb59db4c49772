"""Reading and writing ``concord_exception_actions``: an item's history, and every
operator action on a set of objects (for their lineage)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from psycopg import sql

__all__ = ["actions_on_objects", "history_of", "record_action"]

_COLUMNS = ("id", "exception_id", "object_kind", "object_id", "reason", "action", "note", "actor")


def _table(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, "concord_exception_actions")


def record_action(
    conn: Any,
    schema: str,
    *,
    exception_id: str,
    kind: str,
    object_id: str,
    reason: str,
    action: str,
    note: str | None,
    actor: str,
) -> dict[str, Any]:
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {} (exception_id, object_kind, object_id, reason, action, note, actor) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {}, at"
        ).format(_table(schema), sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))),
        (exception_id, kind, object_id, reason, action, note, actor),
    ).fetchone()
    return dict(zip((*_COLUMNS, "at"), row, strict=True))


def history_of(conn: Any, schema: str, exception_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each id's actions, oldest first."""
    rows = conn.execute(
        sql.SQL(
            "SELECT exception_id, action, note, actor, at FROM {} WHERE exception_id = ANY(%s) "
            "ORDER BY id"
        ).format(_table(schema)),
        (exception_ids,),
    ).fetchall()
    found: dict[str, list[dict[str, Any]]] = {}
    for exception_id, action, note, actor, at in rows:
        found.setdefault(exception_id, []).append(
            {"action": action, "note": note, "actor": actor, "at": at}
        )
    return found


def actions_on_objects(
    conn: Any, schema: str, ids: Iterable[str], as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """Operator actions recorded on objects named by any of ``ids`` (canonical ids or a
    system's id), oldest first; none when the table does not exist (an older schema)."""
    wanted = sorted(set(ids))
    exists = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."concord_exception_actions"',))
    if not wanted or not (row := exists.fetchone()) or not row[0]:
        return []
    condition: sql.Composable = sql.SQL("object_id = ANY(%s)")
    params: list[Any] = [wanted]
    if as_of is not None:
        condition = sql.SQL("{} AND at <= %s").format(condition)
        params.append(as_of)
    cursor = conn.execute(
        sql.SQL("SELECT {}, at FROM {} WHERE {} ORDER BY at, id LIMIT 1000").format(
            sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), _table(schema), condition
        ),
        params,
    )
    return [dict(zip((*_COLUMNS, "at"), r, strict=True)) for r in cursor.fetchall()]
