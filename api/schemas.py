"""Response and batch-line models, for the OpenAPI document and client generators.

Routes return the hub's JSON-ready dicts directly (see ``api.responses``); these models
describe those dicts so a generated client gets typed results. ``state`` stays an open object
because its shape is the aggregate's, documented by ``GET /v1/schemas/events``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel

from adapters.key_rules import CLIENT_ID_PATTERN
from api.errors import Problem
from hub.domain.bounded import Reference, RequiredReference, RequiredShortCode


class Provenance(BaseModel):
    source_system: str
    source_record_id: str | None = None
    source_event_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    actor: str
    occurred_at: datetime | None = None


class EventEnvelope(BaseModel):
    """One event with its provenance: the same envelope NATS subscribers receive."""

    envelope_version: int = Field(default=1, description="Version of this envelope's shape.")
    event_id: UUID
    type: str
    schema_version: int
    aggregate: str
    aggregate_id: UUID
    version: int
    recorded_at: datetime
    occurred_at: datetime | None = None
    provenance: Provenance
    data: dict[str, Any]


class AggregateView(BaseModel):
    """State of one aggregate with its id and version (the version is also the ETag)."""

    id: UUID
    entity: str
    version: int
    created_at: datetime
    modified_at: datetime
    state: dict[str, Any]


class AggregateWithRefs(AggregateView):
    external_ids: list[dict[str, str]] = Field(
        default_factory=list, description="Every system's id for this aggregate (current)."
    )


class CommandOutcome(AggregateView):
    """A command's result: the aggregate after it, and the events it recorded."""

    events: list[EventEnvelope]


class History(BaseModel):
    """One page of an aggregate's events."""

    id: UUID
    entity: str
    version: int = Field(
        description="Version of this page's last event (`after_version` of the next page)."
    )
    events: list[EventEnvelope]
    next: str | None = Field(
        default=None, description="URL of the next page; null on the last page."
    )


class LookupResult(BaseModel):
    id: UUID
    system: str
    entity: str
    external_id: str
    aggregate: AggregateView


class AggregateSummary(BaseModel):
    """One row of a list: enough to filter and sync; follow ``url`` for the state."""

    id: UUID
    entity: str
    version: int
    customer_id: UUID | None = None
    status: str | None = None
    created_at: datetime
    modified_at: datetime
    url: str


class AggregateList(BaseModel):
    items: list[AggregateSummary]
    next: str | None = Field(
        description="The next page (same filters, `cursor` set), or null on the last page."
    )


class ApiIndex(BaseModel):
    name: str
    links: dict[str, str] = Field(description="Name -> URL (templates in braces).")


class EventSchemas(RootModel[dict[str, dict[str, Any]]]):
    """Event type name -> JSON Schema of its envelope (``data`` holds the event's fields)."""


class Conflicts(BaseModel):
    items: list[dict[str, Any]]


class KeyPublic(BaseModel):
    key_id: str
    client_id: str
    system: str
    scopes: list[str]
    source: str
    created_at: str | None = None
    expires_at: str | None = Field(default=None, description="When the key stops working.")
    revoked_at: str | None = Field(default=None, description="When the key was revoked.")


class KeyList(BaseModel):
    items: list[KeyPublic]


Scope = Literal["read", "write", "admin"]


def _default_scopes() -> list[Scope]:
    return ["read", "write"]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str | None = Field(
        default=None,
        description="Unique across keys (409 if taken). Defaults to `<system>-<random>`.",
        max_length=100,
        pattern=CLIENT_ID_PATTERN,
    )
    system: Literal["crm", "erp", "billing", "admin"] = Field(
        description="The system the key acts as; your own unless yours is an admin key."
    )
    scopes: list[Scope] = Field(
        default_factory=_default_scopes,
        min_length=1,
        max_length=3,
        description="A subset of the minting key's own scopes.",
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the key stops working (future, with offset); default: never.",
    )


class CreatedKey(KeyPublic):
    key: str = Field(description="The key itself. Shown once; only its hash is stored.")


# -- batch -----------------------------------------------------------------------------


class BatchProvenance(BaseModel):
    """The ``Concord-*`` headers of a single command, as a batch line's object."""

    model_config = ConfigDict(extra="forbid")

    source_record_id: Reference | None = None
    source_event_id: Reference | None = None
    correlation_id: Reference | None = None
    causation_id: Reference | None = None
    occurred_at: AwareDatetime | None = None


class BatchLine(BaseModel):
    """One NDJSON line of ``POST /v1/batch``: a command, as it would be sent alone."""

    model_config = ConfigDict(extra="forbid")

    entity: RequiredShortCode = Field(examples=["order"])
    command: RequiredShortCode = Field(examples=["place"])
    id: UUID | None = Field(
        default=None, description="The aggregate's id: required except for creation commands."
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="The command's input, as the single endpoint's body."
    )
    provenance: BatchProvenance = Field(default_factory=BatchProvenance)
    idempotency_key: RequiredReference | None = None
    expected_version: int | None = Field(
        default=None,
        ge=0,
        le=10**18 - 1,
        description="Like If-Match: refuse the line if the version differs.",
    )


class BatchLineResult(BaseModel):
    line: int = Field(description="1-based line number in the request body.")
    status: int
    id: UUID | None = None
    version: int | None = None
    replayed: bool | None = None
    error: Problem | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchLineResult]
