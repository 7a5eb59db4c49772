"""Who may do what on NATS: the relay writes the record, everyone else only reads it.

Why: the events stream is the record every target trusts. An unauthenticated client once
published a forged ``PaymentReceived`` that reached the ERP; so the server authenticates
every client and authorises by role:

- **relay**: the only identity that may publish on ``<prefix>.v1.>`` and manage the stream
  (create, update, read messages: the whole JetStream API).
- **subscriber** (Concord's own subscribers, lag reports and replays): consume only. It may
  create and use durable (and replay) consumers on the events stream, read stream info and
  single messages, acknowledge, and receive replies on ``_INBOX.>``; it may not publish on
  Concord's subjects or change the stream.
- **external** (``concord nats creds create --name <system>``): consume only, and only
  through durable consumers named like the system itself, so one system cannot read or
  delete another's consumer.
- **admin**: no limits; only when asked for (test sessions inject foreign messages with it).

The permissions are rendered into a nats-server ``authorization`` block with bcrypt hashes
(never the passwords). A scope's ``stream`` / ``prefix`` may be ``*`` so one test server
serves many per-test streams with the same rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import bcrypt

__all__ = [
    "ROLES",
    "Identity",
    "Role",
    "Scope",
    "authorization_block",
    "hash_password",
    "permissions",
    "user_entry",
]

Role = Literal["relay", "subscriber", "external", "admin"]
ROLES: tuple[Role, ...] = ("relay", "subscriber", "external", "admin")

DEFAULT_ROUNDS = 11
"""bcrypt cost of stored hashes: nats-server checks one per connection, so each connect
costs some milliseconds of server CPU, which is fine for long-lived connections."""


@dataclass(frozen=True)
class Scope:
    """The stream and subject prefix the permissions are about."""

    stream: str = "CONCORD_EVENTS"
    prefix: str = "concord"


@dataclass(frozen=True)
class Identity:
    """One NATS user: its name, role and the bcrypt hash of its password."""

    user: str
    role: Role
    password_hash: str


def hash_password(password: str, rounds: int = DEFAULT_ROUNDS) -> str:
    """bcrypt hash in the ``$2b$`` form nats-server accepts in ``password:``."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def _consumer_api(stream: str, consumer: str) -> list[str]:
    """JetStream API subjects to create, inspect, delete and pull from one consumer name
    (``*``: any consumer of the stream), plus acknowledging its messages."""
    api = "$JS.API.CONSUMER"
    return [
        f"{api}.CREATE.{stream}.{consumer}",
        f"{api}.CREATE.{stream}.{consumer}.>",  # create with one filter subject
        f"{api}.DURABLE.CREATE.{stream}.{consumer}",
        f"{api}.INFO.{stream}.{consumer}",
        f"{api}.DELETE.{stream}.{consumer}",
        f"{api}.MSG.NEXT.{stream}.{consumer}",
        f"$JS.ACK.{stream}.{consumer}.>",
    ]


def _reading(stream: str) -> list[str]:
    """Reading the stream itself: its info and single messages (lag reports, replays)."""
    return [
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
    ]


def permissions(role: Role, scope: Scope, user: str = "") -> dict[str, object] | None:
    """The nats-server ``permissions`` of one role (``None``: unrestricted admin).

    ``user`` names the only consumer an external identity may use.
    """
    events = f"{scope.prefix}.v1.>"
    stream = scope.stream
    if role == "admin":
        return None
    if role == "relay":
        return {
            "publish": {"allow": [events, "$JS.API.>"]},
            "subscribe": {"allow": ["_INBOX.>"]},
        }
    if role == "subscriber":
        allow = [
            *_reading(stream),
            *_consumer_api(stream, "*"),
            f"$JS.API.CONSUMER.CREATE.{stream}",  # ephemeral consumers (replays)
            f"$JS.API.CONSUMER.NAMES.{stream}",
            f"$JS.API.CONSUMER.LIST.{stream}",
            f"$JS.FC.{stream}.>",  # flow control replies of a replay's push consumer
        ]
    else:
        allow = [*_reading(stream), *_consumer_api(stream, user)]
    return {
        # The deny is redundant with the allow list, and stays so a widened allow list can
        # never let a reader write the record.
        "publish": {"allow": allow, "deny": [events]},
        "subscribe": {"allow": ["_INBOX.>"]},
    }


def user_entry(identity: Identity, scope: Scope) -> str:
    """One element of ``authorization.users``: user, bcrypt hash and permissions.

    JSON is valid NATS configuration syntax, and its quoting keeps ``$2b$...`` hashes and
    ``$JS...`` subjects from being read as variable references.
    """
    entry: dict[str, object] = {"user": identity.user, "password": identity.password_hash}
    granted = permissions(identity.role, scope, identity.user)
    if granted is not None:
        entry["permissions"] = granted
    return json.dumps(entry)


def authorization_block(identities: list[Identity], scope: Scope) -> str:
    """The ``authorization { users = [...] }`` block for these identities."""
    lines = ["authorization {", "  users = ["]
    lines += [f"    {user_entry(identity, scope)}" for identity in identities]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)
