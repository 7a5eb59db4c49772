"""A generic JSON-over-HTTP connector: POST the envelope with the event id as
``Idempotency-Key``, and classify the answer for the subscriber.

Why generic: the system-specific connectors (NetSuite, Salesforce, Stripe ...) come with the
quote-to-cash work; until then this one drives the sandbox target and any webhook-style
receiver. The status mapping here is the reference the specific connectors follow:

======================================  ===========================================
2xx                                     delivered
408, 409, 425, 429, 5xx                 transient (``Retry-After`` honoured)
timeouts, connection errors             transient
other 4xx, 3xx                          permanent (redirects are not followed: SSRF)
======================================  ===========================================

409 counts as transient because idempotent APIs (Stripe among them) answer 409 while a
request with the same key is still being processed.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from adapters.connectors.budget import Budget
from adapters.connectors.port import Connector, PermanentDeliveryError, TransientDeliveryError
from adapters.connectors.signing import SIGNATURE_HEADER, sign

__all__ = ["HttpConnector", "budgeted_request", "parse_retry_after"]

_TRANSIENT_4XX = frozenset({408, 409, 425, 429})
_MAX_DETAIL = 300


#: Longest wait a target can ask for: a bogus ``Retry-After`` ("inf", "1e999", a date next
#: year) must not stall an aggregate for good (or crash ``nak``, which needs an int).
MAX_RETRY_AFTER_S = 3600.0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date),
    capped at :data:`MAX_RETRY_AFTER_S`; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


async def budgeted_request(
    client: httpx.AsyncClient,
    budget: Budget,
    what: str,
    system: str,
    method: str,
    url: str,
    **options: Any,
) -> httpx.Response:
    """One call to a target inside one slot of its shared budget; a timeout or a connection
    error is transient (``what`` names the call in the message, ``system`` the target)."""
    try:
        async with budget.slot():
            return await client.request(method, url, **options)
    except httpx.TimeoutException as slow:
        raise TransientDeliveryError(f"{what} timed out: {slow!r}") from slow
    except httpx.TransportError as broken:
        raise TransientDeliveryError(f"{what}: cannot reach {system}: {broken!r}") from broken


class HttpConnector(Connector):
    """POSTs each envelope as JSON to ``url``.

    One ``httpx.AsyncClient`` per connector keeps connections alive across events. The
    timeout must stay below the subscriber's ``ack_wait`` or the stream redelivers a message
    whose call is still running (the subscriber also sends progress acks, as a safety net).

    With ``secrets`` (the target's active secrets, newest first) every request carries a
    ``Concord-Signature`` over its exact body, so the target can refuse anyone else's POST.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.url = url
        self._secrets = tuple(secrets)
        self._client = client or httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, headers=headers
        )

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        body = orjson.dumps(envelope)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "Concord-Event-Type": str(envelope.get("type", "")),
        }
        if self._secrets:
            # Signed per attempt: a retry hours later must carry a fresh timestamp.
            headers[SIGNATURE_HEADER] = sign(body, self._secrets)
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as slow:
            raise TransientDeliveryError(f"timeout calling {self.url}: {slow!r}") from slow
        except httpx.TransportError as broken:
            raise TransientDeliveryError(f"cannot reach {self.url}: {broken!r}") from broken
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = f"{self.url} answered {status}: {response.text[:_MAX_DETAIL]}"
        if status >= 500 or status in _TRANSIENT_4XX:
            raise TransientDeliveryError(
                detail, retry_after=parse_retry_after(response.headers.get("Retry-After"))
            )
        raise PermanentDeliveryError(detail)

    async def aclose(self) -> None:
        await self._client.aclose()
