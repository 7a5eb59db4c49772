"""Rules for API keys that need no key file: valid requests, minting rights, expiry input.

Kept apart from the key ring (storage, authentication) so the rules can be read and tested
on their own, and used by the API and the CLI alike before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub.application.service import Caller

__all__ = [
    "CLIENT_ID_PATTERN",
    "SCOPES",
    "SYSTEMS",
    "DuplicateClient",
    "KeyRingError",
    "MintRefusal",
    "UnknownClient",
    "check_request",
    "mint_refusal",
    "parse_expiry",
]

SYSTEMS = ("crm", "erp", "billing", "admin")
SCOPES = ("read", "write", "admin")

CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)


class KeyRingError(ValueError):
    """A key could not be created or loaded; the message names the fix."""


class DuplicateClient(KeyRingError):
    """The client id belongs to another key already.

    Why unique: the client id is the idempotency namespace and the ``actor`` of every event
    the key writes, so two keys with one id (a ``crm`` key named ``admin``) could replay each
    other's answers and write events in each other's name.
    """


class UnknownClient(KeyRingError):
    """No key has this client id."""


@dataclass(frozen=True)
class MintRefusal:
    """Why a key may not mint the key it asked for: the offending input and the reason."""

    field: str  # "system" or "scopes"
    message: str


def mint_refusal(
    minter: Caller, system: str, scopes: Iterable[str], *, admin_system: str = "admin"
) -> MintRefusal | None:
    """None if ``minter`` may create a key for ``system`` with ``scopes``.

    A key never mints more rights than its own: the scopes must be a subset of its scopes,
    and the system must be its own, unless it is an ``admin``-system key holding the admin
    scope (an operator hands out keys to every system). Without this, any key allowed on
    ``POST /v1/keys`` could mint itself an ``admin`` key and with it every field.
    """
    extra = sorted(set(scopes) - minter.scopes)
    if extra:
        return MintRefusal(
            "scopes",
            f"this key ({minter.client_id}) cannot grant scope(s) it does not hold: "
            f"{', '.join(extra)}; it holds {', '.join(sorted(minter.scopes))}",
        )
    operator = minter.system == admin_system and "admin" in minter.scopes
    if system != minter.system and not operator:
        return MintRefusal(
            "system",
            f"this key (system {minter.system}) can manage keys only of its own system "
            f"{minter.system!r}, not {system!r}; ask an operator with an admin key",
        )
    return None


def check_request(client_id: str, system: str, scopes: Iterable[str]) -> frozenset[str]:
    """The scopes asked for, once client id, system and scopes are known to be valid."""
    if not _CLIENT_ID.match(client_id):
        raise KeyRingError(
            f"client id {client_id!r} is not valid: use 1-100 letters, digits, '_', '-', '.', '@'"
        )
    if system not in SYSTEMS:
        raise KeyRingError(f"unknown system {system!r}; use one of {', '.join(SYSTEMS)}")
    wanted = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise KeyRingError(f"unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}")
    if not wanted:
        raise KeyRingError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return wanted


_DURATION = re.compile(r"^\s*(\d{1,6})\s*([dhm])\s*$")
_UNIT = {"d": "days", "h": "hours", "m": "minutes"}


def parse_expiry(text: str, now: datetime) -> datetime:
    """``90d`` / ``12h`` / ``30m`` from ``now``, or an ISO 8601 time with an offset."""
    duration = _DURATION.match(text)
    if duration is not None:
        return now + timedelta(**{_UNIT[duration.group(2)]: int(duration.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise KeyRingError(
            f"expires {text!r} is neither a duration (90d, 12h, 30m) nor an ISO time with an "
            "offset (2027-01-01T00:00:00Z)"
        )
    return moment
