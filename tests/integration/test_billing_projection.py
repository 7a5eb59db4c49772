"""The billing view (``billing_subscriptions`` and ``billing_subscription_items``) on real
PostgreSQL: a contract created, activated, amended (once in force at once, once for a later
date), renewed and cancelled, caught up against hand-computed rows; a rebuild gives the same
rows; prices are exact numerics with the currency's minor-unit digits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from adapters.bootstrap import Runtime
from adapters.projections.runner import ProjectionFailed
from projections.billing.subscriptions import ITEMS, SUBSCRIPTIONS, BillingSubscriptions
from projections.definition import Envelope, Position, ViewCursor
from tests.integration.commands import item, new_contract, new_customer, new_order, run
from tests.integration.projection_support import rebuild, rows, runner, status

BILLING = BillingSubscriptions()


def subscriptions(runtime: Runtime) -> list[dict[str, Any]]:
    names = [c.name for c in SUBSCRIPTIONS.columns]
    table = rows(runtime, "billing_subscriptions", order_by="contract_id")
    return [dict(zip(names, row, strict=True)) for row in table]


def items(runtime: Runtime) -> list[tuple[Any, ...]]:
    names = ("sku", "rate_plan", "quantity", "unit_price", "billing_period", "charge_type")
    table = rows(runtime, "billing_subscription_items", order_by="contract_id, sku")
    positions = [[c.name for c in ITEMS.columns].index(n) for n in names]
    return [tuple(row[i] for i in positions) for row in table]


def contract(runtime: Runtime, start: date, end: date) -> tuple[UUID, UUID, UUID]:
    """A pending EUR contract: two seats of a plan at 99.5 and pay-as-you-go API calls."""
    customer = new_customer(runtime, "Globex Corp")
    order = new_order(runtime, customer)
    items = [
        item("PLAN-PRO", "pro-monthly", "2", "99.5", "recurring"),
        item("API-CALLS", "usage-std", "0", "0.0004", "usage"),
    ]
    made = new_contract(runtime, customer, order, items, (start.isoformat(), end.isoformat()))
    return made, customer, order


def test_a_contracts_life_catches_up_to_hand_computed_rows_and_rebuilds_identically(
    runtime: Runtime,
) -> None:
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=10), today + timedelta(days=355)
    later, renewed_end = today + timedelta(days=40), end + timedelta(days=365)
    cancel_on = today + timedelta(days=200)
    contract_id, customer, order = contract(runtime, start, end)
    act = run(
        runtime,
        "contract",
        "activate",
        {"billing_subscription_id": "sub_9"},
        aggregate_id=contract_id,
    )
    assert act.body["id"] == str(contract_id)
    amend = {"aggregate_id": contract_id}
    # In force at once (effective before today) ...
    run(
        runtime,
        "contract",
        "amend",
        {"changes": [{"sku": "PLAN-PRO", "quantity": "5"}], "effective_date": start.isoformat()},
        **amend,
    )
    # ... and scheduled (effective after today): listed, not applied to the items.
    run(
        runtime,
        "contract",
        "amend",
        {
            "changes": [{"sku": "PLAN-PRO", "unit_price": "89", "rate_plan": "pro-2027"}],
            "effective_date": later.isoformat(),
        },
        **amend,
    )
    run(runtime, "contract", "renew", {"new_term_end": renewed_end.isoformat()}, **amend)
    run(
        runtime,
        "contract",
        "cancel",
        {"effective_date": cancel_on.isoformat(), "reason": "moved to a competitor"},
        **amend,
    )

    assert runner(runtime, BILLING, batch=2).catch_up() >= 6
    (row,) = subscriptions(runtime)
    assert (row["contract_id"], row["billing_subscription_id"], row["status"]) == (
        contract_id,
        "sub_9",
        "cancelled",
    )
    assert (row["currency"], row["term_start"], row["term_end"], row["cancellation_date"]) == (
        "EUR",
        start,
        renewed_end,
        cancel_on,
    )
    assert row["cancellation_reason"] == "moved to a competitor"
    assert row["scheduled_changes"] == [
        {
            "effective_date": later.isoformat(),
            "changes": [
                {"sku": "PLAN-PRO", "quantity": None, "unit_price": "89", "rate_plan": "pro-2027"}
            ],
        }
    ]
    assert row["version"] == 6
    state = status(runtime, BILLING)
    assert state.stores[0].store == "contracts" and state.stores[0].lag_events == 0
    assert row["position"] == state.stores[0].head
    assert (row["customer_id"], row["order_id"]) == (customer, order)
    # Items: the in-force amendment applied; prices with the currency's 2 digits at least.
    assert items(runtime) == [
        ("API-CALLS", "usage-std", Decimal("0"), Decimal("0.0004"), "month", "usage"),
        ("PLAN-PRO", "pro-monthly", Decimal("5"), Decimal("99.50"), "month", "recurring"),
    ]
    assert str(items(runtime)[1][3]) == "99.50"  # numeric keeps the scale: exact, not float

    before = (subscriptions(runtime), items(runtime))
    rebuild(runtime, BILLING)
    runner(runtime, BILLING).catch_up()
    assert (subscriptions(runtime), items(runtime)) == before
    assert status(runtime, BILLING).rebuilt_at is not None


def test_a_backdated_amendment_applies_in_effective_date_order(runtime: Runtime) -> None:
    """Recorded after a change effective today, a change effective earlier comes first,
    as in the contract itself: the later-effective quantity wins."""
    today = datetime.now(UTC).date()
    contract_id, _, _ = contract(runtime, today - timedelta(days=20), today + timedelta(days=300))
    amend = {"aggregate_id": contract_id}
    for quantity, effective in (("7", today), ("3", today - timedelta(days=15))):
        run(
            runtime,
            "contract",
            "amend",
            {
                "changes": [{"sku": "PLAN-PRO", "quantity": quantity}],
                "effective_date": effective.isoformat(),
            },
            **amend,
        )
    runner(runtime, BILLING).catch_up()
    plan = next(i for i in items(runtime) if i[0] == "PLAN-PRO")
    assert plan[2] == Decimal("7")
    (row,) = subscriptions(runtime)
    assert (row["status"], row["billing_subscription_id"], row["scheduled_changes"]) == (
        "pending",
        None,
        [],
    )


def arr(runtime: Runtime) -> list[tuple[Any, ...]]:
    return rows(runtime, "crm_account_arr", order_by="customer_id, currency")


def test_arr_per_account_and_currency_follows_amendments_and_cancellations(
    runtime: Runtime,
) -> None:
    customer = new_customer(runtime, "Globex Corp")
    order = new_order(runtime, customer)
    eur = new_contract(
        runtime,
        customer,
        order,
        [
            item("PLAN-PRO", "pro-monthly", "2", "99.5", "recurring"),
            item("API-CALLS", "usage-std", "0", "0.0004", "usage"),  # usage: no ARR
        ],
    )
    yearly = item("SUPPORT", "support-yearly", "1", "1200", "recurring") | {
        "billing_period": "year"
    }
    quarterly = item("SEATS", "seats-q", "3", "15000", "recurring") | {"billing_period": "quarter"}
    yen_order = {
        "customer_id": str(customer),
        "lines": [
            {"sku": "SEATS", "quantity": "3", "unit_price": "15000", "charge_type": "recurring"}
        ],
        "currency": "JPY",
        "term_months": 12,
        "start_date": "2026-12-01",
        "booking_date": "2026-11-29",
    }
    jpy = {
        "order_id": run(runtime, "order", "place", yen_order).body["id"],
        "customer_id": str(customer),
        "currency": "JPY",
        "items": [quarterly],
        "term_start": "2026-12-01",
        "term_end": "2027-11-30",
    }
    jpy_contract = UUID(run(runtime, "contract", "create", jpy).body["id"])
    support = new_contract(runtime, customer, order, [yearly])
    for made, sub in ((eur, "sub_eur"), (jpy_contract, "sub_jpy"), (support, "sub_sup")):
        run(runtime, "contract", "activate", {"billing_subscription_id": sub}, aggregate_id=made)
    pending = new_contract(runtime, customer, order, [item("X", "x", "9", "9", "recurring")])
    assert pending  # pending: not billing yet, no ARR
    runner(runtime, BILLING).catch_up()
    # EUR: 2 x 99.50 x 12 = 2,388.00 plus 1 x 1,200 x 1 = 1,200: 3,588.00 over 2 contracts.
    # JPY: 3 x 15,000 x 4 = 180,000.
    assert arr(runtime) == [
        (customer, "EUR", Decimal("3588.00"), 2),
        (customer, "JPY", Decimal("180000"), 1),
    ]
    change = {"changes": [{"sku": "PLAN-PRO", "quantity": "5"}], "effective_date": "2026-12-01"}
    run(runtime, "contract", "amend", change, aggregate_id=eur)
    run(runtime, "contract", "cancel", {"effective_date": "2027-03-31"}, aggregate_id=support)
    runner(runtime, BILLING).catch_up()
    # Upgraded to 5 seats: 5 x 99.50 x 12 = 5,970.00; the support contract is cancelled.
    assert arr(runtime) == [
        (customer, "EUR", Decimal("5970.00"), 1),
        (customer, "JPY", Decimal("180000"), 1),
    ]
    rebuild(runtime, BILLING)
    runner(runtime, BILLING).catch_up()
    assert arr(runtime)[0][2] == Decimal("5970.00") and len(arr(runtime)) == 2


def test_a_runner_starting_between_events_reads_the_row_and_ends_as_a_rebuild_does(
    runtime: Runtime,
) -> None:
    """Each catch-up below is a new runner, so its memo starts empty: the amendments after
    the first are applied from the row read back (its items unknown), and must come out
    as the rebuild that applies every event from one memo."""
    today = datetime.now(UTC).date()
    contract_id, _, _ = contract(runtime, today - timedelta(days=30), today + timedelta(days=300))
    amend = {"aggregate_id": contract_id}
    run(runtime, "contract", "activate", {"billing_subscription_id": "sub_m"}, **amend)
    assert runner(runtime, BILLING).catch_up() == 2
    changes = (
        ({"sku": "PLAN-PRO", "quantity": "4"}, today - timedelta(days=5)),
        ({"sku": "API-CALLS", "unit_price": "0.0003"}, today + timedelta(days=30)),
        ({"sku": "PLAN-PRO", "unit_price": "95", "rate_plan": "pro-2"}, today - timedelta(days=1)),
    )
    for change, effective in changes:
        body = {"changes": [change], "effective_date": effective.isoformat()}
        run(runtime, "contract", "amend", body, **amend)
        run(runtime, "contract", "suspend", {"effective_date": today.isoformat()}, **amend)
        run(runtime, "contract", "resume", {"effective_date": today.isoformat()}, **amend)
        assert runner(runtime, BILLING).catch_up() == 3
    assert items(runtime) == [
        ("API-CALLS", "usage-std", Decimal("0"), Decimal("0.0004"), "month", "usage"),
        ("PLAN-PRO", "pro-2", Decimal("4"), Decimal("95.00"), "month", "recurring"),
    ]
    (row,) = subscriptions(runtime)
    assert (row["status"], row["version"], len(row["amendment_log"]["amendments"])) == (
        "active",
        11,
        3,
    )
    assert [c["effective_date"] for c in row["scheduled_changes"]] == [
        (today + timedelta(days=30)).isoformat()
    ]
    before = (subscriptions(runtime), items(runtime))
    rebuild(runtime, BILLING)
    runner(runtime, BILLING).catch_up()
    assert (subscriptions(runtime), items(runtime)) == before


class FailsAtRenewal(BillingSubscriptions):
    """Billing that cannot apply a renewal: stops the projection in mid-batch."""

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["type"] == "ContractRenewed":
            raise RuntimeError("renewal refused")
        super().apply(event, at, cursor)


def test_held_contracts_come_out_alike_in_any_batching_and_never_outlive_a_failed_batch(
    runtime: Runtime,
) -> None:
    """Contracts' events interleaved: written once per run from what the memo holds (new
    rows inserted, older ones updated), the rows must not depend on where batches end, and
    a batch that fails must leave neither rows nor held state behind."""
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=10), today + timedelta(days=355)
    first, _, _ = contract(runtime, start, end)
    second, _, _ = contract(runtime, start, end)
    run(runtime, "contract", "activate", {"billing_subscription_id": "sub_a"}, aggregate_id=first)
    body = {"changes": [{"sku": "PLAN-PRO", "quantity": "3"}], "effective_date": start.isoformat()}
    run(runtime, "contract", "amend", body, aggregate_id=second)
    third, _, _ = contract(runtime, start, end)
    body = {"changes": [{"sku": "API-CALLS", "unit_price": "0.0005"}], "effective_date": str(start)}
    run(runtime, "contract", "amend", body, aggregate_id=first)
    run(runtime, "contract", "activate", {"billing_subscription_id": "sub_c"}, aggregate_id=third)
    run(
        runtime,
        "contract",
        "renew",
        {"new_term_end": str(end + timedelta(days=365))},
        aggregate_id=third,
    )
    run(runtime, "contract", "amend", body, aggregate_id=third)

    worker = runner(runtime, FailsAtRenewal(), batch=50)
    with pytest.raises(ProjectionFailed) as failed:
        worker.catch_up()
    assert "renewal refused" in failed.value.reason
    # What precedes the renewal is committed (the third contract created, activated) ...
    assert [r["contract_id"] for r in subscriptions(runtime)] == sorted([first, second, third])
    assert {r["contract_id"]: r["version"] for r in subscriptions(runtime)}[third] == 2
    worker.projection = BILLING
    worker.catch_up()
    followed = (subscriptions(runtime), items(runtime))
    # ... and the rest applied after it from a fresh memo: the amended prices and quantity.
    by_contract: dict[UUID, dict[str, tuple[Decimal, Decimal]]] = {}
    for row in rows(runtime, "billing_subscription_items", order_by="contract_id, sku"):
        by_contract.setdefault(row[0], {})[row[1]] = (row[3], row[4])
    assert by_contract == {
        first: {"API-CALLS": (0, Decimal("0.0005")), "PLAN-PRO": (2, Decimal("99.50"))},
        second: {"API-CALLS": (0, Decimal("0.0004")), "PLAN-PRO": (3, Decimal("99.50"))},
        third: {"API-CALLS": (0, Decimal("0.0005")), "PLAN-PRO": (2, Decimal("99.50"))},
    }
    renewed = {r["contract_id"]: r for r in followed[0]}[third]
    assert (renewed["version"], renewed["term_end"]) == (4, end + timedelta(days=365))
    for batch in (1, 3, 500):
        rebuild(runtime, BILLING)
        runner(runtime, BILLING, batch=batch).catch_up()
        assert (subscriptions(runtime), items(runtime)) == followed
