"""Reading a deal's process: found by any id a user has at hand, with everything that says
where it stands — steps, milestones, decisions and their execution, and the deliveries to
the target systems that are being retried or have failed.

Why the deliveries are joined here: the process waits on the subscribers (a step is
``sent`` while the ERP or billing has not answered), so "what is it waiting for, how many
attempts, what did the target say" lives in the subscribers' holds and dead letters, keyed
by the aggregates of the deal. An operator asking about one deal should not have to know
that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.errors import UndefinedTable

from adapters.process.tables import COMMANDS, EVENTS, PROCESSES, STEPS

__all__ = ["Ambiguous", "find_processes", "process_view"]

MAX_EVENTS = 500
_LOOKUP_COLUMNS = ("opportunity_id", "erp_order_number", "billing_subscription_id")


@dataclass(frozen=True)
class Ambiguous:
    """The id names several deals (a customer's id, say): their process ids."""

    process_ids: list[str]


def _t(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def find_processes(conn: Any, schema: str, any_id: str) -> list[str]:
    """Process ids that ``any_id`` names: the order (process) id, the contract id, the
    customer id, the CRM opportunity id, the ERP order number or billing's subscription id."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    try:
        as_uuid = UUID(any_id)
    except ValueError:
        as_uuid = None
    if as_uuid is not None:
        for column in ("process_id", "contract_id", "customer_id"):
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(as_uuid)
    for column in _LOOKUP_COLUMNS:
        clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
        params.append(any_id)
    rows = conn.execute(
        sql.SQL("SELECT process_id::text FROM {} WHERE {} ORDER BY started_at LIMIT 50").format(
            _t(schema, PROCESSES.name), sql.SQL(" OR ").join(clauses)
        ),
        params,
    ).fetchall()
    return [row[0] for row in rows]


def process_view(conn: Any, schema: str, process_id: str) -> dict[str, Any] | None:
    """The whole process of one deal, or None when there is none: read from one snapshot,
    so the process row, its steps and its log agree (the manager commits them together)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _view(conn, schema, process_id)


def _view(conn: Any, schema: str, process_id: str) -> dict[str, Any] | None:
    columns = [c.name for c in PROCESSES.columns if c.name != "lines"]
    row = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE process_id = %s").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), _t(schema, PROCESSES.name)
        ),
        (process_id,),
    ).fetchone()
    if row is None:
        return None
    process = dict(zip(columns, row, strict=True))
    process["steps"] = _dicts(
        conn,
        sql.SQL(
            "SELECT step, status, detail, started_at, done_at, deadline_at, "
            "(status IN ('sent', 'started', 'waiting') AND deadline_at < now()) AS overdue "
            "FROM {} WHERE process_id = %s ORDER BY ordinal"
        ).format(_t(schema, STEPS.name)),
        (process_id,),
    )
    process["commands"] = _dicts(
        conn,
        sql.SQL(
            "SELECT c.command_id, c.entity, c.name, c.aggregate_id, c.decided_at, "
            "COALESCE(d.status, 'pending') AS status, COALESCE(d.attempts, 0) AS attempts, "
            "d.error, d.next_at AS next_retry_at FROM {} c LEFT JOIN {} d USING (command_id) "
            "WHERE c.process_id = %s ORDER BY c.decided_at, c.command_id"
        ).format(_t(schema, COMMANDS.name), _t(schema, "concord_q2c_dispatch")),
        (process_id,),
        missing_ok=True,
    )
    process["events"] = _dicts(
        conn,
        sql.SQL(
            "SELECT seq, type, step, detail, cause_event_id, at FROM {} WHERE process_id = %s "
            "ORDER BY seq LIMIT %s"
        ).format(_t(schema, EVENTS.name)),
        (process_id, MAX_EVENTS),
    )
    process["deliveries"] = _deliveries(conn, schema, process)
    process["waiting_for"] = process.get("waiting_for") or []
    return process


def _deliveries(conn: Any, schema: str, process: dict[str, Any]) -> list[dict[str, Any]]:
    """Deliveries of the deal's order, contract and customer that did not go through yet."""
    keys = [("order", str(process["process_id"])), ("customer", str(process["customer_id"]))]
    if process.get("contract_id") is not None:
        keys.append(("contract", str(process["contract_id"])))
    found: list[dict[str, Any]] = []
    for aggregate, aggregate_id in keys:
        found += _dicts(
            conn,
            sql.SQL(
                "SELECT subscriber AS target, aggregate, aggregate_id, state, attempts, "
                "last_error AS error, since, updated_at FROM {} "
                "WHERE aggregate = %s AND aggregate_id = %s"
            ).format(_t(schema, "concord_delivery_holds")),
            (aggregate, aggregate_id),
            missing_ok=True,
        )
        found += _dicts(
            conn,
            sql.SQL(
                "SELECT subscriber AS target, aggregate, aggregate_id, 'dead_letter' AS state, "
                "attempts, error, first_failed_at AS since, last_failed_at AS updated_at, "
                "id AS dead_letter_id, event_type FROM {} "
                "WHERE aggregate = %s AND aggregate_id = %s "
                "AND status IN ('dead', 'retry_requested', 'retrying')"
            ).format(_t(schema, "concord_dead_letters")),
            (aggregate, aggregate_id),
            missing_ok=True,
        )
    return found


def _dicts(
    conn: Any, query: sql.Composable, params: tuple[Any, ...], *, missing_ok: bool = False
) -> list[dict[str, Any]]:
    try:
        with conn.transaction():
            cursor = conn.execute(query, params)
            names = [d.name for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except UndefinedTable:
        if missing_ok:
            return []  # no subscriber (or dispatcher) has run in this schema yet
        raise
