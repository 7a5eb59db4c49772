"""Contract aggregate: subscription lifecycle, amendments, usage, and long-stream snapshots."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from hub.application.contracts import SPECS, CreateContract
from hub.application.unit import Unit
from hub.domain.base import AggregateSnapshot, DomainEvent
from hub.domain.contract import (
    BillingPeriod,
    Contract,
    ContractItem,
    ContractStatus,
    ItemChange,
)
from hub.domain.customer import Customer
from hub.domain.errors import (
    CurrencyMismatch,
    DomainError,
    InvalidTransition,
    InvalidValue,
    NotFound,
)
from hub.domain.order import ChargeType, Order, OrderLine

from .stamps import MemoryStore, replay, stamp, uid

START, END = date(2026, 1, 1), date(2026, 12, 31)
SEATS = ContractItem(
    sku="SEAT",
    rate_plan="pro-monthly",
    quantity=Decimal(10),
    unit_price=Decimal("20.00"),
    billing_period=BillingPeriod.MONTH,
    charge_type=ChargeType.RECURRING,
)
CALLS = ContractItem(
    sku="API-CALL",
    rate_plan="metered",
    quantity=Decimal(0),
    unit_price=Decimal("0.0004"),
    billing_period=BillingPeriod.MONTH,
    charge_type=ChargeType.USAGE,
)


def new_contract(items: list[ContractItem] | None = None, **fields: Any) -> Contract:
    values: dict[str, Any] = {
        "order_id": uid("order"),
        "customer_id": uid("customer"),
        "items": [SEATS, CALLS] if items is None else items,
        "currency": "USD",
        "term_start": START,
        "term_end": END,
    } | fields
    return Contract.create(stamp("billing"), uid("contract"), **values)


def active_contract() -> Contract:
    contract = new_contract()
    contract.activate(stamp("billing"), "sub_123")
    return contract


def refused(error: type[DomainError], field: str | None, command: Any) -> None:
    with pytest.raises(error) as caught:
        command()
    assert caught.value.field == field


def test_create_and_activate() -> None:
    contract = new_contract()
    assert (contract.status, contract.version) == (ContractStatus.PENDING, 1)
    contract.activate(stamp("billing"), "sub_123")
    assert contract.status is ContractStatus.ACTIVE
    assert contract.billing_subscription_id == "sub_123"
    refused(InvalidTransition, "status", lambda: contract.activate(stamp(), "sub_9"))
    refused(InvalidValue, "billing_subscription_id", lambda: new_contract().activate(stamp(), " "))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"items": []}, "items"),
        (
            {"items": [SEATS.model_copy(update={"charge_type": ChargeType.ONE_TIME})]},
            "items.0.charge_type",
        ),
        ({"items": [SEATS, CALLS, SEATS]}, "items.2.sku"),
        ({"items": [SEATS.model_copy(update={"quantity": Decimal(0)})]}, "items.0.quantity"),
        ({"term_end": START}, "term_end"),
        ({"currency": "ABC"}, "currency"),
    ],
)
def test_create_refusals(kwargs: dict[str, Any], field: str) -> None:
    items = kwargs.pop("items", None)
    refused(InvalidValue, field, lambda: new_contract(items, **kwargs))


def test_amend_changes_items_from_an_effective_date() -> None:
    contract = active_contract()
    contract.amend(
        stamp("billing"),
        [
            ItemChange(sku="SEAT", quantity=Decimal(15)),
            ItemChange(sku="API-CALL", unit_price=Decimal("0.0003"), rate_plan="metered-v2"),
        ],
        date(2026, 3, 1),
    )
    assert contract.items == [SEATS, CALLS]  # recorded on 15 January: scheduled for March
    seats, calls = contract.on_business_date(date(2026, 3, 1)).items
    assert (seats.quantity, seats.unit_price) == (Decimal(15), Decimal("20.00"))
    assert (calls.unit_price, calls.rate_plan) == (Decimal("0.0003"), "metered-v2")
    assert (contract.amendments, contract.last_amendment_date) == (1, date(2026, 3, 1))


@pytest.mark.parametrize(
    ("changes", "effective", "field"),
    [
        ([], date(2026, 2, 1), "changes"),
        ([ItemChange(sku="NOPE", quantity=Decimal(1))], date(2026, 2, 1), "changes.0.sku"),
        (
            [
                ItemChange(sku="SEAT", quantity=Decimal(1)),
                ItemChange(sku="SEAT", quantity=Decimal(2)),
            ],
            date(2026, 2, 1),
            "changes.1.sku",
        ),
        ([ItemChange(sku="SEAT")], date(2026, 2, 1), "changes.0"),
        ([ItemChange(sku="SEAT", quantity=Decimal(0))], date(2026, 2, 1), "changes.0.quantity"),
        ([ItemChange(sku="SEAT", quantity=Decimal(5))], date(2027, 2, 1), "effective_date"),
    ],
)
def test_amend_refusals(changes: list[ItemChange], effective: date, field: str) -> None:
    contract = active_contract()
    refused(InvalidValue, field, lambda: contract.amend(stamp(), changes, effective))
    assert contract.version == 2


def test_usage_item_may_be_amended_to_zero_quantity() -> None:
    contract = active_contract()
    contract.amend(stamp(), [ItemChange(sku="API-CALL", quantity=Decimal(0))], START)
    assert contract.amendments == 1


def test_renew_suspend_resume() -> None:
    contract = new_contract()
    refused(InvalidTransition, "status", lambda: contract.renew(stamp(), date(2027, 12, 31)))
    refused(InvalidTransition, "status", lambda: contract.suspend(stamp(), START))
    contract.activate(stamp(), "sub_1")
    refused(InvalidValue, "new_term_end", lambda: contract.renew(stamp(), END))
    contract.renew(stamp(), date(2027, 12, 31))
    assert (contract.term_end, contract.renewals) == (date(2027, 12, 31), 1)
    refused(InvalidTransition, "status", lambda: contract.resume(stamp(), START))
    contract.suspend(stamp(), date(2026, 6, 1))
    assert (contract.status, contract.suspended_on) == (ContractStatus.SUSPENDED, date(2026, 6, 1))
    refused(InvalidTransition, "status", lambda: contract.suspend(stamp(), date(2026, 7, 1)))
    refused(InvalidValue, "effective_date", lambda: contract.resume(stamp(), date(2026, 5, 1)))
    contract.resume(stamp(), date(2026, 7, 1))
    assert (contract.status, contract.suspended_on) == (ContractStatus.ACTIVE, None)
    refused(InvalidValue, "effective_date", lambda: contract.suspend(stamp(), date(2025, 1, 1)))


def test_nothing_but_reads_after_cancel() -> None:
    contract = active_contract()
    refused(InvalidValue, "effective_date", lambda: contract.cancel(stamp(), date(2030, 1, 1)))
    contract.cancel(stamp(), date(2026, 9, 30), "churned")
    assert contract.status is ContractStatus.CANCELLED
    assert (contract.cancellation_date, contract.cancellation_reason) == (
        date(2026, 9, 30),
        "churned",
    )
    before = contract.state()
    commands = [
        lambda: contract.amend(stamp(), [ItemChange(sku="SEAT", quantity=Decimal(1))], START),
        lambda: contract.renew(stamp(), date(2027, 12, 31)),
        lambda: contract.suspend(stamp(), START),
        lambda: contract.resume(stamp(), START),
        lambda: contract.cancel(stamp(), START),
        lambda: contract.activate(stamp(), "sub_2"),
        lambda: contract.record_usage(
            stamp(), sku="API-CALL", quantity=Decimal(1), period_start=START, period_end=START
        ),
    ]
    for command in commands:
        refused(InvalidTransition, "status", command)
    assert contract.state() == before


def test_record_usage_keeps_running_totals() -> None:
    contract = active_contract()
    for day in range(1, 4):
        contract.record_usage(
            stamp(),
            sku="API-CALL",
            quantity=Decimal("1000.5"),
            period_start=date(2026, 1, day),
            period_end=date(2026, 1, day),
        )
    assert contract.usage_totals == {"API-CALL": Decimal("3001.5")}
    assert contract.usage_records == 3
    contract.suspend(stamp(), date(2026, 2, 1))
    contract.record_usage(  # late usage for the period before the suspension
        stamp(), sku="API-CALL", quantity=Decimal(1), period_start=START, period_end=START
    )
    assert contract.usage_records == 4


@pytest.mark.parametrize(
    ("usage", "field"),
    [
        ({"sku": "NOPE"}, "sku"),
        ({"sku": "SEAT"}, "sku"),
        ({"quantity": Decimal(0)}, "quantity"),
        ({"period_end": date(2025, 12, 31)}, "period_end"),
        ({"period_start": date(2025, 12, 1), "period_end": START}, "period_start"),
        ({"period_end": date(2027, 1, 1)}, "period_end"),
    ],
)
def test_record_usage_refusals(usage: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {
        "sku": "API-CALL",
        "quantity": Decimal(1),
        "period_start": START,
        "period_end": START,
    } | usage
    contract = active_contract()
    refused(InvalidValue, field, lambda: contract.record_usage(stamp(), **values))


def test_usage_is_refused_before_activation() -> None:
    refused(
        InvalidTransition,
        "status",
        lambda: new_contract().record_usage(
            stamp(), sku="API-CALL", quantity=Decimal(1), period_start=START, period_end=START
        ),
    )


def test_long_stream_snapshot_round_trips() -> None:
    contract = active_contract()
    for n in range(200):
        contract.record_usage(
            stamp(), sku="API-CALL", quantity=Decimal(n + 1), period_start=START, period_end=START
        )
        if n % 20 == 0:
            contract.amend(stamp(), [ItemChange(sku="SEAT", quantity=Decimal(10 + n))], START)
    events = contract.collect_events()
    snapshot = AggregateSnapshot.take(contract)
    stored = AggregateSnapshot.model_validate_json(snapshot.model_dump_json())
    restored = stored.mutate(None)
    assert restored.state() == contract.state()
    assert isinstance(restored, Contract) and restored.usage_totals["API-CALL"] == Decimal(20100)
    assert replay(events).state() == contract.state()


# -- command spec -------------------------------------------------------------------------


def _order(**fields: Any) -> Order:
    values: dict[str, Any] = {
        "customer_id": uid("customer"),
        "currency": "USD",
        "term_months": 12,
        "start_date": START,
        "booking_date": START,
        "lines": [
            OrderLine(
                sku="SEAT",
                quantity=Decimal(10),
                unit_price=Decimal(20),
                charge_type=ChargeType.RECURRING,
            )
        ],
    } | fields
    return Order.place(stamp(), uid("order"), **values)


def _create(unit: Unit, stamp_system: str = "hub", **fields: Any) -> Any:
    spec = next(s for s in SPECS if s.name == "create")
    assert spec.create is not None
    values: dict[str, Any] = {
        "order_id": uid("order"),
        "customer_id": uid("customer"),
        "items": [SEATS],
        "currency": "USD",
        "term_start": START,
        "term_end": END,
    } | fields
    return spec.create(stamp(stamp_system), uid("contract"), CreateContract(**values), unit)


def test_create_spec_checks_the_order() -> None:
    customer = Customer.register(stamp(), uid("customer"), legal_name="Acme")
    other = Customer.register(stamp(), uid("other"), legal_name="Other")
    with pytest.raises(NotFound) as missing:
        _create(Unit(MemoryStore(customer)))
    assert missing.value.field == "order_id"
    store = MemoryStore(customer, other, _order())
    refused(InvalidValue, "customer_id", lambda: _create(Unit(store), customer_id=other.id))
    refused(CurrencyMismatch, "currency", lambda: _create(Unit(store), currency="EUR"))
    cancelled = _order()
    cancelled.cancel(stamp(), "lost")
    refused(InvalidTransition, "order_id", lambda: _create(Unit(MemoryStore(customer, cancelled))))
    contract = _create(Unit(store))
    assert isinstance(contract, Contract) and contract.order_id == uid("order")


# -- stateful: any sequence of commands keeps the contract's invariants --------------------

DAYS = st.integers(min_value=-30, max_value=400)


class ContractMachine(RuleBasedStateMachine):
    contract: Contract
    events: list[DomainEvent]
    cancelled_state: dict[str, Any] | None

    @initialize(activate=st.booleans())
    def start(self, activate: bool) -> None:
        self.contract = new_contract()
        self.events = self.contract.collect_events()
        self.cancelled_state = None
        if activate:
            self.run(lambda: self.contract.activate(stamp(), "sub_1"))

    def run(self, command: Any) -> None:
        """Run a command: a refusal changes nothing; a success records exactly one event."""
        before, version = self.contract.state(), self.contract.version
        try:
            command()
        except DomainError as refused_by:
            event(f"refused: {type(refused_by).__name__}")
            assert self.contract.state() == before
            assert self.contract.pending_events == []
            return
        new = self.contract.collect_events()
        assert len(new) == 1
        event(f"accepted: {type(new[0]).__name__}")
        assert self.contract.version == version + 1 == new[0].originator_version
        self.events += new
        if self.contract.status is ContractStatus.CANCELLED and self.cancelled_state is None:
            self.cancelled_state = self.contract.state()

    def day(self, offset: int) -> date:
        return START + timedelta(days=offset)

    @rule()
    def activate(self) -> None:
        self.run(lambda: self.contract.activate(stamp(), "sub_1"))

    @rule(
        sku=st.sampled_from(["SEAT", "API-CALL", "NOPE"]),
        quantity=st.none() | st.integers(0, 50).map(Decimal),
        price=st.none() | st.integers(0, 5000).map(lambda c: Decimal(c).scaleb(-2)),
        offset=DAYS,
    )
    def amend(self, sku: str, quantity: Decimal | None, price: Decimal | None, offset: int) -> None:
        change = ItemChange(sku=sku, quantity=quantity, unit_price=price)
        self.run(lambda: self.contract.amend(stamp(), [change], self.day(offset)))

    @rule(extra=st.integers(-30, 400))
    def renew(self, extra: int) -> None:
        end = self.contract.term_end + timedelta(days=extra)
        self.run(lambda: self.contract.renew(stamp(), end))

    @rule(offset=DAYS)
    def suspend(self, offset: int) -> None:
        self.run(lambda: self.contract.suspend(stamp(), self.day(offset)))

    @precondition(lambda self: self.contract.status is ContractStatus.SUSPENDED)
    @rule(delta=st.integers(-5, 90))
    def resume(self, delta: int) -> None:
        since = self.contract.suspended_on or START
        self.run(lambda: self.contract.resume(stamp(), since + timedelta(days=delta)))

    @rule(offset=DAYS, now=st.integers(0, 3))
    def cancel(self, offset: int, now: int) -> None:
        if now:  # cancel one time in four, so long sequences before it get explored too
            return
        self.run(lambda: self.contract.cancel(stamp(), self.day(offset)))

    @rule(quantity=st.integers(1, 10**6).map(Decimal), offset=DAYS)
    def record_usage(self, quantity: Decimal, offset: int) -> None:
        day = self.day(offset)
        self.run(
            lambda: self.contract.record_usage(
                stamp(), sku="API-CALL", quantity=quantity, period_start=day, period_end=day
            )
        )

    @invariant()
    def nothing_changes_after_cancel(self) -> None:
        if self.cancelled_state is not None:
            assert self.contract.state() == self.cancelled_state

    @invariant()
    def one_version_per_event(self) -> None:
        assert [e.originator_version for e in self.events] == list(
            range(1, self.contract.version + 1)
        )

    @invariant()
    def replay_rebuilds_the_same_state(self) -> None:
        assert replay(self.events).state() == self.contract.state()

    @invariant()
    def items_keep_their_rules(self) -> None:
        for item in self.contract.items:
            if item.charge_type is ChargeType.RECURRING:
                assert item.quantity > 0


ContractMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None
)
TestContractMachine = ContractMachine.TestCase
