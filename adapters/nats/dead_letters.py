"""Operator actions on dead letters: list, show, retry, discard — from any process.

Why requests rather than deliveries: the running subscriber is the only one that may
deliver for its target, or per-aggregate order could break (two processes sending events
of one aggregate at once). So ``retry`` marks the dead letter ``retry_requested``; the
subscriber claims it within its control interval, delivers it, then releases the events
parked behind it in order. ``discard`` needs no delivery: it closes the dead letter and
marks the hold ``draining`` in one transaction, and the subscriber releases what waited.
Both are conditional updates, so concurrent operators cannot double-act.

Statuses: ``dead`` (open, blocks its aggregate) → ``retry_requested`` → ``retrying`` →
``delivered``, or back to ``dead`` if the retry failed; ``dead`` → ``discarded``.
Malformed messages are stored as ``discarded`` right away (they block nothing).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row

__all__ = [
    "OPEN_STATUSES",
    "DeadLetterConflict",
    "DeadLetterError",
    "DeadLetterNotFound",
    "MalformedDeadLetter",
    "delivery_counts",
    "discard",
    "get_dead_letter",
    "list_dead_letters",
    "request_retry",
]

OPEN_STATUSES = ("dead", "retry_requested", "retrying")
STATUSES = (*OPEN_STATUSES, "delivered", "discarded")
_SUMMARY = (
    "id, subscriber, event_id, event_type, aggregate, aggregate_id, version, stream_seq, "
    "subject, reason, error, attempts, first_failed_at, last_failed_at, status, resolved_at, "
    "resolved_by"
)


class DeadLetterError(Exception):
    """An operator action that cannot be done; ``status`` is the matching HTTP status."""

    status = 400


class DeadLetterNotFound(DeadLetterError):
    status = 404


class DeadLetterConflict(DeadLetterError):
    """The dead letter is not in a state that allows the action (already retried ...)."""

    status = 409


class MalformedDeadLetter(DeadLetterConflict):
    """The message was not an envelope: there is nothing a target could be sent.

    Retrying one used to deliver ``{"raw": ...}`` with an empty idempotency key and mark it
    delivered, hiding the gap; the only honest actions are to look at it and discard it.
    """


def _json(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def _table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def list_dead_letters(
    conn: Connection[Any],
    schema: str,
    *,
    subscriber: str | None = None,
    status: str | None = "open",
    limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first. ``status``: one status, ``open`` (the default) or ``None`` for all."""
    where = [sql.SQL("TRUE")]
    params: list[Any] = []
    if subscriber:
        where.append(sql.SQL("subscriber = %s"))
        params.append(subscriber)
    if status == "open":
        where.append(sql.SQL("status = ANY(%s)"))
        params.append(list(OPEN_STATUSES))
    elif status is not None:
        if status not in STATUSES:
            raise DeadLetterError(f"unknown status {status!r}; one of open, {', '.join(STATUSES)}")
        where.append(sql.SQL("status = %s"))
        params.append(status)
    if before_id is not None:
        where.append(sql.SQL("id < %s"))
        params.append(before_id)
    query = sql.SQL(
        "SELECT {cols}, (SELECT count(*) FROM {parked} p WHERE "
        "p.subscriber = d.subscriber AND p.aggregate = d.aggregate AND "
        "p.aggregate_id = d.aggregate_id) AS parked_behind "
        "FROM {dead} d WHERE {where} ORDER BY id DESC LIMIT %s"
    ).format(
        cols=sql.SQL(_SUMMARY),
        parked=_table(schema, "concord_parked"),
        dead=_table(schema, "concord_dead_letters"),
        where=sql.SQL(" AND ").join(where),
    )
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(query, [*params, limit])
        return [_json(row) for row in cursor.fetchall()]


def get_dead_letter(conn: Connection[Any], schema: str, dead_letter_id: int) -> dict[str, Any]:
    """One dead letter with its envelope and the events parked behind it (ids, versions)."""
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(
            sql.SQL("SELECT {cols}, envelope FROM {dead} WHERE id = %s").format(
                cols=sql.SQL(_SUMMARY), dead=_table(schema, "concord_dead_letters")
            ),
            (dead_letter_id,),
        )
        row = cursor.fetchone()
        if row is None:
            raise DeadLetterNotFound(f"no dead letter {dead_letter_id}")
        cursor.execute(
            sql.SQL(
                "SELECT stream_seq, event_id, event_type, version, parked_at FROM {} "
                "WHERE subscriber = %s AND aggregate = %s AND aggregate_id = %s "
                "ORDER BY stream_seq"
            ).format(_table(schema, "concord_parked")),
            (row["subscriber"], row["aggregate"], row["aggregate_id"]),
        )
        parked = [_json(p) for p in cursor.fetchall()]
    result = _json(row)
    result["parked"] = parked if row["status"] in OPEN_STATUSES else []
    result["parked_behind"] = len(result["parked"])
    return result


