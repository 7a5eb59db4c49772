"""NATS identities kept in a folder: generated passwords, bcrypt hashes, the server's users.

Why files in the data folder: the embedded NATS server and the Concord processes that
connect to it must agree on credentials without anyone configuring them. The first start
generates random passwords for the relay and the subscriber identity (``relay.json``,
``subscriber.json``, mode 0600, holding the password Concord connects with and its hash);
external systems get ``external/<name>.json`` holding only the hash, their password being
shown once by ``concord nats creds create``. ``auth.conf`` (the server's ``authorization``
block, included by ``nats.conf``) is rendered from these files and holds hashes only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from adapters.nats.identities import (
    DEFAULT_ROUNDS,
    Identity,
    Role,
    Scope,
    authorization_block,
    hash_password,
)

__all__ = [
    "Credential",
    "IdentityFolder",
    "InvalidIdentityName",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""External names double as consumer names, which may not hold dots or wildcards."""

OWN_ROLES: tuple[Role, ...] = ("relay", "subscriber", "admin")


class InvalidIdentityName(ValueError):
    """A name that cannot be a NATS user and consumer name (or is already taken)."""


@dataclass(frozen=True)
class Credential:
    """User name and password one Concord process connects with."""

    user: str
    password: str


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only, never briefly readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = path.with_suffix(".tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    temp.replace(path)


def _write_json(path: Path, data: dict[str, str]) -> None:
    _write_private(path, json.dumps(data, indent=2))


@dataclass(frozen=True)
class IdentityFolder:
    """The identity files under ``root`` (``<data>/nats/auth``)."""

    root: Path
    rounds: int = DEFAULT_ROUNDS

    def _own(self, role: Role) -> Path:
        return self.root / f"{role}.json"

    def _external(self, name: str) -> Path:
        return self.root / "external" / f"{name}.json"

    def ensure(self, *, admin: bool = False) -> None:
        """Generate the relay and subscriber identities (and the admin one, when asked for)
        unless they exist: a restart keeps the passwords clients already hold."""
        roles: list[Role] = ["relay", "subscriber"]
        if admin:
            roles.append("admin")
        for role in roles:
            path = self._own(role)
            if path.exists():
                continue
            password = secrets.token_urlsafe(32)
            _write_json(
                path,
                {
                    "user": f"concord-{role}",
                    "role": role,
                    "password": password,
                    "password_hash": hash_password(password, self.rounds),
                },
            )

    def credential(self, role: Role) -> Credential | None:
        """The credential Concord connects with in ``role`` (``None`` if not generated)."""
        path = self._own(role)
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        return Credential(user=str(data["user"]), password=str(data["password"]))

    def add_external(self, name: str) -> Credential:
        """A new consume-only identity for system ``name``; its password is returned once
        and only its hash is kept."""
        if not _NAME.match(name):
            raise InvalidIdentityName(f"name {name!r}: use 1-64 letters, digits, - and _")
        taken = {identity.user for identity in self.identities()}
        if name in taken or name.startswith("concord-"):
            raise InvalidIdentityName(
                f"name {name!r} is already a NATS identity; pick another name"
            )
        password = secrets.token_urlsafe(32)
        hashed = hash_password(password, self.rounds)
        _write_json(
            self._external(name), {"user": name, "role": "external", "password_hash": hashed}
        )
        return Credential(user=name, password=password)

    def identities(self) -> list[Identity]:
        """Every identity on file: Concord's own first, then external ones by name."""
        paths = [self._own(role) for role in OWN_ROLES]
        paths += sorted((self.root / "external").glob("*.json"))
        found: list[Identity] = []
        for path in paths:
            if path.exists():
                data = json.loads(path.read_text())
                found.append(Identity(data["user"], data["role"], data["password_hash"]))
        return found

    def render(self, target: Path, scope: Scope) -> None:
        """Write the server's ``authorization`` block for every identity on file."""
        text = (
            "# Written by Concord from the identity files in "
            f"{self.root} (hashes only); edits are overwritten.\n"
            + authorization_block(self.identities(), scope)
        )
        _write_private(target, text)
