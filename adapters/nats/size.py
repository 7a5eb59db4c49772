"""How large a committed event will be on NATS, known before it is committed.

Why at commit: NATS refuses a message above the server's ``max_payload`` (headers included),
and the relay publishes each store's events strictly in order, so one oversized event would
stop its whole store from reaching NATS. The committer therefore refuses such an event (413,
naming its largest field) while the client is still there to hear it.

The relay builds the published envelope from the stored JSON state, adding a fixed set of
members (event id, type, aggregate, ids, versions) and headers of bounded size (message id,
position, store, aggregate, type, expected sequence, trace context). So the published size is
at most the stored state's size plus :data:`ENVELOPE_OVERHEAD`; ``tests/unit`` checks that
bound against real envelopes and headers.
"""

from __future__ import annotations

from typing import Any

import orjson

#: The servers' ``max_payload`` (ops/nats/nats.conf and the embedded config both say 8MB;
#: NATS counts a megabyte as 1024 * 1024 bytes). The stream itself sets no smaller limit
#: (``max_msg_size: -1`` in ops/nats/streams).
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024

#: Upper bound of what the envelope and headers add to an event's stored state.
ENVELOPE_OVERHEAD = 2048

#: Stored members that are envelope, not data: never the field to blame.
_ENVELOPE_MEMBERS = frozenset(
    {"timestamp", "provenance", "class_version", "traceparent", "originator_id"}
)


def published_size_bound(stored_state: bytes) -> int:
    """Most bytes the event stored as ``stored_state`` takes on NATS (payload + headers)."""
    return len(stored_state) + ENVELOPE_OVERHEAD


def largest_field(stored_state: bytes) -> tuple[str | None, int]:
    """The event's data member with the largest encoding, and that size (for the error)."""
    state: dict[str, Any] = orjson.loads(stored_state)
    sizes = {
        name: len(orjson.dumps(value))
        for name, value in state.items()
        if name not in _ENVELOPE_MEMBERS
    }
    if not sizes:
        return None, 0
    name = max(sizes, key=lambda n: sizes[n])
    return name, sizes[name]
