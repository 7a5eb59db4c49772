"""Per-customer data keys in PostgreSQL: AES-256-GCM sealing of personal fields.

Why keys in the hub's own database: a key must disappear in the same transaction as the
erasure event that says it is gone, so no reader can ever see "erased" in the log and still
decrypt the data (or the other way round). One row per subject (``concord_personal_keys``);
erasure overwrites its key with NULL and stamps ``destroyed_at`` (the tombstone also stops a
new key from being created for an erased customer).

Why keys are created inside the commit: a new customer's key is generated in memory when
its first event is sealed and inserted by the writer in the very transaction that stores
that event, so registering a customer costs no extra round trip (the write path's
throughput is the group commit's) and no key exists without its data. A key read for
decrypting is cached for ``read_ttl_s``; one used only for sealing may be older, which is
harmless: sealing for an erased subject is refused by the domain, and a value sealed with a
destroyed key is unreadable anyway.

Each value is sealed as ``pii:v1:`` + base64url(nonce ‖ ciphertext ‖ tag), with a random
96-bit nonce and the subject id as associated data (a value copied to another customer
does not open).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from hub.application.personal import SEALED, PersonalCipher
from hub.domain.customer import ERASED
from hub.domain.errors import InvalidTransition

log = logging.getLogger("concord.personal")

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
MAX_CACHED = 100_000


class _Random(threading.local):
    """Random bytes drawn from the OS a few KiB at a time: one ``getrandom`` call per value
    cost more than the AES-GCM sealing itself (a syscall, slow on virtual machines)."""

    def __init__(self) -> None:
        self.pool = b""
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.pool):
            self.pool, self.at = os.urandom(4096), 0
        self.at += n
        return self.pool[self.at - n : self.at]


_random = _Random()


def seal_with(aead: AESGCM, subject: UUID, value: Any) -> str:
    nonce = _random.take(NONCE_BYTES)
    sealed = aead.encrypt(nonce, orjson.dumps(value), subject.bytes)
    return SEALED + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_with(aead: AESGCM | None, subject: UUID, token: str) -> Any:
    """The sealed value, or ERASED when there is no key (or it is not the one it was
    sealed with: a key destroyed and a value sealed with it by a stale writer)."""
    if aead is None:
        return ERASED
    try:
        raw = base64.urlsafe_b64decode(token[len(SEALED) :])
        return orjson.loads(aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], subject.bytes))
    except (InvalidTag, ValueError):
        log.warning("a sealed value of %s does not open with its key; read as erased", subject)
        return ERASED


@dataclass
class _Entry:
    aead: AESGCM | None  # None: destroyed (or never created, for reading)
    fetched: float


class PersonalDataErased(InvalidTransition):
    """Personal data was to be sealed for a subject whose key is destroyed."""


class PersonalKeyStore(PersonalCipher):
    """Keys of every subject, cached per process; see the module docstring."""

    def __init__(
        self, datastore: PostgresDatastore, schema: str, *, read_ttl_s: float = 1.0
    ) -> None:
        self.datastore = datastore
        self.schema = sql.Identifier(schema)
        self.read_ttl_s = read_ttl_s
        self._lock = threading.Lock()
        self._cache: OrderedDict[UUID, _Entry] = OrderedDict()
        self._fresh: dict[UUID, bytes] = {}  # generated, not yet committed

    # -- PersonalCipher -----------------------------------------------------------------

    def new_subject(self, subject: UUID) -> None:
        """A subject's first event is being sealed: make its key without asking the database
        (if it did exist, the commit's key check refuses the change)."""
        if subject in self._fresh:  # reads need no lock: single dict operations are atomic
            return
        with self._lock:
            if subject in self._fresh or subject in self._cache:
                return
            key = _random.take(KEY_BYTES)
            self._fresh[subject] = key
            self._remember(subject, AESGCM(key))

    def seal(self, subject: UUID, value: Any) -> str:
        entry = self._cache.get(subject)
        if entry is None:
            entry = self._load(subject, create=True)
        if entry.aead is None:
            raise PersonalDataErased(
                "this customer's personal data was erased; it cannot be stored again"
            )
        return seal_with(entry.aead, subject, value)

    def open(self, subject: UUID, token: str) -> Any:
        entry = self._cache.get(subject)
        fresh = subject in self._fresh
        if entry is None or (not fresh and time.monotonic() - entry.fetched > self.read_ttl_s):
            entry = self._load(subject, create=False)
        return open_with(entry.aead, subject, token)

    # -- the writer's side (inside its transaction) -------------------------------------

    def fresh(self, subjects: Iterable[UUID]) -> list[tuple[UUID, bytes]]:
        """Keys generated for these subjects that the commit must insert."""
        found = ((s, self._fresh.get(s)) for s in subjects)
        return [(s, key) for s, key in found if key is not None]

    def insert(self, curs: psycopg.Cursor[Any], keys: list[tuple[UUID, bytes]]) -> None:
        """Insert new keys. A key that exists already (the subject was created concurrently,
        or erased) violates the primary key, so the transaction cannot commit data sealed
        with a key nobody keeps. Nothing is fetched: in the writer's pipeline this statement
        costs no round trip of its own."""
        unique = dict(keys)  # a batch may name one new subject in several changes
        curs.execute(
            sql.SQL(
                "INSERT INTO {}.concord_personal_keys (subject_id, key) "
                "SELECT * FROM unnest(%s::uuid[], %s::bytea[])"
            ).format(self.schema),
            (list(unique), list(unique.values())),
        )

    def destroy(self, curs: psycopg.Cursor[Any], subjects: list[UUID]) -> None:
        """Erase: overwrite each subject's key with a tombstone, in the erasure's transaction."""
        curs.execute(
            sql.SQL(
                "INSERT INTO {}.concord_personal_keys (subject_id, key, destroyed_at) "
                "SELECT s, NULL, now() FROM unnest(%s::uuid[]) AS s "
                "ON CONFLICT (subject_id) DO UPDATE SET key = NULL, destroyed_at = now()"
            ).format(self.schema),
            (subjects,),
        )

    def settled(
        self,
        created: Iterable[tuple[UUID, bytes]],
        destroyed: Iterable[UUID],
        *,
        committed: bool,
    ) -> None:
        """After the transaction: new keys are real (or forgotten), destroyed ones are gone."""
        now = time.monotonic()
        with self._lock:
            for subject, key in created:
                self._fresh.pop(subject, None)
                if committed:
                    entry = self._cache.get(subject)
                    self._remember(subject, entry.aead if entry else AESGCM(key), now)
                else:
                    self._cache.pop(subject, None)
            if committed:
                for subject in destroyed:
                    self._fresh.pop(subject, None)
                    self._remember(subject, None, now)

    # -- cache --------------------------------------------------------------------------

    def _load(self, subject: UUID, *, create: bool) -> _Entry:
        query = sql.SQL("SELECT key FROM {}.concord_personal_keys WHERE subject_id = %s").format(
            self.schema
        )
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (subject,)).fetchone()
        if row is None and create:
            self.new_subject(subject)
            with self._lock:
                return self._cache[subject]
        aead = None if row is None or row["key"] is None else AESGCM(bytes(row["key"]))
        with self._lock:
            if subject in self._fresh:  # generated meanwhile by this process: keep it
                return self._cache[subject]
            return self._remember(subject, aead)

    def _remember(self, subject: UUID, aead: AESGCM | None, now: float | None = None) -> _Entry:
        """Cache (lock held). Keys not yet committed stay in ``_fresh`` whatever is evicted."""
        entry = _Entry(aead, time.monotonic() if now is None else now)
        self._cache[subject] = entry
        self._cache.move_to_end(subject)
        while len(self._cache) > MAX_CACHED:
            oldest, _ = self._cache.popitem(last=False)
            if oldest in self._fresh:
                self._cache[oldest] = _Entry(AESGCM(self._fresh[oldest]), entry.fetched)
                break
        return entry


class KnownKeys(PersonalCipher):
    """Opens values with keys fetched beforehand (the async subscribers read keys from
    their own pool, then open an envelope synchronously); never seals."""

    def __init__(self, keys: dict[UUID, bytes | None]) -> None:
        self.aeads = {s: (None if k is None else AESGCM(k)) for s, k in keys.items()}

    def seal(self, subject: UUID, value: Any) -> str:
        raise TypeError("subscribers never seal personal data")

    def open(self, subject: UUID, token: str) -> Any:
        return open_with(self.aeads.get(subject), subject, token)
