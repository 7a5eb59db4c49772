"""API keys: one per client, bound to one system, with scopes; only their hashes are kept.

Why hashed: a key is a bearer credential, so neither the settings (``CONCORD_API_KEYS``) nor
the key file (``<data_dir>/keys.json``) may hold anything that works as a key if copied. Keys
are 32 random bytes, so a plain SHA-256 is enough (there is nothing to brute-force, unlike a
password) and lets every request be checked with one hash and constant-time comparisons.

Why a file besides the settings: ``concord keys create`` must give a newcomer a working key
without editing the environment and restarting. The file is re-read when it changes, so a key
created while the server runs works at once, and a key revoked (``concord keys revoke``,
``DELETE /v1/keys/{client_id}``) or past its ``expires_at`` fails on the very next request,
in every API worker process that shares the data folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

from adapters.key_rules import DuplicateClient, KeyRingError, UnknownClient, check_request
from adapters.settings import Settings
from hub.application.service import Caller

__all__ = [
    "KEY_PREFIX",
    "DuplicateClient",
    "KeyInfo",
    "KeyRing",
    "KeyRingError",
    "UnknownClient",
    "hash_key",
]

KEY_PREFIX = "cnc_"
"""Makes a Concord key recognisable (secret scanners, logs) and tells a key from a hash."""


def hash_key(key: str) -> str:
    """SHA-256 hex digest of a key: what settings and the key file hold."""
    return sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """One key as the ring knows it: who, which system, which scopes, and its hash.

    ``expires_at`` and ``revoked_at`` end a key's life; the entry stays (listed, its client
    id taken) so that an audit can still tell whose events and receipts those were.
    """

    client_id: str
    system: str
    scopes: frozenset[str]
    sha256_hex: str
    source: str  # "settings" or "file"
    created_at: str | None = None
    expires_at: datetime | None = None
    revoked_at: str | None = None

    @property
    def key_id(self) -> str:
        """Short, non-secret handle for listings (a prefix of the hash, not of the key)."""
        return self.sha256_hex[:12]

    def valid_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at ``now``."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def status(self, now: datetime) -> str:
        """``active``, ``revoked <when>`` or ``expired <when>``, for listings."""
        if self.revoked_at is not None:
            return f"revoked {self.revoked_at}"
        if self.expires_at is not None:
            word = "expires" if now < self.expires_at else "expired"
            return f"{word} {_iso(self.expires_at)}"
        return "active"

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
            "expires_at": _iso(self.expires_at),
            "revoked_at": self.revoked_at,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class KeyRing:
    """All API keys: the configured ones plus those in the key file, with their revocations.

    Thread-safe: uvicorn runs sync routes on a thread pool, and ``create`` may run while
    requests authenticate.

    Why revocation is effective at once everywhere: nothing is cached past a change of the
    key file. Every ``authenticate`` stats the file (inode, mtime, size) and re-reads it when
    any differs, and every write replaces the file (new inode), so each API worker process
    on the same data folder sees a revocation on its next request.
    """

    def __init__(
        self,
        configured: Iterable[KeyInfo] = (),
        path: Path | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._configured = tuple(configured)
        self._path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: tuple[KeyInfo, ...] = self._configured
        self._file_stamp: tuple[int, int, int] | None = None
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
        """Every key, revoked and expired ones included (they keep their client id)."""
        self._refresh()
        return list(self._keys)

    def is_empty(self) -> bool:
        return not self.entries()

    def find(self, client_id: str) -> KeyInfo | None:
        return next((k for k in self.entries() if k.client_id == client_id), None)

    def authenticate(self, key: str) -> Caller | None:
        """The caller a valid (not revoked, not expired) key belongs to, or None.

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
        if found is None or not found.valid_at(self.clock()):
            return None
        return found.caller()

    def _refresh(self) -> None:
        """Re-read the key file if it changed (inode, mtime or size)."""
        if self._path is None:
            return
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            stamp = None
        else:
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp == self._file_stamp and self._file_stamp is not None:
            return
        with self._lock:
            document = self._read_document() if stamp is not None else {}
            keys = self._from_document(document)
            _refuse_duplicates(keys, self._path)
            self._keys = tuple(keys)
            self._file_stamp = stamp

    def _read_document(self) -> dict[str, Any]:
        assert self._path is not None
        try:
            document = orjson.loads(self._path.read_bytes())
            if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
                raise TypeError("expected {'keys': [...]}")
            return document
        except (OSError, orjson.JSONDecodeError, TypeError) as exc:
            raise KeyRingError(
                f"key file {self._path} is unreadable ({exc}); fix or remove it, then create "
                "keys again with `concord keys create`"
            ) from exc

    def _from_document(self, document: dict[str, Any]) -> list[KeyInfo]:
        """The configured keys (with revocations recorded in the file) plus the file's keys."""
        try:
            revoked = {
                str(r["sha256"]).lower(): str(r["revoked_at"]) for r in document.get("revoked", [])
            }
            configured = [
                replace(k, revoked_at=revoked[k.sha256_hex]) if k.sha256_hex in revoked else k
                for k in self._configured
            ]
            return configured + [
                KeyInfo(
                    client_id=str(e["client_id"]),
                    system=str(e["system"]),
                    scopes=frozenset(str(s) for s in e["scopes"]),
                    sha256_hex=str(e["sha256"]).lower(),
                    source="file",
                    created_at=e.get("created_at"),
                    expires_at=_parse_time(e.get("expires_at")),
                    revoked_at=e.get("revoked_at"),
                )
                for e in document.get("keys", [])
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyRingError(
                f"key file {self._path} is unreadable ({exc!r}); fix or remove it, then "
                "create keys again with `concord keys create`"
            ) from exc

    # -- writing ------------------------------------------------------------------------

    def create(
        self,
        client_id: str,
        system: str,
        scopes: Iterable[str],
        *,
        expires_at: datetime | None = None,
    ) -> str:
        """Make a new key, store only its hash in the key file, and return it (only now).

        The file is rewritten atomically (temporary file + rename) with mode 0600, so a crash
        cannot leave a half-written file and other users cannot read the hashes.
        """
        checked = check_request(client_id, system, scopes)
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= self.clock()):
            raise KeyRingError(
                f"expires_at {expires_at.isoformat()} must be a time in the future, with an "
                "offset (e.g. 2027-01-01T00:00:00Z)"
            )
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        entry = {
            "client_id": client_id,
            "system": system,
            "scopes": sorted(checked),
            "sha256": hash_key(key),
            "created_at": _iso(self.clock()),
            "expires_at": _iso(expires_at),
        }

        def add(document: dict[str, Any]) -> None:
            taken = {k.client_id for k in self._from_document(document)}
            if client_id in taken:
                raise DuplicateClient(
                    f"client id {client_id!r} is taken by another key; choose another "
                    "(each client id names one key: its idempotency keys and its events)"
                )
            document["keys"].append(entry)

        self._update(add)
        return key

    def revoke(self, client_id: str) -> KeyInfo:
        """Revoke the key of ``client_id`` (configured keys too); revoking twice is a no-op.

        A configured key's revocation is recorded in the key file by its hash, since the
        settings cannot be changed from here; remove it from ``CONCORD_API_KEYS`` as well.
        """
        now = _iso(self.clock())

        def mark(document: dict[str, Any]) -> None:
            info = next(
                (k for k in self._from_document(document) if k.client_id == client_id), None
            )
            if info is None:
                raise UnknownClient(f"no key has client id {client_id!r} (see `keys list`)")
            if info.revoked_at is not None:
                return
            if info.source == "settings":
                revoked = document.setdefault("revoked", [])
                revoked.append(
                    {"client_id": client_id, "sha256": info.sha256_hex, "revoked_at": now}
                )
                return
            for entry in document["keys"]:
                if entry["client_id"] == client_id:
                    entry["revoked_at"] = now

        self._update(mark)
        found = self.find(client_id)
        assert found is not None
        return found

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Read, change and atomically rewrite the key file, under the ring's lock.

        An exclusive ``flock`` on a lock file beside it serialises writers of other
        processes (another worker, the CLI), so two creations cannot lose one another.
        """
        if self._path is None:
            raise KeyRingError("this key ring has no key file; set CONCORD_DATA_DIR")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self._path.with_name(f".{self._path.name}.lock")
        with self._lock, lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # other processes' writers wait
            document: dict[str, Any] = {"version": 1, "keys": []}
            if self._path.exists():
                document = self._read_document()
            change(document)
            self._write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
            self._file_stamp = None  # force a re-read on next use
        self._refresh()

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


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"expires_at {value!r} has no offset")
    return moment


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
