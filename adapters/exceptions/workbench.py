"""The workbench list: every source's stuck items, with customers, history and groups.

Why items are grouped by object and reason: one failing order can stop several things at
once (its delivery to the ERP dead-lettered, its step overdue); an operator fixes the cause
once, for the object, and wants to see what else that fixes beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from adapters.exceptions.delivery_sources import dead_letter_items, retrying_items
from adapters.exceptions.history import history_of
from adapters.exceptions.inbound_sources import held_items, review_items
from adapters.exceptions.model import Item, decode_id
from adapters.exceptions.process_sources import (
    command_items,
    invoice_items,
    process_items,
    step_items,
)

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

__all__ = ["MAX_PER_SOURCE", "find_item", "list_exceptions"]

#: Each source is read at most this far (the answer says ``truncated`` when one was cut).
MAX_PER_SOURCE = 1000
_WITH_CUSTOMER = ("order", "contract", "invoice", "payment")

Reader = Callable[[str | None, int], list[Item]]


def _readers(runtime: Runtime, conn: Any) -> dict[str, Reader]:
    schema = runtime.settings.schema_name
    inbound = runtime.inbound
    return {
        "dl": lambda key, cap: dead_letter_items(conn, schema, key, cap),
        "hold": lambda key, cap: retrying_items(conn, schema, key, cap),
        "inbound": lambda key, cap: held_items(inbound.log, key, cap),
        "match": lambda key, cap: review_items(inbound.reviews, key, cap),
        "process": lambda key, cap: process_items(conn, schema, key, cap),
        "step": lambda key, cap: step_items(conn, schema, key, cap),
        "command": lambda key, cap: command_items(conn, schema, key, cap),
        "tax": lambda key, cap: invoice_items(conn, schema, key, cap),
    }


def _customers(runtime: Runtime, items: list[Item]) -> None:
    """The customer of items whose source does not say it (a dead letter's aggregate)."""
    known: dict[tuple[str, str], str | None] = {}
    for item in items:
        if item.customer_id is not None or item.kind not in _WITH_CUSTOMER:
            continue
        wanted = (item.kind, item.object_id)
        if wanted not in known:
            try:
                aggregate = runtime.hub.store.load(item.kind, UUID(item.object_id))
            except Exception:  # an id that is no uuid, a store that cannot load it
                aggregate = None
            found = getattr(aggregate, "customer_id", None)
            known[wanted] = None if found is None else str(found)
        item.customer_id = known[wanted]


def _history(conn: Any, schema: str, items: list[Item]) -> None:
    histories = history_of(conn, schema, [i.id for i in items])
    for item in items:
        item.history = histories.get(item.id, [])
        resolved = [h["at"] for h in item.history if h["action"] == "resolve"]
        if resolved and resolved[-1] >= item.changed_at:
            item.resolved_at = resolved[-1]


def find_item(runtime: Runtime, conn: Any, exception_id: str) -> Item | None:
    """The item this id names, as its source holds it now (None: unknown or not stuck)."""
    decoded = decode_id(exception_id)
    if decoded is None:
        return None
    source, key = decoded
    reader = _readers(runtime, conn).get(source)
    found = [i for i in (reader(key, 10) if reader else []) if i.key == key]
    if not found:
        return None
    _customers(runtime, found)
    _history(conn, runtime.settings.schema_name, found)
    return found[0]


def list_exceptions(
    runtime: Runtime,
    *,
    reason: str | None = None,
    customer: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Open items (resolved ones hidden until they change again), filtered, grouped."""
    truncated = False
    items: list[Item] = []
    with runtime.connection() as conn:
        for read in _readers(runtime, conn).values():
            found = read(None, MAX_PER_SOURCE)
            truncated = truncated or len(found) >= MAX_PER_SOURCE
            items += found
        _customers(runtime, items)
        _history(conn, runtime.settings.schema_name, items)
    items = [
        i
        for i in items
        if i.resolved_at is None
        and (reason is None or i.reason == reason)
        and (kind is None or i.kind == kind)
        and (customer is None or i.customer_id == customer)
    ]
    counts: dict[str, int] = {}
    for item in items:
        counts[item.reason] = counts.get(item.reason, 0) + 1
    items.sort(key=lambda i: i.since)
    if len(items) > limit:
        items, truncated = items[:limit], True
    return {
        "count": sum(counts.values()),
        "counts": counts,
        "truncated": truncated,
        "groups": _groups(items, datetime.now(UTC)),
    }


def _groups(items: list[Item], now: datetime) -> list[dict[str, Any]]:
    """Items by (object, reason), the group with the oldest item first."""
    groups: dict[tuple[str, str, str], list[Item]] = {}
    for item in items:  # oldest first, so each group's first item is its oldest
        groups.setdefault((item.kind, item.object_id, item.reason), []).append(item)
    out = []
    for (_kind, _object_id, why), members in groups.items():
        first = members[0].view(now)
        out.append(
            {
                "object": first["object"],
                "reason": why,
                "customer_id": first["customer_id"],
                "lineage": first["lineage"],
                "count": len(members),
                "age_s": first["age_s"],
                "items": [first, *(m.view(now) for m in members[1:])],
            }
        )
    return out
