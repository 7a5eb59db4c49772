"""HMAC checks shared by sources that sign the raw body (Concord's own bridge contract for
Salesforce CDC and NetSuite: ``X-Concord-Signature: <hex HMAC-SHA256 of the raw body>``)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

from adapters.inbound.source import Incoming, Unverified

CONCORD_SIGNATURE = "X-Concord-Signature"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def body_hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_body_hmac(incoming: Incoming, secrets: Sequence[str]) -> str:
    """Accept the delivery if its ``X-Concord-Signature`` matches any current secret."""
    given = incoming.header(CONCORD_SIGNATURE)
    if not given:
        raise Unverified(f"the {CONCORD_SIGNATURE} header is missing")
    given = given.strip().lower()
    if not _HEX64.fullmatch(given):
        raise Unverified(f"the {CONCORD_SIGNATURE} must be 64 hexadecimal digits")
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(given.encode(), body_hmac_hex(secret, incoming.body).encode()):
            return f"hmac-sha256 (secret #{index + 1})"
    raise Unverified(f"the {CONCORD_SIGNATURE} does not match the body for any configured secret")
