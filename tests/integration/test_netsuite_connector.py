"""The NetSuite connector against the served ERP sandbox: canonical events from real
aggregates become customers (parent first), sales orders, invoices and payments, exactly once
despite 429s, 5xx and timeouts; refusals are permanent and say what NetSuite said."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.connectors.budget import Budget
from adapters.connectors.hub_reader import MemoryHubReader
from adapters.connectors.port import PermanentDeliveryError, TransientDeliveryError
from adapters.netsuite.client import NetSuiteClient
from adapters.netsuite.outbound import (
    InvoiceNotInNetSuiteYet,
    NetSuiteConnector,
    netsuite_connector,
)
from adapters.sandbox.base import Running, serve_in_thread
from adapters.sandbox.erp import PREFIX, ErpSandbox
from adapters.settings import Settings
from hub.application.views import aggregate_view, event_envelope
from hub.domain.base import Aggregate
from hub.domain.contract import BillingPeriod
from hub.domain.customer import Customer, LinkedSystem
from hub.domain.invoice import Invoice, InvoiceLine
from hub.domain.money import Money
from hub.domain.order import BillingFrequency, ChargeType, Order, OrderLine
from hub.domain.payment import Payment, PaymentMethod
from hub.domain.product import Product, ProductIds, product_id
from hub.domain.provenance import Provenance, Stamp, System
from tests.unit.stamps import stamp, uid

OPP = "006OPPORTUNITY01"
ACCOUNT, PARENT_ACCOUNT = "001CHILD", "001PARENT"


class World:
    """Aggregates as the hub holds them, and the reader a connector sees them through."""

    def __init__(self) -> None:
        self.reader = MemoryHubReader()

    def keep(self, aggregate: Aggregate) -> list[dict[str, Any]]:
        """Store the aggregate's state; the envelopes of its new events."""
        view = aggregate_view(aggregate)
        self.reader.states[(aggregate.entity, str(aggregate.id))] = {
            "id": str(view["id"]),
            "version": view["version"],
            **view["state"],
        }
        return [event_envelope(aggregate.entity, e) for e in aggregate.collect_events()]


def _billing(record: str) -> Stamp:
    return Stamp(
        provenance=Provenance(source_system=System.BILLING, source_record_id=record, actor="s"),
        recorded_at=datetime(2026, 2, 1, tzinfo=UTC),
    )


@pytest.fixture
def world() -> World:
    world = World()
    for sku, item, kind in (("PLAT-1", "5001", ChargeType.RECURRING), ("BAD-1", "9999", None)):
        charge = kind or ChargeType.ONE_TIME
        world.keep(
            Product.define(
                stamp("api"),
                product_id(sku),
                sku=sku,
                charge_type=charge,
                billing_period=BillingPeriod.YEAR if charge is ChargeType.RECURRING else None,
                ids=ProductIds(erp_item_ids=[item]),
            )
        )
    parent = Customer.register(stamp(), uid("parent"), legal_name="Acme Holding AG")
    parent.link(stamp(), LinkedSystem.CRM, PARENT_ACCOUNT)
    child = Customer.register(
        stamp(), uid("child"), legal_name="Acme GmbH", parent_customer_id=uid("parent")
    )
    child.link(stamp(), LinkedSystem.CRM, ACCOUNT)
    world.keep(parent)
    world.keep(child)
    return world


def _order(world: World, name: str, sku: str = "PLAT-1", opportunity: str = OPP) -> Order:
    order = Order.place(
        stamp(),
        uid(name),
        customer_id=uid("child"),
        lines=[
            OrderLine(
                sku=sku,
                quantity=Decimal(3),
                unit_price=Decimal("1200.50"),
                charge_type=ChargeType.RECURRING,
                billing_frequency=BillingFrequency.YEAR,
                description="Platform seats",
            )
        ],
        currency="EUR",
        term_months=12,
        start_date=date(2026, 2, 1),
        booking_date=date(2026, 1, 15),
        opportunity_id=opportunity,
    )
    order.validate_order(stamp("hub"))
    return order


