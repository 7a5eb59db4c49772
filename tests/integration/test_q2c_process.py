"""The quote-to-cash process manager on real PostgreSQL: decisions, the outbox, exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from adapters.bootstrap import Runtime
from adapters.exceptions.workbench import list_exceptions
from adapters.process.dispatcher import compensate_once, dispatch_once
from adapters.process.manager import QuoteToCash, contract_id_for
from adapters.process.service import process_service
from hub.application.products import product_id
from tests.integration.commands import BILLING, CRM, ERP, new_customer, run
from tests.integration.projection_support import rebuild, runner, status

Q2C = QuoteToCash()


def _line(sku: str, quantity: str, price: str, charge: str, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "unit_price": price, "charge_type": charge} | extra


LINES = [
    _line("SETUP", "1", "1500.00", "one_time"),
    _line(
        "SEATS",
        "10",
        "1200.00",
        "recurring",
        billing_frequency="month",
        billing_unit_price="100.00",
    ),
    _line("API", "1000", "0.05", "usage", billing_frequency="month"),
]


def _products(runtime: Runtime, *, api_mapped: bool = True) -> None:
    run(
        runtime,
        "product",
        "define",
        {"sku": "SETUP", "charge_type": "one_time", "erp_item_ids": ["501"]},
    )
    run(
        runtime,
        "product",
        "define",
        {
            "sku": "SEATS",
            "charge_type": "recurring",
            "billing_period": "month",
            "erp_item_ids": ["502"],
            "billing_price_ids": ["price_seats"],
        },
    )
    api: dict[str, Any] = {"sku": "API", "charge_type": "usage", "billing_period": "month"}
    if api_mapped:
        api |= {"erp_item_ids": ["503"], "billing_price_ids": ["price_api"]}
    run(runtime, "product", "define", api)


def _order(runtime: Runtime, customer: UUID, lines: list[dict[str, Any]] = LINES) -> str:
    body = {
        "customer_id": str(customer),
        "lines": lines,
        "currency": "USD",
        "term_months": 12,
        "start_date": "2026-01-01",
        "booking_date": "2025-12-20",
        "opportunity_id": "006OPP1",
    }
    return str(run(runtime, "order", "place", body).body["id"])


def _settle(runtime: Runtime) -> None:
    """Follow and dispatch until nothing new is decided."""
    for _ in range(10):
        runner(runtime, Q2C).catch_up()
        if not dispatch_once(runtime):
            return
    raise AssertionError("the process kept deciding")


def _query(runtime: Runtime, text: str, *args: Any) -> list[tuple[Any, ...]]:
    assert runtime.settings.database_url
    with psycopg.connect(runtime.settings.database_url) as conn:
        conn.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(runtime.settings.schema_name))
        )
        return conn.execute(text, args).fetchall()  # type: ignore[arg-type]


def _steps(runtime: Runtime, pid: str) -> dict[str, str]:
    rows = _query(runtime, "SELECT step, status FROM q2c_steps WHERE process_id = %s", pid)
    return dict(rows)  # type: ignore[arg-type]


def test_a_deal_from_order_to_cash(runtime: Runtime) -> None:
    _products(runtime)
    customer = new_customer(runtime, "Initech")
    order = _order(runtime, customer)
    _settle(runtime)
    assert runtime.hub.get("order", UUID(order))["state"]["status"] == "validated"
    assert _steps(runtime, order)["erp_order"] == "sent"

    # The ERP accepts (an inbound fact): the process decides the contract, recurring and
    # usage lines only, at the per-period prices.
    run(
        runtime,
        "order",
        "accept",
        {"erp_order_number": "SO1001"},
        aggregate_id=UUID(order),
        caller=ERP,
    )
    _settle(runtime)
    contract = runtime.hub.get("contract", UUID(contract_id_for(order)))["state"]
    assert [
        (i["sku"], i["quantity"], i["unit_price"], i["charge_type"]) for i in contract["items"]
    ] == [
        ("SEATS", "10", "100.00", "recurring"),
        ("API", "1000", "0.05", "usage"),
    ]
    assert (contract["term_start"], contract["term_end"]) == ("2026-01-01", "2027-01-01")
    assert _steps(runtime, order)["billing_subscription"] == "sent"

    # Billing activates, invoices and is paid: the milestones follow, the process ends.
    contract_id = UUID(contract_id_for(order))
    run(
        runtime,
        "contract",
        "activate",
        {"billing_subscription_id": "sub_123"},
        aggregate_id=contract_id,
        caller=BILLING,
    )
    invoice = run(
        runtime,
        "invoice",
        "issue",
        {
            "customer_id": str(customer),
            "contract_id": str(contract_id),
            "order_id": order,
            "lines": [
                {
                    "sku": "SEATS",
                    "description": "Seats",
                    "quantity": "10",
                    "unit_price": "100.00",
                    "amount": "1000.00",
                }
            ],
            "currency": "USD",
            "subtotal": "1000.00",
            "tax": "0.00",
            "total": "1000.00",
            "issue_date": "2026-01-01",
            "due_date": "2026-01-31",
            "source_number": "INV-1",
        },
        caller=BILLING,
    ).body["id"]
    payment = run(
        runtime,
        "payment",
        "receive",
        {
            "customer_id": str(customer),
            "amount": {"amount": "1000.00", "currency": "USD"},
            "method": "card",
            "received_at": "2026-01-05T10:00:00Z",
        },
        caller=BILLING,
    ).body["id"]
    run(
        runtime,
        "payment",
        "apply",
        {"invoice_id": invoice, "amount": {"amount": "1000.00", "currency": "USD"}},
        aggregate_id=UUID(payment),
        caller=BILLING,
    )
    _settle(runtime)
    (row,) = _query(
        runtime,
        "SELECT status, erp_order_number, billing_subscription_id, "
        "accepted_at IS NOT NULL, activated_at IS NOT NULL, "
        "first_invoice_at IS NOT NULL, paid_at IS NOT NULL FROM q2c_processes",
    )
    assert row == ("done", "SO1001", "sub_123", True, True, True, True)
    assert set(_steps(runtime, order).values()) == {"done"}
    # Every decision went out once: the outbox and the dispatch agree.
    assert _query(
        runtime,
        "SELECT c.name, d.status FROM q2c_commands c JOIN "
        "concord_q2c_dispatch d USING (command_id) ORDER BY c.decided_at",
    ) == [("validate", "done"), ("create", "done")]


def test_an_unmapped_product_holds_the_deal_until_it_is_mapped(runtime: Runtime) -> None:
    _products(runtime, api_mapped=False)
    customer = new_customer(runtime, "Hooli")
    order = _order(runtime, customer)
    _settle(runtime)
    (row,) = _query(runtime, "SELECT status, waiting_for FROM q2c_processes")
    assert row == ("waiting", ["sku:API"])
    assert runtime.hub.get("order", UUID(order))["state"]["status"] == "placed"
    run(
        runtime,
        "product",
        "change",
        {"erp_item_ids": ["503"], "billing_price_ids": ["price_api"]},
        aggregate_id=product_id("API"),
    )
    _settle(runtime)
    assert runtime.hub.get("order", UUID(order))["state"]["status"] == "validated"
    kinds = [k for (k,) in _query(runtime, "SELECT type FROM q2c_process_events ORDER BY seq")]
    assert "released" in kinds


def test_a_retired_product_rejects_the_order_with_the_reason(runtime: Runtime) -> None:
    _products(runtime)
    run(runtime, "product", "retire", {}, aggregate_id=product_id("SETUP"))
    order = _order(runtime, new_customer(runtime, "Umbrella"))
    _settle(runtime)
    state = runtime.hub.get("order", UUID(order))["state"]
    assert state["status"] == "rejected" and state["rejection_reasons"] == ["SETUP is retired"]
    assert _steps(runtime, order)["validate"] == "failed"


def test_rebuilt_process_state_is_identical_and_nothing_is_dispatched_twice(
    runtime: Runtime,
) -> None:
    _products(runtime)
    order = _order(runtime, new_customer(runtime, "Stark"))
    _settle(runtime)
    before = _query(runtime, "SELECT * FROM q2c_processes")
    decided = _query(runtime, "SELECT command_id, payload FROM q2c_commands")
    assert decided
    rebuild(runtime, Q2C)
    runner(runtime, Q2C, batch=1).catch_up()  # another interleaving of the stores
    assert status(runtime, Q2C).rebuilt_at is not None
    # The rebuilt outbox holds the same decisions; the dispatch remembers they were done.
    assert dispatch_once(runtime) == []
    assert runtime.hub.get("order", UUID(order))["version"] == 2  # placed, validated: once
    assert _query(runtime, "SELECT * FROM q2c_processes") == before
    # Seeing the order's own OrderValidated first, the rebuild need not decide it again.
    assert set(_query(runtime, "SELECT command_id, payload::text FROM q2c_commands")) <= set(
        (c, orjson.dumps(p).decode()) for c, p in decided
    )


def _dead_letter(
    runtime: Runtime,
    subscriber: str,
    event_type: str,
    aggregate: str,
    aggregate_id: str,
    error: str,
) -> None:
    """What the subscriber framework writes when a target refuses an event for good."""
    _query_write(
        runtime,
        "INSERT INTO concord_dead_letters (subscriber, event_id, event_type, aggregate, "
        "aggregate_id, version, stream_seq, subject, envelope, reason, error, attempts, "
        "first_failed_at, last_failed_at) VALUES (%s, gen_random_uuid()::text, %s, %s, %s, 1, 1, "
        "'x', '{}', 'permanent', %s, 1, now(), now())",
        subscriber,
        event_type,
        aggregate,
        aggregate_id,
        error,
    )


def _query_write(runtime: Runtime, text: str, *args: Any) -> None:
    assert runtime.settings.database_url
    with psycopg.connect(runtime.settings.database_url) as conn:
        conn.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(runtime.settings.schema_name))
        )
        conn.execute(text, args)  # type: ignore[arg-type]


def _accepted(runtime: Runtime, customer: str, number: str) -> str:
    """A deal validated and accepted by the ERP (its contract decided and created)."""
    _products(runtime)
    order = _order(runtime, new_customer(runtime, customer))
    _settle(runtime)
    run(
        runtime,
        "order",
        "accept",
        {"erp_order_number": number},
        aggregate_id=UUID(order),
        caller=ERP,
    )
    _settle(runtime)
    return order


def test_billing_refusing_the_subscription_holds_the_order_once(runtime: Runtime) -> None:
    order = _accepted(runtime, "Wayne", "SO9")
    _dead_letter(
        runtime,
        "billing",
        "ContractCreated",
        "contract",
        contract_id_for(order),
        "400 invalid_request_error: card declined for good",
    )
    assert [o.status for o in compensate_once(runtime)] == ["done"]
    assert compensate_once(runtime) == []  # once
    _settle(runtime)
    state = runtime.hub.get("order", UUID(order))["state"]
    assert state["hold_reason"] == (
        "billing refused the subscription: 400 invalid_request_error: card declined for good"
    )
    (row,) = _query(runtime, "SELECT status, reason FROM q2c_processes")
    assert row == ("on_hold", state["hold_reason"])
    assert _steps(runtime, order)["billing_subscription"] == "failed"
    kinds = [k for (k,) in _query(runtime, "SELECT type FROM q2c_process_events ORDER BY seq")]
    assert "compensated" in kinds
    listed = list_exceptions(runtime, reason="order_on_hold")
    assert listed["count"] == 1 and "billing refused" in str(listed["groups"])
    # An operator releases it: the process runs on.
    run(runtime, "order", "release", {"note": "card replaced"}, aggregate_id=UUID(order))
    _settle(runtime)
    assert _query(runtime, "SELECT status FROM q2c_processes") == [("running",)]


def test_an_upgrade_after_acceptance_amends_the_contract_once(runtime: Runtime) -> None:
    order = _accepted(runtime, "Cyberdyne", "SO7")
    contract_id = UUID(contract_id_for(order))
    run(
        runtime,
        "contract",
        "activate",
        {"billing_subscription_id": "sub_7"},
        aggregate_id=contract_id,
        caller=BILLING,
    )
    upgraded = [
        LINES[0],
        _line(
            "SEATS",
            "15",
            "1200.00",
            "recurring",
            billing_frequency="month",
            billing_unit_price="100.00",
        ),
        LINES[2],
    ]
    run(runtime, "order", "amend", {"lines": upgraded}, aggregate_id=UUID(order), caller=CRM)
    _settle(runtime)
    # Reopened: validated anew (a second validate, under its own id), with the ERP again.
    assert runtime.hub.get("order", UUID(order))["state"]["status"] == "validated"
    assert _steps(runtime, order)["erp_order"] == "sent"
    run(
        runtime,
        "order",
        "accept",
        {"erp_order_number": "SO7"},
        aggregate_id=UUID(order),
        caller=ERP,
    )
    _settle(runtime)
    items = runtime.hub.get("contract", contract_id)["state"]["items"]
    assert [(i["sku"], i["quantity"]) for i in items] == [("SEATS", "15"), ("API", "1000")]
    decided = [c for (c,) in _query(runtime, "SELECT command_id FROM q2c_commands ORDER BY 1")]
    assert sorted(
        c.rpartition(":")[2] if c.count(":") > 2 else c.split(":")[-1] for c in decided
    ) == ["1", "1", "contract", "validate"]
    assert _query(runtime, "SELECT count(*) FROM concord_q2c_dispatch WHERE status = 'done'") == [
        (4,)
    ]
    (row,) = _query(runtime, "SELECT contract_items, status, step FROM q2c_processes")
    assert [(i["sku"], i["quantity"]) for i in row[0]] == [("SEATS", "15"), ("API", "1000")]
    # Accepted anew, the process is back where it was: waiting for billing's first invoice.
    assert row[1:] == ("running", "first_invoice")


def test_a_decision_for_an_old_event_waits_for_an_operator(runtime: Runtime) -> None:
    """What a rebuild of a new version that decides differently would produce for deals
    long past: not executed unasked, listed in the workbench, run on retry."""
    _products(runtime)
    order = _order(runtime, new_customer(runtime, "Tyrell"))
    runner(runtime, Q2C).catch_up()
    _query_write(runtime, "UPDATE q2c_commands SET cause_recorded_at = now() - interval '10 days'")
    assert dispatch_once(runtime) == []
    assert _query(runtime, "SELECT status FROM concord_q2c_dispatch") == [("stale",)]
    assert runtime.hub.get("order", UUID(order))["state"]["status"] == "placed"
    (group,) = list_exceptions(runtime, reason="failed_step")["groups"]
    (item,) = group["items"]
    assert "recorded" in item["detail"]["error"]
    _query_write(
        runtime,
        "UPDATE concord_q2c_dispatch SET status = 'retrying', next_at = now()",
    )  # what the workbench's retry does
    assert [o.status for o in dispatch_once(runtime)] == ["done"]
    assert runtime.hub.get("order", UUID(order))["state"]["status"] == "validated"


def test_the_dispatcher_is_woken_by_the_process_managers_commits(runtime: Runtime) -> None:
    """The dispatcher polls rarely here (a minute); the decision of a placed order is still
    executed at once, because the follower's commit wakes it."""
    _products(runtime)
    customer = new_customer(runtime, "Wakeful Inc")
    slow = dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"q2c_poll_interval_s": 60.0})
    )

    async def main() -> float:
        stop = asyncio.Event()
        service = asyncio.create_task(process_service(slow)(stop))
        try:
            await asyncio.sleep(1.0)  # the follower has caught up, the dispatcher is idle
            order = UUID(_order(runtime, customer))
            placed = time.monotonic()
            while runtime.hub.get("order", order)["state"]["status"] != "validated":
                assert time.monotonic() - placed < 30, "never woken: waited for the poll"
                await asyncio.sleep(0.05)
            return time.monotonic() - placed
        finally:
            stop.set()
            await service

    assert asyncio.run(main()) < 30
