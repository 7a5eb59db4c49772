"""Sealing a person's data inside stored and published JSON (crypto-shredding), without I/O.

Why field by field rather than the whole event: amounts, dates, ids and types must stay
readable after an erasure (finance records are kept, projections and audits use them), and
the relay publishes stored bytes as they are, so a sealed field stays sealed on NATS too.

Which fields are personal is declared by the domain (``personal_fields`` on event and
aggregate classes, dotted paths into their JSON state). Each value is sealed with the key of
its *subject* (the aggregate it belongs to) by a :class:`PersonalCipher`, implemented at the
persistence boundary (``adapters.postgres.personal_keys``: AES-256-GCM, keys in PostgreSQL).
Erasure destroys the subject's key, so every copy of every sealed value (events, snapshots,
receipts, published messages, dead letters, parked envelopes) reads as :data:`ERASED` at once.
"""

from __future__ import annotations

import copy
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.utils import resolve_topic

from hub.domain.base import AggregateSnapshot
from hub.domain.catalog import AGGREGATES, EVENTS_BY_NAME
from hub.domain.customer import ERASED
from hub.domain.errors import InvalidValue

#: Prefix of a sealed value (a string in the JSON, whatever the field's own type).
SEALED = "pii:v1:"
#: What a conflict record keeps of a personal value the caller tried to write.
WITHHELD = "[withheld]"


class PersonalCipher(ABC):
    """Seals and opens one JSON value for one subject (whose key it looks up or creates)."""

    def new_subject(self, subject: UUID) -> None:  # noqa: B027 - optional hint, no-op default
        """The subject's first event is being sealed (a key can be made without a lookup)."""

    @abstractmethod
    def seal(self, subject: UUID, value: Any) -> str:
        """The value, encrypted with the subject's key, as a string starting with SEALED.
        Raises when the subject's key was destroyed (nothing personal may be written then)."""

    @abstractmethod
    def open(self, subject: UUID, token: str) -> Any:
        """The value sealed in ``token``, or :data:`ERASED` when the key is gone."""


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(SEALED)


def paths_of(cls: type[Any], state: dict[str, Any]) -> tuple[str, ...]:
    """Personal paths of a stored state; a snapshot's are its aggregate's, under ``state``."""
    if cls is AggregateSnapshot:
        topic = state.get("topic")
        if not isinstance(topic, str):
            return ()
        fields: tuple[str, ...] = getattr(resolve_topic(topic), "personal_fields", ())
        return tuple(f"state.{f}" for f in fields)
    return tuple(getattr(cls, "personal_fields", ()))


@functools.cache
def _split(paths: tuple[str, ...]) -> tuple[tuple[tuple[str, ...], str], ...]:
    return tuple((tuple(p.split(".")[:-1]), p.rpartition(".")[2]) for p in paths)


def _rewrite(state: dict[str, Any], paths: tuple[str, ...], change: Callable[[Any], Any]) -> None:
    """Replace the value at each dotted path (where present) by ``change(value)``, in place."""
    for parents, leaf in _split(paths):
        node: Any = state
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = change(node[leaf])


def seal_state(
    cipher: PersonalCipher, subject: UUID, paths: tuple[str, ...], state: dict[str, Any]
) -> None:
    """Seal the personal values of ``state`` in place; nulls and erased markers stay as
    they are (they say nothing about the person, and an erased subject has no key)."""

    def seal(value: Any) -> Any:
        if value is None or value == ERASED or is_sealed(value):
            return value
        return cipher.seal(subject, value)

    _rewrite(state, paths, seal)


def open_state(
    cipher: PersonalCipher, subject: UUID, paths: tuple[str, ...], state: dict[str, Any]
) -> None:
    """Open the sealed values of ``state`` in place (:data:`ERASED` once the key is gone)."""
    _rewrite(state, paths, lambda v: cipher.open(subject, v) if is_sealed(v) else v)


def envelope_paths(envelope: dict[str, Any]) -> tuple[str, ...]:
    """Personal paths of an event envelope, under its ``data``."""
    cls = EVENTS_BY_NAME.get(str(envelope.get("type")))
    fields = () if cls is None else cls.personal_fields
    return tuple(f"data.{f}" for f in fields)


def withhold_envelope(envelope: dict[str, Any]) -> dict[str, Any]:
    """A copy of the envelope with every personal value (opened or sealed) replaced by
    :data:`WITHHELD`: for records kept outside the stores (observe-only deliveries), which
    an erasure could not reach."""
    kept = copy.deepcopy(envelope)
    _rewrite(kept, envelope_paths(kept), lambda v: v if v is None or v == ERASED else WITHHELD)
    return kept


def _subject(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _each_envelope(
    cipher: PersonalCipher, envelope: dict[str, Any], step: Callable[..., None]
) -> None:
    subject = _subject(envelope.get("aggregate_id"))
    paths = envelope_paths(envelope)
    if subject is not None and paths:
        step(cipher, subject, paths, envelope)


def seal_envelope(cipher: PersonalCipher, envelope: dict[str, Any]) -> None:
    _each_envelope(cipher, envelope, seal_state)


def open_envelope(cipher: PersonalCipher, envelope: dict[str, Any]) -> None:
    _each_envelope(cipher, envelope, open_state)


_AGGREGATE_FIELDS = {cls.entity: cls.personal_fields for cls in AGGREGATES}


def _each_view(cipher: PersonalCipher, view: dict[str, Any], step: Callable[..., None]) -> None:
    fields = _AGGREGATE_FIELDS.get(str(view.get("entity")), ())
    subject = _subject(view.get("id"))
    if fields and subject is not None and isinstance(view.get("state"), dict):
        step(cipher, subject, tuple(f"state.{f}" for f in fields), view)
    for envelope in view.get("events") or []:
        if isinstance(envelope, dict):
            _each_envelope(cipher, envelope, step)


def seal_view(cipher: PersonalCipher, view: dict[str, Any]) -> None:
    """Seal an aggregate view (a command's answer, kept as its idempotency receipt) and the
    envelopes of its events, in place."""
    _each_view(cipher, view, seal_state)


def open_view(cipher: PersonalCipher, view: dict[str, Any]) -> None:
    _each_view(cipher, view, open_state)


def withhold(entity: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A refused command's input without its personal values (for the conflicts table).

    Withheld rather than sealed: a refused create has no subject yet whose key could seal
    it, and the owning system holds the real value; the field names still say what was tried.
    """
    fields = _AGGREGATE_FIELDS.get(entity, ())
    return {k: (WITHHELD if k in fields and v is not None else v) for k, v in payload.items()}


def refuse_reserved(entity: str, payload: Any) -> None:
    """Refuse a personal input value that reads as sealed or as :data:`ERASED`.

    Why: sealing leaves such values as they are (they are taken for already sealed or
    erased), so a name sent as ``pii:v1:…`` would be stored, published and kept after the
    erasure in clear, and one sent as ``[erased]`` would pass for an erasure that never was.
    """
    for name in _AGGREGATE_FIELDS.get(entity, ()):
        value = getattr(payload, name, None)
        if is_sealed(value) or value == ERASED:
            raise InvalidValue(
                f"{name} may not start with {SEALED!r} or read {ERASED!r} (reserved markers)",
                field=name,
            )
