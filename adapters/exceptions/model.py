"""What a workbench item is: its opaque id, reason, object, age and allowed actions.

Why ids are ``base64url("<source>:<key>")``: the key is the source's own primary key (a
dead letter's id, a command id, a process and step), so the id is stable across reads and
restarts and needs no table, while a client treats it as opaque (the source may change).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["ACTIONS", "KINDS", "REASONS", "Item", "decode_id", "encode_id"]

REASONS = (
    "dead_letter",
    "tax_failure",
    "retrying_delivery",
    "unmapped_sku",
    "held_delivery",
    "match_review",
    "rejected_order",
    "order_on_hold",
    "missing_parent",
    "overdue_step",
    "failed_step",
)
ACTIONS = ("retry", "resolve", "replay", "approve", "reject", "discard")
#: Object kinds an item can be about (``delivery``: an inbound delivery not yet translated).
KINDS = ("customer", "order", "contract", "invoice", "payment", "product", "delivery")


def encode_id(source: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{source}:{key}".encode()).decode().rstrip("=")


def decode_id(exception_id: str) -> tuple[str, str] | None:
    """``(source, key)``, or None when it is no id the workbench made."""
    padded = exception_id + "=" * (-len(exception_id) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    source, sep, key = text.partition(":")
    return (source, key) if sep and key else None


@dataclass
class Item:
    """One stuck thing. ``changed_at`` is when it last changed at its source: a ``resolve``
    recorded after it hides the item until it changes again (fails once more, say)."""

    source: str
    key: str
    reason: str
    kind: str
    object_id: str
    canonical: bool
    since: datetime
    changed_at: datetime
    summary: str
    actions: tuple[str, ...]
    customer_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    resolved_at: datetime | None = None

    @property
    def id(self) -> str:
        return encode_id(self.source, self.key)

    def view(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "reason": self.reason,
            "object": {"kind": self.kind, "id": self.object_id, "canonical": self.canonical},
            "customer_id": self.customer_id,
            "summary": self.summary,
            "since": self.since.isoformat(),
            "age_s": round(max((now - self.since).total_seconds(), 0.0), 3),
            "lineage": f"/v1/lineage/{self.object_id}" if self.canonical else None,
            "links": self.links,
            "actions": list(self.actions),
            "detail": self.detail,
            "history": self.history,
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
        }
