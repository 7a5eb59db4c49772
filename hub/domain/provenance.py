"""Provenance: where every event came from.

Auditors follow a transaction from opportunity to cash by these fields, and inbound
deduplication keys on ``source_event_id``; so every event carries a complete copy rather
than a reference that could later change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from hub.domain.bounded import Reference


class System(StrEnum):
    """Systems that can cause a change. ``api`` is a direct client, ``hub`` is Concord itself."""

    CRM = "crm"
    ERP = "erp"
    BILLING = "billing"
    API = "api"
    HUB = "hub"


class Provenance(BaseModel):
    """Who and what caused an event, in the source's terms."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_system: System
    source_record_id: Reference | None = None
    source_event_id: Reference | None = None
    correlation_id: Reference | None = Field(
        default=None, description="The business transaction, e.g. the opportunity."
    )
    causation_id: Reference | None = Field(
        default=None, description="The event or request that caused this one."
    )
    actor: Reference = Field(description="The API client or user that acted.")
    occurred_at: datetime | None = Field(
        default=None, description="When it happened in the source system (source clock)."
    )


class Stamp(BaseModel):
    """What a command brings besides its payload: provenance and the hub's clock reading.

    Aggregates never read a clock; ``recorded_at`` comes from the application service so a
    whole command (and a test) sees one instant.
    """

    model_config = ConfigDict(frozen=True)

    provenance: Provenance
    recorded_at: datetime
    traceparent: str | None = None
    """W3C trace context of the request that caused the change, so the trace continues
    through the store and the NATS relay to subscribers (not part of the public data)."""
