"""Order aggregate: an amendment after the ERP accepted the order needs its acceptance again."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from hub.domain.order import ChargeType, Order, OrderLine, OrderStatus

from .stamps import D0, replay, stamp, uid

LINE = OrderLine(
    sku="PLAT-1", quantity=Decimal(2), unit_price=Decimal("50.00"), charge_type=ChargeType.RECURRING
)


def placed() -> Order:
    return Order.place(
        stamp("crm"),
        uid("order"),
        customer_id=uid("customer"),
        lines=[LINE],
        currency="USD",
        term_months=12,
        start_date=D0,
        booking_date=D0,
    )


def accepted() -> Order:
    order = placed()
    order.validate_order(stamp("hub"))
    order.accept(stamp("erp"), "SO-1")
    return order


quantities = st.integers(min_value=1, max_value=10_000).map(Decimal)


@given(quantities)
def test_amending_an_accepted_order_returns_it_to_awaiting_erp_acceptance(qty: Decimal) -> None:
    order = accepted()
    order.amend(stamp("crm"), [LINE.model_copy(update={"quantity": qty})])
    assert order.status is OrderStatus.PLACED
    assert order.erp_order_number == "SO-1"  # the ERP's document still exists
    rebuilt = replay(order.collect_events())
    assert isinstance(rebuilt, Order)
    assert rebuilt.status is OrderStatus.PLACED
    order.accept(stamp("erp"), "SO-1")
    assert order.status is OrderStatus.ACCEPTED


def test_amending_before_acceptance_keeps_the_status() -> None:
    order = placed()
    order.validate_order(stamp("hub"))
    order.amend(stamp("crm"), [LINE.model_copy(update={"quantity": Decimal(3)})])
    assert order.status is OrderStatus.VALIDATED


def test_orders_amended_before_the_rule_replay_as_they_were() -> None:
    """An OrderAmended stored before this rule carries no ``reopened`` flag: it stays accepted."""
    order = accepted()
    order.amend(stamp("crm"), [LINE])
    events = order.collect_events()
    data = events[-1].model_dump(mode="json")
    data.pop("reopened")
    legacy = type(events[-1]).model_validate(data)
    rebuilt = replay([*events[:-1], legacy])
    assert isinstance(rebuilt, Order)
    assert rebuilt.status is OrderStatus.ACCEPTED
