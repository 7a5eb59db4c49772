"""Workbench items from the quote-to-cash process manager and the ERP view of invoices.

Why read the process tables rather than the events: ``q2c_processes`` and ``q2c_steps``
are the process's state as its manager decided it (``adapters/process/reads.py`` reads
the same rows for one deal); ``concord_q2c_dispatch`` says which decided commands the hub
refused. A table that does not exist yet (the manager or the ERP view never ran in this
schema) simply has nothing stuck.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from adapters.exceptions.model import Item
from adapters.process.tables import COMMANDS, PROCESSES, STEPS

__all__ = ["command_items", "invoice_items", "process_items", "step_items"]

#: What the process waits for (``q2c_processes.waiting_for``) → the workbench reason.
WAITS = {"sku": "unmapped_sku", "customer": "missing_parent"}
#: Steps still under way: past their deadline they are overdue (as GET /v1/processes says).
UNDER_WAY = ("sent", "started", "waiting")


def _exists(conn: Any, schema: str, *tables: str) -> bool:
    for table in tables:
        row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
        if not row or not row[0]:
            return False
    return True


def _t(schema: str, name: str) -> sql.Identifier:
    return sql.Identifier(schema, name)


def _process_link(pid: str) -> dict[str, str]:
    return {"process": f"/v1/processes/{pid}"}


def process_items(conn: Any, schema: str, key: str | None, cap: int) -> list[Item]:
    """Rejected deals, deals on hold (a compensation ran: a target refused a step for good),
    and deals waiting for a product mapping or a customer (one item per reason: a deal may
    wait for both)."""
    if not _exists(conn, schema, PROCESSES.name):
        return []
    where: sql.Composable = sql.SQL("status IN ('rejected', 'waiting', 'on_hold')")
    params: list[Any] = []
    if key is not None:
        where = sql.SQL("{} AND process_id::text = %s").format(where)
        params.append(key.partition(":")[0])
    rows = conn.execute(
        sql.SQL(
            "SELECT process_id::text, customer_id::text, status, waiting_for, reason, "
            "opportunity_id, started_at, changed_at FROM {} WHERE {} ORDER BY changed_at LIMIT %s"
        ).format(_t(schema, PROCESSES.name), where),
        [*params, cap],
    ).fetchall()
    items = []
    for pid, customer, status, waiting, reason, opportunity, _started, changed in rows:
        groups: dict[str, list[str]] = {}
        if status == "rejected":
            groups["rejected_order"] = []
        if status == "on_hold":
            groups["order_on_hold"] = []
        for wanted in waiting or []:
            groups.setdefault(WAITS.get(wanted.partition(":")[0], "missing_parent"), []).append(
                wanted
            )
        for why, waits in groups.items():
            items.append(
                Item(
                    source="process",
                    key=f"{pid}:{why}",
                    reason=why,
                    kind="order",
                    object_id=pid,
                    canonical=True,
                    since=changed,
                    changed_at=changed,
                    summary=f"deal {opportunity or pid} {status}: {reason or ''}"[:400],
                    actions=("resolve",),
                    customer_id=customer,
                    detail={"status": status, "waiting_for": waits, "reason": reason},
                    links=_process_link(pid),
                )
            )
    return [i for i in items if key is None or i.key == key]


def step_items(conn: Any, schema: str, key: str | None, cap: int) -> list[Item]:
    """Steps still under way past their deadline (their SLA)."""
    if not _exists(conn, schema, PROCESSES.name, STEPS.name):
        return []
    where: sql.Composable = sql.SQL("s.status = ANY(%s) AND s.deadline_at < now()")
    params: list[Any] = [list(UNDER_WAY)]
    if key is not None:
        pid, _, step = key.partition(":")
        where = sql.SQL("{} AND s.process_id::text = %s AND s.step = %s").format(where)
        params += [pid, step]
    rows = conn.execute(
        sql.SQL(
            "SELECT s.process_id::text, s.step, s.status, s.detail, s.started_at, "
            "s.deadline_at, p.customer_id::text FROM {} s JOIN {} p USING (process_id) "
            "WHERE {} ORDER BY s.deadline_at LIMIT %s"
        ).format(_t(schema, STEPS.name), _t(schema, PROCESSES.name), where),
        [*params, cap],
    ).fetchall()
    return [
        Item(
            source="step",
            key=f"{pid}:{step}",
            reason="overdue_step",
            kind="order",
            object_id=pid,
            canonical=True,
            since=deadline,
            changed_at=deadline,
            summary=f"step {step} is {status} past its deadline: {detail or ''}"[:400],
            actions=("resolve",),
            customer_id=customer,
            detail={"step": step, "status": status, "started_at": started, "deadline_at": deadline},
            links=_process_link(pid),
        )
        for pid, step, status, detail, started, deadline, customer in rows
    ]


def command_items(conn: Any, schema: str, key: str | None, cap: int) -> list[Item]:
    """Commands the process decided and the hub refused (``concord_q2c_dispatch``)."""
    if not _exists(conn, schema, COMMANDS.name, PROCESSES.name, "concord_q2c_dispatch"):
        return []
    where: sql.Composable = sql.SQL("d.status IN ('refused', 'stale')")
    params: list[Any] = []
    if key is not None:
        where = sql.SQL("{} AND c.command_id = %s").format(where)
        params.append(key)
    rows = conn.execute(
        sql.SQL(
            "SELECT c.command_id, c.process_id::text, c.entity, c.name, c.aggregate_id::text, "
            "d.error, d.attempts, d.done_at, p.customer_id::text FROM {} c "
            "JOIN {} d USING (command_id) LEFT JOIN {} p USING (process_id) "
            "WHERE {} ORDER BY d.done_at LIMIT %s"
        ).format(
            _t(schema, COMMANDS.name),
            _t(schema, "concord_q2c_dispatch"),
            _t(schema, PROCESSES.name),
            where,
        ),
        [*params, cap],
    ).fetchall()
    return [
        Item(
            source="command",
            key=command_id,
            reason="failed_step",
            kind=entity,
            object_id=aggregate_id,
            canonical=True,
            since=at,
            changed_at=at,
            summary=f"{entity} {name} was refused: {error or ''}"[:400],
            actions=("retry", "resolve"),
            customer_id=customer,
            detail={
                "command_id": command_id,
                "command": f"{entity}.{name}",
                "error": error,
                "attempts": attempts,
            },
            links=_process_link(pid),
        )
        for command_id, pid, entity, name, aggregate_id, error, attempts, at, customer in rows
    ]


def invoice_items(conn: Any, schema: str, key: str | None, cap: int) -> list[Item]:
    """Invoices the ERP view holds because their tax calculation failed."""
    if not _exists(conn, schema, "erp_invoices"):
        return []
    where: sql.Composable = sql.SQL("tax_status = 'failed'")
    params: list[Any] = []
    if key is not None:
        where = sql.SQL("{} AND invoice_id::text = %s").format(where)
        params.append(key)
    rows = conn.execute(
        sql.SQL(
            "SELECT invoice_id::text, customer_id::text, source_number, tax_failure_reason, "
            "changed_at FROM {} WHERE {} ORDER BY changed_at LIMIT %s"
        ).format(_t(schema, "erp_invoices"), where),
        [*params, cap],
    ).fetchall()
    return [
        Item(
            source="tax",
            key=invoice,
            reason="tax_failure",
            kind="invoice",
            object_id=invoice,
            canonical=True,
            since=at,
            changed_at=at,
            summary=f"invoice {number or invoice}: the tax calculation failed"
            + (f" ({why})" if why else ""),
            actions=("resolve",),
            customer_id=customer,
            detail={"source_number": number, "tax_failure_reason": why},
            links={"invoice": f"/v1/invoices/{invoice}"},
        )
        for invoice, customer, number, why, at in rows
    ]
