"""``X-HubSpot-Signature-v3``: base64 HMAC-SHA256 of ``method + URI + body + timestamp``.

Hand-written (a dozen lines) rather than taken from ``hubspot-api-client``: that package is a
4 MB generated API client pulling in ``requests`` and ``urllib3`` for this one function, and
its helper does not decode the URI the way HubSpot does before signing.

The URI is the full URL HubSpot called, as configured in the app's webhook settings. Behind
a TLS-terminating proxy Concord sees another URL (``http://concord:8000/…``), so the public
one can be configured (``CONCORD_HUBSPOT_WEBHOOK_URL``); otherwise the request's URL is used.
HubSpot decodes a fixed set of percent-escapes in the URI before signing; so does this.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from adapters.inbound.source import Incoming, Unverified

SIGNATURE = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
MAX_AGE_MS = 5 * 60 * 1000

#: The escapes HubSpot decodes in the URI before signing (its "validating requests" guide).
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def signed_uri(uri: str) -> str:
    """``https://x.example/hook?a=b%3Ac`` → ``https://x.example/hook?a=b:c`` (only HubSpot's
    set: ``%20`` and the rest stay escaped)."""
    return _ESCAPE.sub(lambda found: _DECODED[found.group(0).upper()], uri)


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + signed_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_v3(incoming: Incoming, secrets: Sequence[str], public_url: str | None) -> str:
    """Accept the delivery if its v3 signature matches any current secret and its timestamp
    is within five minutes of its arrival; answer how it was verified."""
    given = incoming.header(SIGNATURE)
    stamp = incoming.header(TIMESTAMP)
    if not given:
        raise Unverified(f"the {SIGNATURE} header is missing")
    if not stamp or not re.fullmatch(r"[0-9]{1,16}", stamp.strip()):
        raise Unverified(f"the {TIMESTAMP} header is missing or not epoch milliseconds")
    arrived_ms = int(incoming.received_at.timestamp() * 1000)
    if abs(arrived_ms - int(stamp)) > MAX_AGE_MS:
        raise Unverified(f"the {TIMESTAMP} is more than 5 minutes from now (replayed?)")
    uri = public_url or incoming.url
    for index, secret in enumerate(secrets):
        expected = signature_v3(secret, incoming.method, uri, incoming.body, stamp.strip())
        if hmac.compare_digest(given.strip().encode(), expected.encode()):
            return f"hubspot-signature-v3 (secret #{index + 1})"
    raise Unverified(
        f"the {SIGNATURE} does not match the request for any configured secret (if Concord "
        "is behind a proxy, set CONCORD_HUBSPOT_WEBHOOK_URL to the URL configured in HubSpot)"
    )
