"""The parts of a HubSpot Webhooks API (v3) delivery Concord reads.

A delivery is a JSON **array** of events; each names one object and, for a property change,
one property with its new value (always a string: numbers, booleans and dates arrive as
text). Extra fields are allowed: HubSpot adds fields (``changeFlag``, ``isSensitive``,
``sourceId`` …) without a new version, and a delivery must not be refused for carrying more
than Concord needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt

#: Mirror field holding the newest ``occurredAt`` merged into a record (``@``: no HubSpot
#: property name starts with it).
AS_OF = "@occurredAt"

#: HubSpot batches up to ~100 events; more than this is not a HubSpot delivery.
MAX_EVENTS = 1000


class HubSpotEvent(BaseModel):
    """One element of the array (``eventId``, ``occurredAt`` in epoch milliseconds …)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    event_id: StrictInt = Field(alias="eventId", ge=0)
    subscription_id: StrictInt = Field(0, alias="subscriptionId", ge=0)
    portal_id: StrictInt = Field(alias="portalId", ge=0)
    app_id: StrictInt | None = Field(None, alias="appId")
    occurred_at: StrictInt = Field(alias="occurredAt", ge=0, le=253402300799999)
    subscription_type: str = Field(alias="subscriptionType", min_length=1, max_length=100)
    attempt_number: StrictInt = Field(0, alias="attemptNumber", ge=0)
    object_id: StrictInt | None = Field(None, alias="objectId", ge=0)
    property_name: str | None = Field(None, alias="propertyName", max_length=500)
    property_value: str | None = Field(None, alias="propertyValue", max_length=65536)
    change_source: str | None = Field(None, alias="changeSource", max_length=100)
    source_id: str | None = Field(None, alias="sourceId", max_length=255)
    # associationChange
    association_type: str | None = Field(None, alias="associationType", max_length=100)
    association_type_id: StrictInt | None = Field(None, alias="associationTypeId")
    from_object_id: StrictInt | None = Field(None, alias="fromObjectId", ge=0)
    to_object_id: StrictInt | None = Field(None, alias="toObjectId", ge=0)
    association_removed: bool = Field(False, alias="associationRemoved")

    @property
    def object_name(self) -> str:
        """``deal`` of ``deal.propertyChange``."""
        return self.subscription_type.split(".", 1)[0]

    @property
    def change(self) -> str:
        """``propertyChange`` of ``deal.propertyChange``."""
        return self.subscription_type.partition(".")[2]

    @property
    def order(self) -> str:
        """Mirror order: HubSpot's own time of the change, then its event id (a string that
        sorts like the pair)."""
        return f"{self.occurred_at:015d}.{self.event_id:020d}"


class HubSpotDelivery(RootModel[list[HubSpotEvent]]):
    """The whole body: the batch HubSpot sends in one request."""

    root: list[HubSpotEvent] = Field(min_length=1, max_length=MAX_EVENTS)


def text(value: Any) -> str | None:
    """A property value as text, or None: HubSpot clears a property by sending ``""``."""
    if value is None:
        return None
    found = str(value).strip()
    return found or None


def as_of(*records: Mapping[str, Any]) -> datetime | None:
    """The newest HubSpot time among the mirrored records: what a command derived from them
    states is true as of then (older events must not look newer, nor newer ones stale)."""
    times = [int(r[AS_OF]) for r in records if str(r.get(AS_OF, "")).isdigit()]
    return datetime.fromtimestamp(max(times) / 1000, UTC) if times else None
