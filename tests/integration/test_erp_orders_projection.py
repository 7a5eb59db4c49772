"""The ERP sales-order view (``erp_sales_orders``, ``erp_sales_order_lines``) on real
PostgreSQL: an order placed, amended, accepted by the ERP and fulfilled, caught up against
hand-computed rows; ERP item ids come from the product catalogue whichever store is applied
first; a rebuild gives the same rows; money is exact numeric."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from adapters.bootstrap import Runtime
from hub.domain.product import product_id
from projections.erp.orders import ORDERS, ErpOrders
from tests.integration.commands import new_customer, new_order, run
from tests.integration.projection_support import rebuild, rows, runner, status

VIEW = ErpOrders()


def orders(runtime: Runtime) -> list[dict[str, Any]]:
    names = [c.name for c in ORDERS.columns]
    table = rows(runtime, "erp_sales_orders", order_by="order_id")
    return [dict(zip(names, row, strict=True)) for row in table]


def lines(runtime: Runtime) -> list[tuple[Any, ...]]:
    return rows(runtime, "erp_sales_order_lines", order_by="order_id, line_number")


def line(sku: str, quantity: str, price: str, charge_type: str) -> dict[str, str]:
    return {"sku": sku, "quantity": quantity, "unit_price": price, "charge_type": charge_type}


def test_an_orders_life_catches_up_to_hand_computed_rows_and_rebuilds_identically(
    runtime: Runtime,
) -> None:
    run(
        runtime,
        "product",
        "define",
        {
            "sku": "PLAN-PRO",
            "charge_type": "recurring",
            "billing_period": "month",
            "erp_item_ids": ["ITEM-77", "ITEM-78"],
        },
    )
    customer = new_customer(runtime, "Globex Corp")
    order = new_order(runtime, customer)
    # SETUP has no product yet: its ERP item id arrives with the product, after the line.
    run(
        runtime,
        "order",
        "amend",
        {
            "lines": [
                line("PLAN-PRO", "3", "99.50", "recurring"),
                line("SETUP", "1", "250.00", "one_time"),
                line("API-CALLS", "1000", "0.01", "usage"),
            ]
        },
        aggregate_id=order,
    )
    run(runtime, "order", "accept", {"erp_order_number": "SO-1001"}, aggregate_id=order)
    run(runtime, "order", "fulfil", {}, aggregate_id=order)

    assert runner(runtime, VIEW, batch=2).catch_up() >= 5
    run(runtime, "product", "define", {"sku": "SETUP", "charge_type": "one_time"})
    run(
        runtime, "product", "change", {"erp_item_ids": ["ITEM-9"]}, aggregate_id=product_id("SETUP")
    )
    runner(runtime, VIEW).catch_up()

    (row,) = orders(runtime)
    assert row == {
        "order_id": order,
        "customer_id": customer,
        "opportunity_id": None,
        "status": "fulfilled",
        "currency": "EUR",
        "erp_order_number": "SO-1001",
        "booking_date": date(2026, 11, 29),
        "start_date": date(2026, 12, 1),
        "term_months": 12,
        "total": Decimal("298.50") + Decimal("250.00") + Decimal("10.00"),
        "version": 4,
        "changed_at": row["changed_at"],
        "position": status(runtime, VIEW).stores[0].head,
    }
    assert str(row["total"]) == "558.50"  # numeric keeps the scale: exact, not float
    assert lines(runtime) == [
        (
            order,
            1,
            "PLAN-PRO",
            "ITEM-77",
            Decimal("3"),
            Decimal("99.50"),
            "recurring",
            Decimal("298.50"),
        ),
        (
            order,
            2,
            "SETUP",
            "ITEM-9",
            Decimal("1"),
            Decimal("250.00"),
            "one_time",
            Decimal("250.00"),
        ),
        (order, 3, "API-CALLS", None, Decimal("1000"), Decimal("0.01"), "usage", Decimal("10.00")),
    ]

    before = (orders(runtime), lines(runtime))
    rebuild(runtime, VIEW)
    runner(runtime, VIEW).catch_up()
    assert (orders(runtime), lines(runtime)) == before
    assert status(runtime, VIEW).rebuilt_at is not None


def test_an_amendment_after_acceptance_reopens_the_order_and_keeps_its_number(
    runtime: Runtime,
) -> None:
    order = new_order(runtime, new_customer(runtime))
    run(runtime, "order", "accept", {"erp_order_number": "SO-7"}, aggregate_id=order)
    run(
        runtime,
        "order",
        "amend",
        {"lines": [line("PLAN-PRO", "1", "99.50", "recurring")]},
        aggregate_id=order,
    )
    runner(runtime, VIEW).catch_up()
    (row,) = orders(runtime)
    assert (row["status"], row["erp_order_number"], row["total"]) == (
        "placed",
        "SO-7",
        Decimal("99.50"),
    )
    assert [r[1:5] for r in lines(runtime)] == [(1, "PLAN-PRO", None, Decimal("1"))]
