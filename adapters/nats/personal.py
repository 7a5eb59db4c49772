"""Opening sealed personal fields just before a subscriber delivers an event to its target.

Why here and not in the relay: the relay publishes the stored bytes, so the stream, dead
letters and parked events (which copy envelopes from the stream) hold a customer's personal
fields only as ciphertext. A target of Concord's needs the clear values, so the subscriber
opens them at the last moment, with the key read fresh from PostgreSQL for each delivery:
an event delivered after the erasure (a parked one released later, a retried dead letter, a
replay) carries ``[erased]``, never the data.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from adapters.connectors.port import Connector, DeliveryError
from adapters.postgres.personal_keys import KnownKeys
from hub.application.personal import (
    WITHHELD,
    PersonalCipher,
    envelope_paths,
    is_sealed,
    open_envelope,
)
from hub.domain.catalog import EVENTS_BY_NAME
from hub.domain.customer import ERASED


def erases_personal_data(event_type: str) -> bool:
    """The erasure event: delivered at once even past a held aggregate (see subscriber)."""
    cls = EVENTS_BY_NAME.get(event_type)
    return cls is not None and cls.erases_personal_data


class EnvelopeOpener:
    """Reads a subject's key from the hub's key table and opens an envelope's sealed fields
    (or, for a target that does not need personal data, replaces them by ``[withheld]``
    without reading any key)."""

    def __init__(
        self, pool: AsyncConnectionPool[Any], schema: str, *, withhold: bool = False
    ) -> None:
        self.pool = pool
        self.withhold = withhold
        self.query = sql.SQL(
            "SELECT key FROM {}.concord_personal_keys WHERE subject_id = %s"
        ).format(sql.Identifier(schema))

    async def open(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``envelope`` with its personal fields opened (or ``[erased]``)."""
        paths = envelope_paths(envelope)
        data = envelope.get("data")
        if not paths or not isinstance(data, dict) or not _any_sealed(data):
            return envelope
        subject = UUID(str(envelope["aggregate_id"]))
        if self.withhold:
            withheld: dict[str, Any] = orjson.loads(orjson.dumps(envelope))
            open_envelope(_Withheld(), withheld)
            return withheld
        async with self.pool.connection() as conn:
            row = await (await conn.execute(self.query, (subject,))).fetchone()
        key = None if row is None else _column(row)
        opened: dict[str, Any] = orjson.loads(orjson.dumps(envelope))
        open_envelope(KnownKeys({subject: None if key is None else bytes(key)}), opened)
        return opened


class _Withheld(PersonalCipher):
    def seal(self, subject: UUID, value: Any) -> str:
        raise TypeError("subscribers never seal personal data")

    def open(self, subject: UUID, token: str) -> Any:
        return WITHHELD


def _column(row: Any) -> Any:
    return row["key"] if isinstance(row, dict) else row[0]


def _any_sealed(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_any_sealed(v) for v in value.values())
    return is_sealed(value)


class OpeningConnector(Connector):
    """Wraps a target's connector: it receives envelopes with personal fields opened."""

    def __init__(self, inner: Connector, opener: EnvelopeOpener) -> None:
        self.inner = inner
        self.opener = opener

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        opened = await self.opener.open(envelope)
        try:
            await self.inner.deliver(opened, idempotency_key)
        except DeliveryError as failed:
            if opened is not envelope:
                _withhold_from(failed, _opened_texts(opened))
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


#: Opened texts shorter than this are not withheld from error texts (a country code says
#: nothing about the person, and replacing two letters everywhere would garble the text).
_MIN_WITHHELD = 3
#: Markers that stand in for a value and say nothing about the person.
SHOWN = (ERASED, WITHHELD)


def _opened_texts(envelope: dict[str, Any]) -> list[str]:
    """Every text inside the envelope's opened personal fields, longest first."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= _MIN_WITHHELD and value not in SHOWN:
            found.append(value)

    for path in envelope_paths(envelope):
        node: Any = envelope
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        walk(node)
    return sorted(set(found), key=len, reverse=True)


def _withhold_from(failed: DeliveryError, texts: list[str]) -> None:
    """Replace the opened personal values in a target's error text (stored with a dead
    letter or a hold, and logged) by ``[withheld]``: a target often quotes what it refused,
    and that text would otherwise keep the person in clear past the erasure."""
    message = failed.message
    for text in texts:
        message = message.replace(text, WITHHELD)
    if message != failed.message:
        failed.message = message
        failed.args = (message, *failed.args[1:])
