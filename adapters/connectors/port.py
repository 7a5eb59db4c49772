"""The connector port: what a subscriber needs from a target system, and nothing more.

Why two error classes and not status codes: the subscriber's only decisions are *retry later*
(and how much later) or *give up and dead-letter*. Each connector knows its target's
vocabulary (HTTP statuses, SOAP faults, SDK exceptions) and translates it into one of these
two at the boundary, so the retry, ordering and dead-letter logic is written once and is the
same for every system.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Connector", "DeliveryError", "PermanentDeliveryError", "TransientDeliveryError"]


class DeliveryError(Exception):
    """A target did not confirm an event. Subclasses say whether trying again can help."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientDeliveryError(DeliveryError):
    """Worth retrying: timeouts, connection errors, 5xx, 429.

    ``retry_after`` is the target's own hint in seconds (``Retry-After``); the subscriber
    waits at least that long before the next attempt, whatever its backoff schedule says.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying the same request cannot succeed (validation 4xx): dead-letter it at once."""


class Connector(ABC):
    """Delivers one event envelope to one target system, idempotently.

    ``idempotency_key`` is the event id. Delivery is at least once (a crash after the call
    but before the acknowledgement delivers again), so an implementation must pass the key
    to the target (``Idempotency-Key`` header, external id, upsert key) so that a repeat has
    no second effect. Return normally only when the target confirmed the change.
    """

    @abstractmethod
    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        """Push one event; raise a :class:`DeliveryError` subclass when not confirmed."""

    def wants(self, envelope: dict[str, Any]) -> bool:
        """Whether :meth:`deliver` would send anything for this event (observe-only mode
        records only those). Connectors that skip events say which; the default: all."""
        del envelope
        return True

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most connectors hold nothing
        """Release connections; called when the subscriber stops."""
