"""An older source update never overwrites a newer one; it is recorded as stale.

``occurred_at`` is the source's clock (the ``Concord-Occurred-At`` header). Updates arrive in
any order; the value that stays is the one the source said last, whatever the arrival order.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.customer import Customer, CustomerDetails, CustomerStatus
from hub.domain.order import Order, OrderStatus
from hub.domain.provenance import Provenance, Stamp, System

from .stamps import T0, replay, uid
from .test_order import LINE, placed


def at(system: str, minutes: int | None) -> Stamp:
    """A stamp recorded now whose source says it happened ``minutes`` after T0."""
    occurred = None if minutes is None else T0 + timedelta(minutes=minutes)
    return Stamp(
        provenance=Provenance(source_system=System(system), actor="t", occurred_at=occurred),
        recorded_at=T0 + timedelta(days=1),
    )


def registered(minutes: int | None = 0) -> Customer:
    return Customer.register(at("crm", minutes), uid("customer"), legal_name="Acme GmbH")


def test_an_older_detail_change_is_recorded_as_stale_and_changes_nothing() -> None:
    customer = registered()
    customer.change_details(at("crm", 10), CustomerDetails(display_name="Acme New"))
    customer.change_details(
        at("crm", 5), CustomerDetails(display_name="Acme Old", web_domain="acme.de")
    )
    assert customer.display_name == "Acme New"  # the older name did not overwrite
    assert customer.web_domain == "acme.de"  # a field nobody newer set is taken
    events = customer.collect_events()
    stale = [e for e in events if e.type_name() == "CustomerUpdateStale"]
    assert len(stale) == 1
    assert stale[0].data()["fields"] == ["display_name"]
    assert stale[0].data()["newer_occurred_at"] == {"display_name": "2026-01-15T09:40:00Z"}
    rebuilt = replay(events)
    assert rebuilt.state() == customer.state()


def test_an_update_older_than_the_registration_is_stale() -> None:
    customer = registered(30)
    customer.change_details(at("crm", 20), CustomerDetails(legal_name="Acme AG"))
    assert customer.legal_name == "Acme GmbH"


@given(st.lists(st.integers(0, 50), min_size=1, max_size=12))
def test_the_newest_source_value_wins_in_any_arrival_order(times: list[int]) -> None:
    """Each update says something new (``T<n>``); the newest by the source's clock stays
    (on a tie, the later arrival), and every older arrival is recorded as stale."""
    customer = registered()
    for index, minutes in enumerate(times):
        customer.set_payment_terms(at("erp", minutes), f"T{index}")
    newest = max(times)
    winner = max(i for i, m in enumerate(times) if m == newest)
    assert customer.payment_terms == f"T{winner}"
    assert customer.source_occurred_at["payment_terms"] == T0 + timedelta(minutes=newest)
    events = customer.collect_events()
    held = [max(times[: i + 1]) for i in range(len(times))]
    stale = [i for i, m in enumerate(times) if i and m < held[i - 1]]
    assert len([e for e in events if e.type_name() == "CustomerUpdateStale"]) == len(stale)
    rebuilt = replay(events)
    assert rebuilt.state() == customer.state()


def test_number_and_status_keep_the_newest_value() -> None:
    customer = registered()
    customer.assign_number(at("erp", 10), "C-2")
    customer.assign_number(at("erp", 9), "C-1")
    customer.change_status(at("erp", 10), CustomerStatus.ON_HOLD)
    customer.change_status(at("crm", 3), CustomerStatus.ACTIVE)
    assert (customer.customer_number, customer.status) == ("C-2", CustomerStatus.ON_HOLD)


def test_updates_without_a_source_time_always_apply() -> None:
    customer = registered()
    customer.set_payment_terms(at("erp", 10), "NET30")
    customer.set_payment_terms(at("erp", None), "NET60")
    assert customer.payment_terms == "NET60"


def test_an_older_order_amendment_is_stale() -> None:
    order: Order = placed()
    newer = LINE.model_copy(update={"quantity": Decimal(5)})
    older = LINE.model_copy(update={"quantity": Decimal(3)})
    order.amend(at("crm", 20), [newer])
    order.amend(at("crm", 10), [older])
    assert order.lines[0].quantity == 5 and order.amendments == 1
    assert order.status is OrderStatus.PLACED
    assert order.pending_events[-1].type_name() == "OrderUpdateStale"