def request_retry(
    conn: Connection[Any], schema: str, dead_letter_id: int, actor: str = "operator"
) -> dict[str, Any]:
    """Ask the running subscriber to deliver this dead letter again."""
    with conn.transaction():
        cursor = conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'retry_requested', resolved_by = %s "
                "WHERE id = %s AND status = 'dead' AND reason <> 'malformed' RETURNING id"
            ).format(_table(schema, "concord_dead_letters")),
            (actor, dead_letter_id),
        )
        if cursor.fetchone() is None:
            _refuse(conn, schema, dead_letter_id, "retry")
    return get_dead_letter(conn, schema, dead_letter_id)


def discard(
    conn: Connection[Any], schema: str, dead_letter_id: int, actor: str = "operator"
) -> dict[str, Any]:
    """Give up on this event for its target; what was parked behind it is released."""
    with conn.transaction():
        cursor = conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'discarded', resolved_at = now(), resolved_by = %s "
                "WHERE id = %s AND status = 'dead' "
                "RETURNING subscriber, aggregate, aggregate_id"
            ).format(_table(schema, "concord_dead_letters")),
            (actor, dead_letter_id),
        )
        row = cursor.fetchone()
        if row is None:
            _refuse(conn, schema, dead_letter_id, "discard")
        else:
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET state = 'draining', updated_at = now() "
                    "WHERE subscriber = %s AND aggregate = %s AND aggregate_id = %s "
                    "AND dead_letter_id = %s"
                ).format(_table(schema, "concord_delivery_holds")),
                (*row, dead_letter_id),
            )
    return get_dead_letter(conn, schema, dead_letter_id)


def _refuse(conn: Connection[Any], schema: str, dead_letter_id: int, action: str) -> None:
    cursor = conn.execute(
        sql.SQL("SELECT status, reason FROM {} WHERE id = %s").format(
            _table(schema, "concord_dead_letters")
        ),
        (dead_letter_id,),
    )
    row = cursor.fetchone()
    if row is None:
        raise DeadLetterNotFound(f"no dead letter {dead_letter_id}")
    if action == "retry" and row[0] == "dead" and row[1] == "malformed":
        raise MalformedDeadLetter(
            f"dead letter {dead_letter_id} is a malformed message (not a Concord event "
            "envelope): there is nothing to deliver, so it cannot be retried; inspect it "
            "(show) and discard it"
        )
    raise DeadLetterConflict(
        f"dead letter {dead_letter_id} is {row[0]}; only a 'dead' one can be {action}ed"
        + (
            " (already requested: the running subscriber picks it up)"
            if row[0] in ("retry_requested", "retrying")
            else ""
        )
    )


def delivery_counts(conn: Connection[Any], schema: str) -> dict[str, dict[str, int]]:
    """Per subscriber: open dead letters, parked events, held aggregates, retrying ones."""
    counts: dict[str, dict[str, int]] = {}

    def bump(subscriber: str, name: str, value: int) -> None:
        counts.setdefault(
            subscriber,
            {"dead_letters": 0, "parked": 0, "held_aggregates": 0, "retrying_aggregates": 0},
        )[name] = value

    for name, query in (
        (
            "dead_letters",
            sql.SQL(
                "SELECT subscriber, count(*) FROM {} WHERE status = ANY(%s) GROUP BY subscriber"
            ).format(_table(schema, "concord_dead_letters")),
        ),
        (
            "parked",
            sql.SQL("SELECT subscriber, count(*) FROM {} GROUP BY subscriber").format(
                _table(schema, "concord_parked")
            ),
        ),
        (
            "held_aggregates",
            sql.SQL("SELECT subscriber, count(*) FROM {} GROUP BY subscriber").format(
                _table(schema, "concord_delivery_holds")
            ),
        ),
        (
            "retrying_aggregates",
            sql.SQL(
                "SELECT subscriber, count(*) FROM {} WHERE state = 'retrying' GROUP BY subscriber"
            ).format(_table(schema, "concord_delivery_holds")),
        ),
    ):
        params = (list(OPEN_STATUSES),) if name == "dead_letters" else ()
        for subscriber, value in conn.execute(query, params).fetchall():
            bump(subscriber, name, int(value))
    return counts
