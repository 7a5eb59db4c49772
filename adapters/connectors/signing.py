"""``Concord-Signature``: how a target tells a delivery from Concord from anyone else's POST.

Why this shape (``t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``): it is the scheme
Stripe's webhooks made familiar, so receivers have code for it already. The timestamp is part
of what is signed, so a captured request cannot be replayed outside the receiver's tolerance
window; one ``v1=`` per active secret lets an operator rotate a target's secret without a
moment where either side refuses the other (configure new + old, switch the receiver, drop old).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_S", "sign", "verify"]

SIGNATURE_HEADER = "Concord-Signature"
TOLERANCE_S = 300.0
"""Default age (either way) a receiver accepts: clocks drift, retries take time."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], now: float | None = None) -> str:
    """The header value for ``body``: one ``v1=`` per secret, in the order given."""
    if not secrets:
        raise ValueError("signing needs at least one secret")
    timestamp = int(time.time() if now is None else now)
    parts = [f"t={timestamp}"] + [f"v1={_digest(s, timestamp, body)}" for s in secrets]
    return ",".join(parts)


def verify(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when ``header`` carries a fresh timestamp and a ``v1=`` that one of ``secrets``
    produced over exactly ``body``. Compares in constant time; never raises on bad input."""
    if not header or not secrets:
        return False
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = [_digest(s, timestamp, body) for s in secrets]
    matched = False
    for candidate in signatures:
        for wanted in expected:
            # Every pair is compared (no early exit), so timing says nothing about which.
            matched |= hmac.compare_digest(candidate.encode(), wanted.encode())
    return matched
