"""Contract amendments with a future effective date are scheduled changes.

The state of a business date shows the items in force that day; today's state does not show
tomorrow's price. Stamps in these tests are recorded on 2026-01-15 (``T0``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.base import AggregateSnapshot
from hub.domain.contract import Contract, ItemChange

from .stamps import T0, replay, stamp
from .test_contract import active_contract

TODAY = T0.date()


def price(contract: Contract, sku: str = "SEAT") -> Decimal:
    return next(i.unit_price for i in contract.items if i.sku == sku)


def test_a_future_amendment_is_scheduled_not_in_force() -> None:
    contract = active_contract()
    tomorrow = TODAY + timedelta(days=1)
    contract.amend(stamp("billing"), [ItemChange(sku="SEAT", unit_price=Decimal(25))], tomorrow)
    assert price(contract) == 20  # today's state: today's price
    assert [c.effective_date for c in contract.scheduled_changes] == [tomorrow]
    assert price(contract.on_business_date(TODAY)) == 20
    on_the_day = contract.on_business_date(tomorrow)
    assert price(on_the_day) == 25 and on_the_day.scheduled_changes == []
    assert price(contract) == 20  # the view is a copy
    rebuilt = replay(contract.collect_events())
    assert isinstance(rebuilt, Contract)
    assert rebuilt.state() == contract.state()
    snapshot = AggregateSnapshot.take(rebuilt).mutate(None)
    assert snapshot.state() == contract.state()


def test_an_amendment_in_force_today_applies_at_once() -> None:
    contract = active_contract()
    contract.amend(stamp("billing"), [ItemChange(sku="SEAT", unit_price=Decimal(22))], TODAY)
    assert price(contract) == 22 and contract.scheduled_changes == []
    past = TODAY - timedelta(days=5)
    contract.amend(stamp("billing"), [ItemChange(sku="SEAT", quantity=Decimal(3))], past)
    assert next(i.quantity for i in contract.items if i.sku == "SEAT") == 3


def test_a_scheduled_change_comes_into_force_when_a_later_amendment_is_recorded() -> None:
    contract = active_contract()
    soon = TODAY + timedelta(days=10)
    contract.amend(stamp("billing"), [ItemChange(sku="SEAT", unit_price=Decimal(25))], soon)
    later = stamp("billing", minutes=60 * 24 * 20)  # recorded 20 days on
    contract.amend(later, [ItemChange(sku="SEAT", quantity=Decimal(4))], later.recorded_at.date())
    assert price(contract) == 25 and contract.scheduled_changes == []


changes = st.lists(
    st.tuples(st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=999)),
    min_size=1,
    max_size=8,
)


@given(changes, st.integers(min_value=0, max_value=320))
def test_the_price_on_a_day_is_the_latest_change_in_force(
    scheduled: list[tuple[int, int]], day_offset: int
) -> None:
    """Model: the change with the latest effective date on or before the day wins (among
    equal dates, the one recorded last); with none, the created price."""
    contract = active_contract()
    for offset, new_price in scheduled:
        contract.amend(
            stamp("billing"),
            [ItemChange(sku="SEAT", unit_price=Decimal(new_price))],
            TODAY + timedelta(days=offset),
        )
    day = TODAY + timedelta(days=day_offset)
    in_force = [(o, n) for n, (o, p) in enumerate(scheduled) if o <= day_offset]
    expected = Decimal(20)
    if in_force:
        latest = max(in_force)
        expected = Decimal(scheduled[latest[1]][1])
    assert price(contract.on_business_date(day)) == expected
    assert price(contract) == 20
    assert all(c.effective_date > day for c in contract.on_business_date(day).scheduled_changes)


def test_a_business_date_before_an_amendment_in_force_shows_the_earlier_items() -> None:
    contract = active_contract()
    backdated = TODAY - timedelta(days=5)
    contract.amend(stamp("billing"), [ItemChange(sku="SEAT", unit_price=Decimal(22))], backdated)
    assert price(contract) == 22
    assert price(contract.on_business_date(backdated - timedelta(days=1))) == 20
    assert price(contract.on_business_date(backdated)) == 22
    rebuilt = replay(contract.collect_events())
    assert isinstance(rebuilt, Contract)
    assert price(rebuilt.on_business_date(backdated - timedelta(days=1))) == 20


@given(changes, st.integers(min_value=-20, max_value=320), st.integers(min_value=0, max_value=14))
def test_any_business_date_shows_the_latest_change_effective_by_then(
    amendments: list[tuple[int, int]], day_offset: int, shift: int
) -> None:
    """Amendments effective before, on or after the day they are recorded (``shift`` days
    back-dates them all), each on its own SKU price: the latest effective by the day wins."""
    contract = active_contract()
    for offset, new_price in amendments:
        contract.amend(
            stamp("billing"),
            [ItemChange(sku="SEAT", unit_price=Decimal(new_price))],
            TODAY + timedelta(days=offset - shift),
        )
    day = TODAY + timedelta(days=day_offset)
    in_force = [(o - shift, n) for n, (o, _) in enumerate(amendments) if o - shift <= day_offset]
    expected = Decimal(amendments[max(in_force)[1]][1]) if in_force else Decimal(20)
    assert price(contract.on_business_date(day)) == expected
