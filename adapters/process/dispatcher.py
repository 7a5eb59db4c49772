"""Executes the commands the process manager decided (``q2c_commands``), each once.

Why an outbox: the process manager's decisions commit with its tracking position (exactly
once), but a hub command commits in the hub's own stores, which no transaction spans. So
the decision is a row, and this dispatcher executes it with the row's id as idempotency key:
a crash after the hub committed and before the row was marked done executes it again, and
the hub answers with the stored result instead of acting twice.

``concord_q2c_dispatch`` (outside the projection's tables, so a rebuild of the process
manager does not forget what was already executed) records each command's outcome: done,
refused (the hub said no, with its reason: a workbench item), retrying (the store was
unavailable; tried again after a backoff), or stale: decided for an event the hub recorded
more than ``CONCORD_Q2C_MAX_COMMAND_AGE_HOURS`` ago. That is what a rebuild of a *new*
version that decides differently produces for old deals (the same decisions come back under
the same ids and are known as done); executing them unasked would change deals that ended
long ago, so they wait in the workbench for an operator's retry. One dispatcher works at a
time across processes (a transaction-level advisory lock per batch).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import sql

from adapters.bootstrap import Runtime
from adapters.process.tables import COMMANDS
from hub.application.service import Caller, CommandRequest, Origin
from hub.domain.errors import ConcurrencyConflict, DomainError

__all__ = [
    "CALLER",
    "COMPENSATIONS",
    "Dispatched",
    "compensate_once",
    "dispatch_once",
    "dispatcher_service",
]

log = logging.getLogger("concord.q2c")

#: Who the process manager is to the hub: Concord's own orchestration (the ownership
#: policy's ``hub``), with its own client id so its receipts never meet an API client's.
CALLER = Caller(client_id="concord:q2c", system="hub")
_BACKOFF_S = (0.2, 1, 5, 30, 120, 600)
_BATCH = 100
#: How often the service looks for stale decisions (a scan of the undispatched ones).
STALE_CHECK_S = 60.0


@dataclass(frozen=True)
class Dispatched:
    command_id: str
    status: str
    error: str | None = None


def dispatch_once(runtime: Runtime, *, stale_check: bool = True) -> list[Dispatched]:
    """Execute every pending (or due) command once; what became of each.

    Pending work is found in two bounded sets — commands decided for events of the last
    ``CONCORD_Q2C_MAX_COMMAND_AGE_HOURS`` without an outcome (index on the cause's time) and
    due retries (a partial index) — so the loop does not scan every decision ever made.
    ``stale_check`` marks older undispatched commands stale (a scan: the service does it
    once a minute)."""
    schema = runtime.settings.schema_name
    names = {
        "commands": sql.Identifier(schema, COMMANDS.name),
        "dispatch": sql.Identifier(schema, "concord_q2c_dispatch"),
    }
    outcomes: list[Dispatched] = []
    with runtime.connection() as conn, conn.transaction():
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"concord-q2c-dispatch:{schema}",)
        ).fetchone()
        if not got or not got[0]:
            return outcomes
        if not _table_exists(conn, schema, COMMANDS.name):
            return outcomes
        age = runtime.settings.q2c_max_command_age_hours
        # Decided for an event the hub recorded long ago: a rebuild of a new version that
        # decides differently (or the manager down for days) — not executed unasked.
        if stale_check:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {dispatch} (command_id, status, attempts, error) "
                    "SELECT c.command_id, 'stale', 0, 'decided for an event recorded ' || "
                    "date_trunc('second', now() - c.cause_recorded_at) || ' ago (a rebuild or "
                    "a long outage): not executed; retry it from the workbench if it should "
                    "run' FROM {commands} c LEFT JOIN {dispatch} d USING (command_id) "
                    "WHERE d.command_id IS NULL AND c.cause_recorded_at < now() - "
                    "make_interval(hours => %s)"
                ).format(**names),
                (age,),
            )
        rows = conn.execute(
            sql.SQL(
                "SELECT * FROM ("
                "SELECT c.command_id, c.entity, c.name, c.aggregate_id, c.payload, "
                "c.cause_event_id, c.correlation_id, 0, c.decided_at FROM {commands} c "
                "WHERE c.cause_recorded_at >= now() - make_interval(hours => %s) "
                "AND NOT EXISTS (SELECT 1 FROM {dispatch} d WHERE d.command_id = c.command_id) "
                "UNION ALL "
                "SELECT c.command_id, c.entity, c.name, c.aggregate_id, c.payload, "
                "c.cause_event_id, c.correlation_id, d.attempts, c.decided_at "
                "FROM {dispatch} d JOIN {commands} c USING (command_id) "
                "WHERE d.status = 'retrying' AND d.next_at <= now()"
                ") due ORDER BY decided_at, command_id LIMIT %s"
            ).format(**names),
            (age, _BATCH),
        ).fetchall()
        for command_id, entity, name, aggregate_id, payload, cause, correlation, tries, _ in rows:
            outcome = _execute(
                runtime, command_id, entity, name, aggregate_id, payload, cause, correlation
            )
            attempts = int(tries) + 1
            delay = _BACKOFF_S[min(attempts - 1, len(_BACKOFF_S) - 1)]
            conn.execute(
                sql.SQL(
                    "INSERT INTO {dispatch} (command_id, status, attempts, error, next_at) "
                    "VALUES (%s, %s, %s, %s, CASE WHEN %s = 'retrying' "
                    "THEN now() + make_interval(secs => %s) END) "
                    "ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status, "
                    "attempts = EXCLUDED.attempts, error = EXCLUDED.error, "
                    "next_at = EXCLUDED.next_at, done_at = now()"
                ).format(**names),
                (command_id, outcome.status, attempts, outcome.error, outcome.status, delay),
            )
            outcomes.append(outcome)
    return outcomes


#: The declared compensations: a target that refuses a step for good (its delivery was
#: dead-lettered as permanent, or ran out of attempts) puts the deal's order on hold, which
#: the ERP (hold the sales order) and the CRM (show why) receive.
COMPENSATIONS: dict[tuple[str, str], str] = {
    ("billing", "ContractCreated"): "billing refused the subscription",
    ("erp", "OrderValidated"): "the ERP refused the sales order",
}


def compensate_once(runtime: Runtime) -> list[Dispatched]:
    """Hold the order of every deal whose step a target refused for good (once each)."""
    schema = runtime.settings.schema_name
    names = {
        "dead": sql.Identifier(schema, "concord_dead_letters"),
        "dispatch": sql.Identifier(schema, "concord_q2c_dispatch"),
        "processes": sql.Identifier(schema, "q2c_processes"),
    }
    outcomes: list[Dispatched] = []
    with runtime.connection() as conn, conn.transaction():
        got = conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtext(%s))", (f"concord-q2c-compensate:{schema}",)
        ).fetchone()
        if (
            not got
            or not got[0]
            or not all(
                _table_exists(conn, schema, t)
                for t in ("concord_dead_letters", "q2c_processes", "concord_q2c_dispatch")
            )
        ):
            return outcomes
        pairs = sql.SQL(", ").join(
            sql.SQL("({}, {})").format(sql.Literal(a), sql.Literal(b)) for a, b in COMPENSATIONS
        )
        rows = conn.execute(
            sql.SQL(
                "SELECT d.id, d.subscriber, d.event_type, p.process_id, p.opportunity_id, "
                "d.error, d.event_id FROM {dead} d JOIN {processes} p ON "
                "(d.aggregate = 'contract' AND p.contract_id::text = d.aggregate_id) OR "
                "(d.aggregate = 'order' AND p.process_id::text = d.aggregate_id) "
                "WHERE d.status = 'dead' AND (d.subscriber, d.event_type) IN ({pairs}) "
                "AND NOT EXISTS (SELECT 1 FROM {dispatch} x "
                "WHERE x.command_id = 'q2c:compensation:' || d.id AND x.status <> 'retrying') "
                "ORDER BY d.id LIMIT %s"
            ).format(pairs=pairs, **names),
            (_BATCH,),
        ).fetchall()
        for dead_id, target, event_type, pid, correlation, error, event_id in rows:
            why = COMPENSATIONS[(target, event_type)]
            reason = f"{why}: {error}"[:1000]
            outcome = _execute(
                runtime,
                f"q2c:{pid}:hold:{dead_id}",
                "order",
                "hold",
                pid,
                {"reason": reason},
                event_id,
                correlation,
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {dispatch} (command_id, status, error) VALUES (%s, %s, %s) "
                    "ON CONFLICT (command_id) DO UPDATE SET status = EXCLUDED.status, "
                    "error = EXCLUDED.error, done_at = now()"
                ).format(**names),
                (f"q2c:compensation:{dead_id}", outcome.status, outcome.error),
            )
            outcomes.append(outcome)
    return outcomes


def _execute(
    runtime: Runtime,
    command_id: str,
    entity: str,
    name: str,
    aggregate_id: UUID,
    payload: dict[str, Any],
    cause: UUID,
    correlation: str | None,
) -> Dispatched:
    hub = runtime.hub
    try:
        spec = hub.spec(entity, name)
        request = CommandRequest(
            entity=entity,
            name=name,
            payload=spec.input_model.model_validate(payload),
            caller=CALLER,
            aggregate_id=UUID(str(aggregate_id)),
            origin=Origin(correlation_id=correlation, causation_id=str(cause)),
            idempotency_key=command_id,
        )
        hub.execute(request)
    except ConcurrencyConflict as clash:  # another writer got there first: read and retry
        log.info("q2c: %s.%s met a concurrent change (%s): retrying", entity, name, command_id)
        return Dispatched(command_id, "retrying", str(clash))
    except DomainError as refused:
        log.warning("q2c: %s.%s refused (%s): %s", entity, name, command_id, refused)
        return Dispatched(command_id, "refused", str(refused))
    except Exception as failed:  # the store is away, a timeout: try again later
        log.warning("q2c: %s.%s failed, will retry (%s): %r", entity, name, command_id, failed)
        return Dispatched(command_id, "retrying", repr(failed)[:500])
    return Dispatched(command_id, "done")


def _table_exists(conn: Any, schema: str, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
    return bool(row and row[0])


def dispatcher_service(
    runtime: Runtime, interval_s: float = 0.2, wake: asyncio.Event | None = None
) -> Any:
    """``service(stop)`` for :func:`adapters.background.background`: dispatch until stopped.

    Between rounds with nothing to do it waits ``interval_s``, or less when ``wake`` is set
    (the process manager committed decisions: a deal's next step goes out at once rather
    than a poll later, twice per deal on its way to billing)."""

    async def pause(stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def service(stop: asyncio.Event) -> None:
        checked = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            if wake is not None:
                wake.clear()  # before the round: a commit during it wakes the next one
            check = loop.time() - checked >= STALE_CHECK_S
            if check:
                checked = loop.time()
            done = await asyncio.to_thread(
                functools.partial(dispatch_once, runtime, stale_check=check)
            )
            done += await asyncio.to_thread(compensate_once, runtime)
            # Only what moved on is a reason to go again at once: a command or compensation
            # that must be retried (the store away) would otherwise spin this loop.
            if all(outcome.status == "retrying" for outcome in done):
                await pause(stop)

    return service
