"""Workbench items from the subscribers: open dead letters and deliveries being retried.

Why a tax failure is told apart here: the ERP refusing an invoice or order because its tax
calculation failed (NetSuite ``USER_ERROR`` "Tax calculation failed") is not fixed by a
retry of the delivery but by the tax set-up; operators look for it as its own reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import sql

from adapters.exceptions.model import KINDS, Item
from adapters.nats.dead_letters import (
    OPEN_STATUSES,
    DeadLetterNotFound,
    get_dead_letter,
    list_dead_letters,
)

__all__ = ["dead_letter_items", "retrying_items"]

TAX_FAILURE = "tax calculation failed"


def _dead_letter_item(row: dict[str, Any]) -> Item:
    error = str(row.get("error") or "")
    reason = "tax_failure" if TAX_FAILURE in error.lower() else "dead_letter"
    if row["status"] != "dead":
        actions: tuple[str, ...] = ("resolve",)  # a retry is under way
    elif row["reason"] == "malformed":
        actions = ("discard", "resolve")
    else:
        actions = ("retry", "discard", "resolve")
    kind = row["aggregate"]
    return Item(
        source="dl",
        key=str(row["id"]),
        reason=reason,
        kind=kind if kind in KINDS else "delivery",
        object_id=row["aggregate_id"],
        canonical=kind in KINDS,
        since=row["first_failed_at"],
        changed_at=row["last_failed_at"],
        summary=f"{row['subscriber']} could not deliver {row['event_type']}: {error[:300]}",
        actions=actions,
        customer_id=row["aggregate_id"] if kind == "customer" else None,
        detail={
            k: row[k]
            for k in ("subscriber", "event_type", "event_id", "error", "attempts", "status")
        }
        | {"parked_behind": row.get("parked_behind", 0), "dead_letter_id": row["id"]},
        links={"dead_letter": f"/v1/dead-letters/{row['id']}"},
    )


def dead_letter_items(conn: Any, schema: str, key: str | None, cap: int) -> list[Item]:
    """Open dead letters (``dead``, ``retry_requested``, ``retrying``), via their reader."""
    if key is not None:
        if not key.isdigit() or len(key) > 18:
            return []
        try:
            row = get_dead_letter(conn, schema, int(key))
        except DeadLetterNotFound:
            return []
        return [_dead_letter_item(_as_row(row))] if row["status"] in OPEN_STATUSES else []
    return [_dead_letter_item(_as_row(r)) for r in list_dead_letters(conn, schema, limit=cap)]


def _as_row(row: dict[str, Any]) -> dict[str, Any]:
    """The reader answers JSON-ready rows (ISO strings): the item wants datetimes."""
    out = dict(row)
    for name in ("first_failed_at", "last_failed_at"):
        if isinstance(out[name], str):
            out[name] = datetime.fromisoformat(out[name])
    return out


def retrying_items(conn: Any, schema: str, key: str | None, cap: int) -> list[Item]:
    """Aggregates whose delivery the subscriber retries by itself (``state = retrying``)."""
    where: sql.Composable = sql.SQL("state = 'retrying'")
    params: list[Any] = []
    if key is not None:
        subscriber, _, rest = key.partition(":")
        aggregate, _, aggregate_id = rest.partition(":")
        where = sql.SQL("{} AND subscriber = %s AND aggregate = %s AND aggregate_id = %s").format(
            where
        )
        params += [subscriber, aggregate, aggregate_id]
    rows = conn.execute(
        sql.SQL(
            "SELECT subscriber, aggregate, aggregate_id, attempts, last_error, since, "
            "updated_at, blocker_event_id FROM {} WHERE {} ORDER BY since LIMIT %s"
        ).format(sql.Identifier(schema, "concord_delivery_holds"), where),
        [*params, cap],
    ).fetchall()
    items = []
    for subscriber, aggregate, aggregate_id, attempts, error, since, updated, event_id in rows:
        items.append(
            Item(
                source="hold",
                key=f"{subscriber}:{aggregate}:{aggregate_id}",
                reason="retrying_delivery",
                kind=aggregate if aggregate in KINDS else "delivery",
                object_id=aggregate_id,
                canonical=aggregate in KINDS,
                since=since,
                changed_at=updated,
                summary=f"{subscriber} retries event {event_id} ({attempts} attempts): "
                f"{(error or '')[:300]}",
                actions=("resolve",),
                customer_id=aggregate_id if aggregate == "customer" else None,
                detail={
                    "subscriber": subscriber,
                    "event_id": event_id,
                    "attempts": attempts,
                    "error": error,
                },
                links={"subscriber": "/v1/subscribers"},
            )
        )
    return items
