"""Event versioning: a stored v1 ``CustomerRegistered`` reads back as the v2 class."""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from adapters.postgres.mapper import OrjsonTranscoder, PydanticMapper
from hub.application.upcast import upcast
from hub.domain.customer import Customer, CustomerRegistered

from .stamps import T0, stamp, uid


def v1_state() -> dict[str, Any]:
    """What version 1 stored: a single ``name``, no ``display_name``, no ``class_version``."""
    return {
        "timestamp": T0.isoformat(),
        "provenance": stamp("crm").provenance.model_dump(mode="json"),
        "name": "Acme Corporation",
        "web_domain": "acme.com",
        "tax_id": None,
        "billing_address": None,
        "currency": "USD",
        "parent_customer_id": None,
    }


def test_upcast_fills_legal_and_display_name() -> None:
    state = upcast(CustomerRegistered, v1_state())
    event = CustomerRegistered(originator_id=uid("acme"), originator_version=1, **state)
    assert event.legal_name == event.display_name == "Acme Corporation"
    customer = event.mutate(None)
    assert isinstance(customer, Customer)
    assert (customer.legal_name, customer.web_domain) == ("Acme Corporation", "acme.com")


def test_current_events_are_left_alone() -> None:
    customer = Customer.register(stamp(), uid("acme"), legal_name="Acme", display_name="ACME")
    (event,) = customer.collect_events()
    state = event.model_dump(mode="json", exclude={"originator_id", "originator_version"})
    state["class_version"] = 2
    assert upcast(CustomerRegistered, state)["display_name"] == "ACME"


def test_mapper_reads_a_stored_v1_row_as_v2() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    stored = StoredEvent(
        originator_id=uid("acme"),
        originator_version=1,
        topic=get_topic(CustomerRegistered),
        state=orjson.dumps(v1_state()),
    )
    event = mapper.to_domain_event(stored)
    assert isinstance(event, CustomerRegistered)
    assert event.display_name == "Acme Corporation"
    again = mapper.to_stored_event(event)
    assert orjson.loads(again.state)["class_version"] == 2
