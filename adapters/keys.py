"""API keys: one per client, bound to one system, with scopes; only their hashes are kept.

Why hashed: a key is a bearer credential, so neither the settings (``CONCORD_API_KEYS``) nor
the key file (``<data_dir>/keys.json``) may hold anything that works as a key if copied. Keys
are 32 random bytes, so a plain SHA-256 is enough (there is nothing to brute-force, unlike a
password) and lets every request be checked with one hash and constant-time comparisons.

Why a file besides the settings: ``concord keys create`` must give a newcomer a working key
without editing the environment and restarting. The file is re-read when it changes, so a key
created while the server runs works at once.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

from adapters.settings import Settings
from hub.application.service import Caller

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "SYSTEMS",
    "DuplicateClient",
    "KeyInfo",
    "KeyRing",
    "KeyRingError",
    "MintRefusal",
    "check_request",
    "hash_key",
    "mint_refusal",
]

KEY_PREFIX = "cnc_"
"""Makes a Concord key recognisable (secret scanners, logs) and tells a key from a hash."""

SYSTEMS = ("crm", "erp", "billing", "admin")
SCOPES = ("read", "write", "admin")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


class KeyRingError(ValueError):
    """A key could not be created or loaded; the message names the fix."""


class DuplicateClient(KeyRingError):
    """The client id belongs to another key already.

    Why unique: the client id is the idempotency namespace and the ``actor`` of every event
    the key writes, so two keys with one id (a ``crm`` key named ``admin``) could replay each
    other's answers and write events in each other's name.
    """


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
            f"this key (system {minter.system}) can mint keys only for its own system "
            f"{minter.system!r}, not {system!r}; ask an operator with an admin key",
        )
    return None


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key: what settings and the key file hold."""
    return sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """One key as the ring knows it: who, which system, which scopes, and its hash."""

    client_id: str
    system: str
    scopes: frozenset[str]
    sha256_hex: str
    source: str  # "settings" or "file"
    created_at: str | None = None

    @property
    def key_id(self) -> str:
        """Short, non-secret handle for listings (a prefix of the hash, not of the key)."""
        return self.sha256_hex[:12]

    def caller(self) -> Caller:
        return Caller(client_id=self.client_id, system=self.system, scopes=self.scopes)

    def public(self) -> dict[str, Any]:
        """Everything about the key except its hash, for ``keys list`` and the API."""
        return {
            "key_id": self.key_id,
            "client_id": self.client_id,
            "system": self.system,
            "scopes": sorted(self.scopes),
            "source": self.source,
            "created_at": self.created_at,
        }


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


class KeyRing:
    """All valid API keys: the configured ones plus those in the key file.

    Thread-safe: uvicorn runs sync routes on a thread pool, and ``create`` may run while
    requests authenticate.
    """

    def __init__(self, configured: Iterable[KeyInfo] = (), path: Path | None = None) -> None:
        self._configured = tuple(configured)
        self._path = path
        self._lock = threading.Lock()
        self._file_keys: tuple[KeyInfo, ...] = ()
        self._file_stamp: tuple[int, int] | None = None
        self._refresh()

    @classmethod
    def load(cls, settings: Settings) -> KeyRing:
        """Keys from ``CONCORD_API_KEYS`` plus ``<data_dir>/keys.json``."""
        configured: list[KeyInfo] = []
        for entry in settings.api_key_entries():
            scopes = check_request(entry.client_id, entry.system, entry.scopes)
            if any(k.client_id == entry.client_id for k in configured):
                raise DuplicateClient(
                    f"CONCORD_API_KEYS names client {entry.client_id!r} twice; client ids "
                    "must be unique (give each key its own)"
                )
            configured.append(
                KeyInfo(entry.client_id, entry.system, scopes, entry.sha256_hex, "settings")
            )
        return cls(configured, Path(settings.data_dir).expanduser() / "keys.json")

    @property
    def path(self) -> Path | None:
        return self._path

    # -- reading ------------------------------------------------------------------------

    def entries(self) -> list[KeyInfo]:
        self._refresh()
        return [*self._configured, *self._file_keys]

    def is_empty(self) -> bool:
        return not self.entries()

    def authenticate(self, key: str) -> Caller | None:
        """The caller a key belongs to, or None.

        Every known hash is compared (no early exit) with ``hmac.compare_digest``, so the
        time taken says nothing about which, or how much of, a hash matched.
        """
        if not key:
            return None
        presented = hash_key(key).encode()
        found: KeyInfo | None = None
        for info in self.entries():
            if hmac.compare_digest(presented, info.sha256_hex.encode()) and found is None:
                found = info
        return found.caller() if found is not None else None

    def _refresh(self) -> None:
        """Re-read the key file if it changed (size or mtime), so new keys work at once."""
        if self._path is None:
            return
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._file_stamp:
            return
        with self._lock:
            file_keys = tuple(self._read_file()) if stamp is not None else ()
            _refuse_duplicates([*self._configured, *file_keys], self._path)
            self._file_keys = file_keys
            self._file_stamp = stamp

    def _read_file(self) -> list[KeyInfo]:
        assert self._path is not None
        try:
            document = orjson.loads(self._path.read_bytes())
            entries = document["keys"]
            return [
                KeyInfo(
                    client_id=str(e["client_id"]),
                    system=str(e["system"]),
                    scopes=frozenset(str(s) for s in e["scopes"]),
                    sha256_hex=str(e["sha256"]).lower(),
                    source="file",
                    created_at=e.get("created_at"),
                )
                for e in entries
            ]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise KeyRingError(
                f"key file {self._path} is unreadable ({exc}); fix or remove it, then create "
                "keys again with `concord keys create`"
            ) from exc

    # -- writing ------------------------------------------------------------------------

    def create(self, client_id: str, system: str, scopes: Iterable[str]) -> str:
        """Make a new key, store only its hash in the key file, and return it (only now).

        The file is rewritten atomically (temporary file + rename) with mode 0600, so a crash
        cannot leave a half-written file and other users cannot read the hashes.
        """
        if self._path is None:
            raise KeyRingError("this key ring has no key file; set CONCORD_DATA_DIR")
        checked = check_request(client_id, system, scopes)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        entry = {
            "client_id": client_id,
            "system": system,
            "scopes": sorted(checked),
            "sha256": hash_key(key),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        with self._lock:
            existing: list[dict[str, Any]] = []
            if self._path.exists():
                existing = list(orjson.loads(self._path.read_bytes()).get("keys", []))
            taken = {k.client_id for k in self._configured} | {
                str(e.get("client_id")) for e in existing
            }
            if client_id in taken:
                raise DuplicateClient(
                    f"client id {client_id!r} is taken by another key; choose another "
                    "(each client id names one key: its idempotency keys and its events)"
                )
            document = {"version": 1, "keys": [*existing, entry]}
            self._write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
            self._file_stamp = None  # force a re-read on next use
        self._refresh()
        return key

    def _write(self, data: bytes) -> None:
        assert self._path is not None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".keys.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _refuse_duplicates(keys: Iterable[KeyInfo], path: Path | None) -> None:
    """A key file (edited by hand) naming one client twice is refused, not half-used."""
    seen: set[str] = set()
    for info in keys:
        if info.client_id in seen:
            raise DuplicateClient(
                f"client id {info.client_id!r} names two keys (settings and/or {path}); "
                "client ids must be unique: remove or rename one"
            )
        seen.add(info.client_id)
