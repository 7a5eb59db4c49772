"""How far behind each subscriber is: the consumer's own counters plus what waits in
PostgreSQL (dead letters, parked events, held aggregates).

Why both: ``num_pending`` alone looks healthy while an aggregate is stuck behind a dead
letter, because parked events are acknowledged in the stream. An operator needs the sum of
"not yet fetched", "fetched but unconfirmed" and "held back" to know the target's real
distance from the hub.
"""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

__all__ = ["UNKNOWN_LAG", "consumer_lag"]

#: The counters when NATS could not be asked (``GET /v1/health`` with NATS unreachable):
#: unknown, not zero.
UNKNOWN_LAG: dict[str, Any] = {
    "exists": None,
    "num_pending": None,
    "num_ack_pending": None,
    "num_redelivered": None,
    "num_waiting": None,
    "delivered_stream_seq": None,
    "ack_floor_stream_seq": None,
}


async def consumer_lag(js: JetStreamContext, stream: str, name: str) -> dict[str, Any]:
    """The durable consumer's counters; ``exists: False`` before its first start."""
    try:
        info = await js.consumer_info(stream, name)
    except NotFoundError:
        return {**UNKNOWN_LAG, "exists": False}
    return {
        "exists": True,
        "num_pending": info.num_pending,
        "num_ack_pending": info.num_ack_pending,
        "num_redelivered": info.num_redelivered,
        "num_waiting": info.num_waiting,
        "delivered_stream_seq": info.delivered.stream_seq if info.delivered else None,
        "ack_floor_stream_seq": info.ack_floor.stream_seq if info.ack_floor else None,
    }