def _validated(world: World, name: str = "order", **kwargs: Any) -> dict[str, Any]:
    envelopes = world.keep(_order(world, name, **kwargs))
    (validated,) = [e for e in envelopes if e["type"] == "OrderValidated"]
    return validated


@pytest.fixture
def erp() -> Iterator[Running]:
    with serve_in_thread(ErpSandbox(items={"5001": "PLAT-1"})) as running:
        yield running


def _connector(running: Running, world: World, **client: Any) -> NetSuiteConnector:
    return NetSuiteConnector(NetSuiteClient(running.url, "token", **client), world.reader)


def _sandbox(running: Running) -> ErpSandbox:
    assert isinstance(running.sandbox, ErpSandbox)
    return running.sandbox


def _deliver(connector: NetSuiteConnector, *envelopes: dict[str, Any]) -> None:
    async def run() -> None:
        try:
            for envelope in envelopes:
                await connector.deliver(envelope, envelope["event_id"])
        finally:
            await connector.aclose()

    asyncio.run(run())


def test_order_validated_upserts_parent_customer_and_sales_order(
    erp: Running, world: World
) -> None:
    sandbox = _sandbox(erp)
    validated = _validated(world)
    _deliver(_connector(erp, world), validated, validated)  # at least once: twice
    assert sandbox.count("customer") == 2 and sandbox.count("salesOrder") == 1
    parent = sandbox.by_external_id("customer", PARENT_ACCOUNT)
    child = sandbox.by_external_id("customer", ACCOUNT)
    assert parent is not None and child is not None
    assert child["parent"]["id"] == parent["id"]
    assert child["custentity_concord_customer_id"] == str(uid("child"))
    order = sandbox.by_external_id("salesOrder", OPP)
    assert order is not None
    assert order["entity"]["id"] == child["id"]
    assert order["currency"]["refName"] == "EUR"
    (line,) = order["item"]["items"]
    assert line["item"]["id"] == "5001" and line["amount"] == Decimal("3601.50")
    assert order["total"] == Decimal("3601.50") and order["tranId"].startswith("SO")
    assert order["custbody_concord_order_id"] == str(uid("order"))


def test_retries_after_429_5xx_and_timeouts_leave_one_customer_and_one_order(
    erp: Running, world: World
) -> None:
    sandbox = _sandbox(erp)
    validated = _validated(world)
    sandbox.faults.add(
        {
            "kind": "error",
            "status": 429,
            "code": "CONCURRENCY_LIMIT_EXCEEDED",
            "message": "Concurrent request limit exceeded. Request blocked.",
            "retry_after": 1,
        }
    )
    sandbox.faults.add({"kind": "error", "status": 503, "path": f"{PREFIX}/salesOrder"})
    sandbox.faults.add({"kind": "timeout", "seconds": 1.0, "path": f"{PREFIX}/salesOrder"})
    failures: list[TransientDeliveryError] = []

    async def run() -> None:
        connector = _connector(erp, world, timeout=0.3)
        try:
            for _ in range(10):
                try:
                    await connector.deliver(validated, validated["event_id"])
                    return
                except TransientDeliveryError as transient:
                    failures.append(transient)
        finally:
            await connector.aclose()

    asyncio.run(run())
    assert len(failures) == 3
    assert "CONCURRENCY_LIMIT_EXCEEDED" in failures[0].message
    assert failures[0].retry_after == 1.0
    assert "503" in failures[1].message and "timed out" in failures[2].message
    assert sandbox.count("customer") == 2
    assert sandbox.count("salesOrder") == 1  # the timed-out save was applied, then upserted


