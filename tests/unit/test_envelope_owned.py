"""An envelope built from a state the caller gives away (the runner's freshly decoded rows)
is the envelope built from a borrowed one, which stays untouched."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from eventsourcing.utils import get_topic

from hub.application.views import envelope
from hub.domain.customer import Customer
from tests.unit.stamps import stamp, uid


def _stored() -> list[tuple[str, int, dict[str, Any]]]:
    customer = Customer.register(stamp(), uid("owned"), legal_name="Owned Ltd", currency="EUR")
    customer.assign_number(stamp(), "C-0042")
    stored = []
    for event in customer.collect_events():
        state = orjson.loads(orjson.dumps(event.model_dump(mode="json")))
        state["class_version"] = type(event).class_version  # as the mapper stores it
        stored.append((get_topic(type(event)), event.originator_version, state))
    return stored


def test_an_owned_state_gives_the_same_envelope_and_a_borrowed_one_is_untouched() -> None:
    for topic, version, state in _stored():
        borrowed = copy.deepcopy(state)
        lent = envelope("customer", topic, uid("owned"), version, borrowed)
        assert borrowed == state  # never changed
        given = envelope("customer", topic, uid("owned"), version, copy.deepcopy(state), owned=True)
        assert given == lent
        assert "timestamp" not in given["data"] and "provenance" not in given["data"]
        assert given["data"] and given["recorded_at"] == state["timestamp"]
