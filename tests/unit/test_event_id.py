"""The hand-computed event id is exactly ``uuid5`` of the store key (ids are public)."""

from __future__ import annotations

from uuid import UUID, uuid5

from hypothesis import given
from hypothesis import strategies as st

from hub.application.views import event_id
from hub.domain.base import EVENT_NAMESPACE


@given(st.uuids(), st.integers(min_value=1, max_value=10**12))
def test_event_id_is_uuid5_of_aggregate_and_version(aggregate: UUID, version: int) -> None:
    expected = str(uuid5(EVENT_NAMESPACE, f"{aggregate}:{version}"))
    assert event_id(aggregate, version) == expected
    assert event_id(str(aggregate), version) == expected
