"""Storing pydantic events: orjson bytes, with class-version upcasting.

The library's documented pydantic mapper drops ``class_version`` upcasting (eventsourcing
issue #302); this one keeps it: a stored v1 event is passed through ``upcast_v1_v2`` ... on
the way out, so old history reads as the current event class. The upcasting steps live on
the event classes (``hub``); storing them, topics included, is this adapter's business.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

from hub.application.personal import PersonalCipher, open_state, paths_of, seal_state
from hub.application.upcast import upcast


class OrjsonTranscoder(Transcoder):
    """JSON via orjson: several times faster than the stdlib encoder the library defaults to."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[UUID]):
    """Maps pydantic domain events and snapshots to stored events and back."""

    #: Seals personal fields; set by the composition root (without it they stay in clear,
    #: which only tools and tests that build a bare store do).
    personal: PersonalCipher | None = None

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        if not isinstance(domain_event, BaseModel):
            raise TypeError(f"{type(domain_event).__name__} is not a pydantic event")
        state = domain_event.model_dump(mode="json")
        state.pop("originator_id")
        state.pop("originator_version")
        if self.personal is not None:
            paths = paths_of(type(domain_event), state)
            if paths:
                if domain_event.originator_version == 1:
                    self.personal.new_subject(domain_event.originator_id)
                seal_state(self.personal, domain_event.originator_id, paths, state)
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        data = self.transcoder.encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=data,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        data = stored_event.state
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        cls = resolve_topic(stored_event.topic)
        decoded = self.transcoder.decode(data)
        if self.personal is not None:
            paths = paths_of(cls, decoded)
            if paths:
                subject = UUID(str(stored_event.originator_id))
                open_state(self.personal, subject, paths, decoded)
        state = upcast(cls, decoded)
        event: DomainEventProtocol[UUID] = cls(
            originator_id=stored_event.originator_id,
            originator_version=stored_event.originator_version,
            **state,
        )
        return event