def test_refusals_are_permanent_with_netsuites_message(erp: Running, world: World) -> None:
    sandbox = _sandbox(erp)
    unknown_item = _validated(world, "bad-item", sku="BAD-1", opportunity="006BADITEM")
    with pytest.raises(PermanentDeliveryError) as refused:
        _deliver(_connector(erp, world), unknown_item)
    assert "INVALID_KEY_OR_REF at item.items[0].item" in refused.value.message
    sandbox.tax.fail, sandbox.tax.message = True, "nexus not configured"
    with pytest.raises(PermanentDeliveryError) as taxed:
        _deliver(_connector(erp, world), _validated(world))
    assert "USER_ERROR: Tax calculation failed: nexus not configured" in taxed.value.message
    assert sandbox.count("salesOrder") == 0
    world.reader.states.pop(("product", str(product_id("PLAT-1"))))
    with pytest.raises(PermanentDeliveryError) as unmapped:
        _deliver(_connector(erp, world), _validated(world, "other", opportunity="006OTHER"))
    assert "SKU PLAT-1 has no ERP item id" in unmapped.value.message


def test_skips_the_erps_own_changes_and_events_it_does_not_need(erp: Running, world: World) -> None:
    sandbox = _sandbox(erp)
    order = _order(world, "order")
    world.keep(order)
    erp_stamp = Stamp(
        provenance=Provenance(source_system=System.ERP, actor="netsuite"),
        recorded_at=datetime(2026, 1, 16, tzinfo=UTC),
    )
    order.cancel(erp_stamp, "cancelled in NetSuite")
    (cancelled,) = world.keep(order)
    customer_events = world.keep(
        Customer.register(stamp(), uid("someone"), legal_name="Someone Ltd")
    )
    _deliver(_connector(erp, world), cancelled, *customer_events)
    assert list(sandbox.calls) == []


def test_amend_and_cancel_update_the_sales_order(erp: Running, world: World) -> None:
    sandbox = _sandbox(erp)
    order = _order(world, "order")
    (_, validated) = world.keep(order)
    never_sent = _order(world, "never-sent", opportunity="006NEVER")
    never_sent.cancel(stamp(), "lost")
    cancelled_early = world.keep(never_sent)[-1]
    order.amend(
        stamp(minutes=5),
        [line.model_copy(update={"quantity": Decimal(5), "amount": None}) for line in order.lines]
        + [order.lines[0].model_copy(update={"description": "Extra"})],
    )
    (amended,) = world.keep(order)
    order.cancel(stamp(minutes=10), "customer withdrew")
    (cancelled,) = world.keep(order)
    _deliver(_connector(erp, world), validated, amended, cancelled_early)
    stored = sandbox.by_external_id("salesOrder", OPP)
    assert stored is not None
    assert [line["quantity"] for line in stored["item"]["items"]] == [5, 3]
    assert stored["total"] == Decimal("9604.00")  # 5 and 3 seats at 1200.50
    _deliver(_connector(erp, world), cancelled)
    stored = sandbox.by_external_id("salesOrder", OPP)
    assert stored is not None
    assert stored["orderStatus"] == {"id": "C", "refName": "Cancelled"}
    assert stored["memo"] == "customer withdrew"
    assert sandbox.count("salesOrder") == 1  # the never-sent order was not created


def test_hold_and_release_mark_the_sales_order(erp: Running, world: World) -> None:
    sandbox = _sandbox(erp)
    order = _order(world, "order")
    (_, validated) = world.keep(order)
    order.hold(stamp(minutes=5), "billing refused the subscription: card declined")
    (held,) = world.keep(order)
    _deliver(_connector(erp, world), validated, held)
    stored = sandbox.by_external_id("salesOrder", OPP)
    assert stored is not None
    assert stored["custbody_concord_hold"] is True
    assert stored["custbody_concord_hold_reason"].startswith("billing refused")
    order.release(stamp(minutes=9), "card replaced")
    (released,) = world.keep(order)
    _deliver(_connector(erp, world), released)
    stored = sandbox.by_external_id("salesOrder", OPP)
    assert stored is not None and stored["custbody_concord_hold"] is False


