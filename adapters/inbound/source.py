"""What each source system's adapter folder provides to the inbound boundary.

A folder per system (``adapters/stripe`` and the others listed in
``adapters/inbound/registry.py``) holds its payload schemas, its verifier and its pure
translator, and exposes one :class:`SourceAdapter`. The
service does the rest the same way for every system: log, dedupe, hold, commit, release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from adapters.inbound.mirror import MirrorUpdate
from adapters.inbound.model import Known, SourceEvent, Translation


@dataclass(frozen=True)
class Incoming:
    """An HTTP delivery exactly as it arrived (the verifier needs the raw body and URL)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


class Unverified(Exception):
    """Missing, wrong or expired credentials or signature: 401, nothing stored.

    ``challenge`` is the ``WWW-Authenticate`` value for schemes that have one (HTTP Basic:
    a client that sends credentials only when challenged needs it)."""

    def __init__(self, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.challenge = challenge


class Malformed(Exception):
    """The payload is not what the system sends: 422 naming the field, nothing stored."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class SourceAdapter(Protocol):
    """One source system's way in."""

    @property
    def name(self) -> str:
        """Path segment and settings key (``stripe``)."""
        ...

    @property
    def system(self) -> str:
        """The hub's system category it speaks for (crm / erp / billing): ownership and the
        cross-reference use it."""
        ...

    def verify(self, incoming: Incoming, secrets: Sequence[str]) -> str:
        """Check the delivery's credentials against any of ``secrets`` (several during a
        rotation); answer how it was verified (stored in the log), or raise Unverified."""
        ...

    def split(self, incoming: Incoming) -> list[SourceEvent]:
        """The source events in the (verified) body, or raise Malformed."""
        ...

    def mirror(self, event: SourceEvent) -> MirrorUpdate | Sequence[MirrorUpdate] | None:
        """For sources that send only changed fields: the fields this event reports, merged
        into the record's mirror before :meth:`translate` runs (None: no mirror). Several
        updates when one event speaks of several records (a HubSpot association change
        names both ends) or also maintains an index (a Salesforce line item names its
        opportunity only on CREATE, so the opportunity's list of lines is a mirror too)."""
        ...

    def translate(self, event: SourceEvent, known: Known) -> Translation:
        """Pure: what the event means for the hub. Raise Malformed for a payload whose
        shape is wrong for its type."""
        ...


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: Any, where: str) -> M:
    """Validate ``data`` as ``model``; a mismatch is Malformed naming the dotted field
    (``body.data.object.lines.data.0.amount``), so the source's engineer sees where."""
    try:
        return model.model_validate(data)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        field = f"{where}.{path}" if path else where
        raise Malformed(f"{field}: {first.get('msg', 'invalid')}", field) from None
