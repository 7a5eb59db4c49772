"""Personal data redaction at the API's read boundary.

Why at the boundary and as one small function: the store keeps what happened (and erasure
crypto-shreds it there); what a *reader* may see depends on who asks, so every response that
carries an aggregate or its events passes through :func:`redact_body` with the caller's
system, and nothing below the API needs to know about readers.
"""

from __future__ import annotations

from typing import Any

from hub.domain.ownership import OwnershipPolicy

REDACTED = "redacted"


def redact(value: Any, hidden: frozenset[str]) -> Any:
    """``value`` with every non-null value under a key in ``hidden`` replaced, at any depth.

    Any depth, because the fields appear nested in events (``data.details.tax_id`` of a
    details change) as well as at the top of a state.
    """
    if not hidden:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if k in hidden and v is not None else redact(v, hidden)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(item, hidden) for item in value]
    return value


def redact_body(
    policy: OwnershipPolicy, caller_system: str, entity: str, body: dict[str, Any]
) -> dict[str, Any]:
    """An aggregate view, history or command answer as ``caller_system`` may read it.

    Events name their own aggregate (``aggregate``), so a command answer touching two
    aggregates redacts each event by its own entity.
    """
    out = dict(body)
    hidden = policy.hidden_from(caller_system, entity)
    for key in ("state", "aggregate"):
        if key in out:
            out[key] = redact(out[key], hidden)
    if "events" in out:
        out["events"] = [
            {
                **event,
                "data": redact(
                    event.get("data"),
                    policy.hidden_from(caller_system, str(event.get("aggregate", entity))),
                ),
            }
            for event in out["events"]
        ]
    return out
