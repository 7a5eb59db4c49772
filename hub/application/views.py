"""Query results: plain dicts shaped for JSON, never aggregates.

The event envelope here is the same one the NATS relay publishes, so what an auditor sees
over HTTP and what a subscriber receives agree field for field.
"""

from __future__ import annotations

from typing import Any

from hub.domain.base import Aggregate, DomainEvent


def event_envelope(entity: str, event: DomainEvent) -> dict[str, Any]:
    """One event with its provenance, as published and as listed in histories."""
    return {
        "event_id": str(event.event_id),
        "type": event.type_name(),
        "schema_version": type(event).class_version,
        "aggregate": entity,
        "aggregate_id": str(event.originator_id),
        "version": event.originator_version,
        "recorded_at": event.timestamp.isoformat(),
        "occurred_at": (
            event.provenance.occurred_at.isoformat() if event.provenance.occurred_at else None
        ),
        "provenance": event.provenance.model_dump(mode="json"),
        "data": event.data(),
    }


def aggregate_view(aggregate: Aggregate) -> dict[str, Any]:
    """Current (or as-of) state of an aggregate with its id and version on top."""
    state = aggregate.state()
    return {
        "id": state.pop("id"),
        "entity": aggregate.entity,
        "version": state.pop("version"),
        "created_at": state.pop("created_on"),
        "modified_at": state.pop("modified_on"),
        "state": state,
    }