def _paid_invoice(
    world: World, record: str, charge: str, quantity: Decimal, price: Decimal, tax: Decimal
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An invoice of the order ``order`` as billing issued it (``record``) and a payment
    (``charge``) applied to it in full: ``PaymentReceived``, ``InvoiceIssued`` and
    ``PaymentApplied``."""
    amount = quantity * price
    invoice = Invoice.issue(
        _billing(record),
        uid("invoice"),
        customer_id=uid("child"),
        lines=[
            InvoiceLine(sku="PLAT-1", quantity=quantity, unit_price=price, amount=amount, tax=tax)
        ],
        currency="EUR",
        subtotal=amount,
        tax=tax,
        total=amount + tax,
        issue_date=date(2026, 2, 1),
        due_date=date(2026, 3, 3),
        order_id=uid("order"),
    )
    (issued,) = world.keep(invoice)
    payment = Payment.receive(
        _billing(charge),
        uid("payment"),
        customer_id=uid("child"),
        amount=Money.of(amount + tax, "EUR"),
        method=PaymentMethod.CARD,
        received_at=datetime(2026, 2, 10, tzinfo=UTC),
    )
    payment.apply_to(_billing(charge), uid("invoice"), Money.of(amount + tax, "EUR"))
    received, applied = world.keep(payment)
    return received, issued, applied


def test_invoice_posted_and_payment_applied_after_it(erp: Running, world: World) -> None:
    sandbox = _sandbox(erp)
    order = _order(world, "order")
    world.keep(order)
    received, issued, applied = _paid_invoice(
        world, "in_1QXyz", "pi_1", Decimal(3), Decimal("1200.50"), Decimal("684.29")
    )
    with pytest.raises(TransientDeliveryError) as early:
        _deliver(_connector(erp, world), applied)  # payment before invoice: held
    assert "not in NetSuite yet" in early.value.message
    before = len(sandbox.calls)
    _deliver(_connector(erp, world), issued, issued, received, applied, applied)
    # The payment's record is the same at each of its events (the hub holds its one
    # application by then): upserted once, its invoice known from the invoice's upsert
    # (no search); the invoice's second delivery finds it taken.
    calls = [f"{c.method} {c.path.rsplit('/', 2)[-2]}" for c in list(sandbox.calls)[before:]]
    assert calls.count("PUT customerPayment") == 1 and calls.count("GET v1") == 0, calls
    assert calls.count("PUT invoice") == 1, calls  # delivered twice, sent once
    posted = sandbox.by_external_id("invoice", "in_1QXyz")
    assert posted is not None
    assert posted["total"] == Decimal("4285.79") and posted["taxTotal"] == Decimal("684.29")
    assert posted["custbody_concord_invoice_id"] == str(uid("invoice"))
    assert posted["status"]["id"] == "Paid In Full"
    assert sandbox.count("invoice") == 1 and sandbox.count("customerPayment") == 1
    paid = sandbox.by_external_id("customerPayment", str(uid("payment")))
    assert paid is not None and paid["apply"]["items"][0]["doc"]["id"] == posted["id"]


def test_a_payment_waiting_for_its_invoice_does_not_make_the_connector_forget(
    erp: Running, world: World
) -> None:
    """Payments often come before their invoice reached NetSuite. That wait is Concord's
    own, not a NetSuite failure: what NetSuite took stays remembered (no customer sent
    again), and the invoice's upsert answer is the id the payment needs (no search)."""
    sandbox = _sandbox(erp)
    connector = _connector(erp, world)
    validated = _validated(world)
    _, issued, applied = _paid_invoice(
        world, "in_2QXyz", "pi_2", Decimal(1), Decimal("100.00"), Decimal("19.00")
    )

    async def run() -> None:
        try:
            await connector.deliver(validated, "e1")
            assert _customer_puts(sandbox) == 2  # parent, then child
            with pytest.raises(InvoiceNotInNetSuiteYet):
                await connector.deliver(applied, "e2")  # held: its invoice comes later
            await connector.deliver(issued, "e3")
            await connector.deliver(applied, "e2")
        finally:
            await connector.aclose()

    asyncio.run(run())
    assert _customer_puts(sandbox) == 2  # the customers were not sent again
    searches = [c for c in sandbox.calls if c.method == "GET"]
    assert len(searches) == 1, searches  # the early payment's; the retry knew the invoice
    posted = sandbox.by_external_id("invoice", "in_2QXyz")
    paid = sandbox.by_external_id("customerPayment", str(uid("payment")))
    assert posted is not None and paid is not None
    assert paid["apply"]["items"][0]["doc"]["id"] == posted["id"]
    assert posted["status"]["id"] == "Paid In Full"
    assert sandbox.count("customerPayment") == 1 and sandbox.count("salesOrder") == 1


def test_the_budget_keeps_calls_within_the_accounts_limit(erp: Running, world: World) -> None:
    sandbox = _sandbox(erp)
    sandbox.concurrency = 2
    sandbox.faults.add({"kind": "latency", "count": 30, "seconds": 0.05})
    envelopes = [_validated(world, f"order-{n}", opportunity=f"006OPP{n}") for n in range(6)]

    async def run() -> None:
        connector = _connector(erp, world, budget=Budget("erp", concurrency=2))
        try:
            await asyncio.gather(*(connector.deliver(e, e["event_id"]) for e in envelopes))
        finally:
            await connector.aclose()

    asyncio.run(run())
    assert sandbox.refused_for_concurrency == 0
    assert sandbox.count("salesOrder") == 6 and sandbox.count("customer") == 2


def test_settings_configure_the_connector(world: World) -> None:
    assert netsuite_connector(Settings(), world.reader) is None
    configured = netsuite_connector(
        Settings(netsuite_url="http://127.0.0.1:1", netsuite_concurrency=3), world.reader
    )
    assert configured is not None and configured.client.budget.concurrency == 3
    asyncio.run(configured.aclose())


def _customer_puts(sandbox: ErpSandbox) -> int:
    return sum(1 for c in sandbox.calls if c.method == "PUT" and "/customer/" in c.path)


def test_an_unchanged_customer_is_sent_once_and_again_when_changed_or_lost(
    erp: Running, world: World
) -> None:
    """Each order needs its customer in NetSuite first; this process remembers what NetSuite
    took, so the second order sends no customer, a renamed one does, and after a failed
    delivery (NetSuite lost the customer) the retry sends it again."""
    sandbox = _sandbox(erp)
    connector = _connector(erp, world)

    async def run() -> None:
        try:
            await connector.deliver(_validated(world, "first", opportunity="006FIRST"), "e1")
            assert _customer_puts(sandbox) == 2  # parent, then child
            await connector.deliver(_validated(world, "second", opportunity="006SECOND"), "e2")
            assert _customer_puts(sandbox) == 2 and sandbox.count("salesOrder") == 2
            child = world.reader.states[("customer", str(uid("child")))]
            child["legal_name"] = "Acme Deutschland GmbH"
            await connector.deliver(_validated(world, "third", opportunity="006THIRD"), "e3")
            assert _customer_puts(sandbox) == 3  # the child only: the parent is unchanged
            record = sandbox.by_external_id("customer", ACCOUNT)
            assert record is not None and record["companyName"] == "Acme Deutschland GmbH"
            # Someone deletes the child in NetSuite: the next order naming it is refused,
            # and sent again at once with its customers first (as with no memory at all).
            with sandbox.lock:
                sandbox.records["customer"] = {
                    k: v
                    for k, v in sandbox.records["customer"].items()
                    if v.get("externalId") != ACCOUNT
                }
            await connector.deliver(_validated(world, "fourth", opportunity="006FOURTH"), "e4")
            assert _customer_puts(sandbox) == 5 and sandbox.count("salesOrder") == 4
            refused = [c for c in sandbox.calls if c.status >= 400]
            assert len(refused) == 1 and "/salesOrder/" in refused[0].path
        finally:
            await connector.aclose()

    asyncio.run(run())
