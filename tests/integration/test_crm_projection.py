"""The CRM view (``crm_accounts``, ``crm_opportunities``) on real PostgreSQL: a hierarchy
whose child is registered before its parent; an order through its milestones with the
source's business times; catching up one store before another gives the same rows as a
rebuild (stores are applied each in its own order)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.bootstrap import Runtime
from hub.application.service import Origin
from projections.crm.accounts import ACCOUNTS
from projections.crm.invoices import INVOICES
from projections.crm.opportunities import OPPORTUNITIES
from projections.crm.projection import CrmView
from tests.integration.commands import (
    item,
    new_contract,
    new_customer,
    new_invoice,
    new_order,
    new_payment,
    run,
)
from tests.integration.projection_support import rebuild, rows, runner

VIEW = CrmView()


def table(runtime: Runtime, name: str, key: str, columns: list[str]) -> list[dict[str, Any]]:
    return [dict(zip(columns, r, strict=True)) for r in rows(runtime, name, order_by=key)]


def accounts(runtime: Runtime) -> dict[UUID, dict[str, Any]]:
    names = [c.name for c in ACCOUNTS.columns]
    return {r["customer_id"]: r for r in table(runtime, "crm_accounts", "customer_id", names)}


def opportunities(runtime: Runtime) -> list[dict[str, Any]]:
    names = [c.name for c in OPPORTUNITIES.columns]
    return table(runtime, "crm_opportunities", "order_id", names)


class ContractsFirst(CrmView):
    """The same view following the contracts store alone: catches that store up first."""

    stores = ("contracts",)


def at(text: str) -> Origin:
    return Origin(occurred_at=datetime.fromisoformat(text))


def reparent(runtime: Runtime, customer: UUID, parent: UUID) -> None:
    change = {"parent_customer_id": str(parent)}
    run(runtime, "customer", "change_details", change, aggregate_id=customer)


def test_a_child_registered_before_its_parent_gets_the_whole_hierarchy(runtime: Runtime) -> None:
    # The hub refuses unknown parents, so a parent registered after its child is linked by
    # a later detail change; the top of the hierarchy arrives last of all.
    child = new_customer(runtime, "Child Ltd")
    parent = new_customer(runtime, "Parent AG")
    reparent(runtime, child, parent)
    runner(runtime, VIEW).catch_up()
    assert accounts(runtime)[child]["ultimate_parent_customer_id"] == parent
    assert accounts(runtime)[child]["depth"] == 1

    top = new_customer(runtime, "Top Holding")
    reparent(runtime, parent, top)
    run(runtime, "customer", "link", {"system": "crm", "external_id": "ACC-1"}, aggregate_id=top)
    runner(runtime, VIEW, batch=1).catch_up()

    view = accounts(runtime)
    assert (view[child]["depth"], view[parent]["depth"], view[top]["depth"]) == (2, 1, 0)
    assert {view[c]["ultimate_parent_customer_id"] for c in (child, parent, top)} == {top}
    assert view[parent]["parent_crm_account_id"] == "ACC-1"
    assert view[child]["parent_crm_account_id"] is None
    assert view[top]["crm_account_id"] == "ACC-1"
    assert (view[child]["name"], view[child]["parent_customer_id"]) == ("Child Ltd", parent)

    before = accounts(runtime)
    rebuild(runtime, VIEW)
    runner(runtime, VIEW).catch_up()
    assert accounts(runtime) == before


def test_an_order_through_its_milestones_converges_whichever_store_comes_first(
    runtime: Runtime,
) -> None:
    customer = new_customer(runtime, "Globex Corp")
    placed = {
        "customer_id": str(customer),
        "opportunity_id": "OPP-7",
        "opportunity_amount": {"amount": "2400.00", "currency": "EUR"},
        "close_date": "2026-11-20",
        "lines": [
            {"sku": "PLAN-PRO", "quantity": "2", "unit_price": "99.50", "charge_type": "recurring"}
        ],
        "currency": "EUR",
        "term_months": 12,
        "start_date": "2026-12-01",
        "booking_date": "2026-11-29",
    }
    order = UUID(
        run(runtime, "order", "place", placed, origin=at("2026-11-29T09:00:00+00:00")).body["id"]
    )
    accept = {"erp_order_number": "SO-42"}
    run(runtime, "order", "accept", accept, aggregate_id=order, origin=at("2026-11-30T10:15:00Z"))
    contract = new_contract(
        runtime, customer, order, [item("PLAN-PRO", "RP-1", "2", "99.50", "recurring")]
    )
    activate = {"billing_subscription_id": "sub_9"}
    run(runtime, "contract", "activate", activate, aggregate_id=contract, origin=None)

    # Contracts first (the activation arrives before its order), then the other stores.
    runner(runtime, ContractsFirst()).catch_up()
    (early,) = opportunities(runtime)
    assert (early["order_id"], early["billing_subscription_id"]) == (order, "sub_9")
    assert early["ordered_at"] is None and early["customer_id"] is None
    runner(runtime, VIEW, batch=1).catch_up()
    (row,) = opportunities(runtime)
    recorded = row["activated_at"]
    assert row == {
        "order_id": order,
        "opportunity_id": "OPP-7",
        "customer_id": customer,
        "order_status": "accepted",
        "currency": "EUR",
        "opportunity_amount": Decimal("2400.00"),
        "order_total": Decimal("199.00"),
        "close_date": datetime(2026, 11, 20).date(),
        "ordered_at": datetime(2026, 11, 29, 9, 0, tzinfo=UTC),
        "accepted_by_erp_at": datetime(2026, 11, 30, 10, 15, tzinfo=UTC),
        "erp_order_number": "SO-42",
        "activated_at": recorded,  # no occurred_at given: when Concord recorded it
        "billing_subscription_id": "sub_9",
    }
    assert recorded is not None and str(row["order_total"]) == "199.00"

    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500).catch_up()
    assert opportunities(runtime) == [row]


def milestones(runtime: Runtime) -> list[tuple[Any, ...]]:
    return rows(runtime, "crm_opportunity_milestones", order_by="order_id")


class InvoicesFirst(CrmView):
    """Follows the invoices store alone: invoices applied before their orders."""

    stores = ("invoices",)


def test_first_invoice_and_paid_milestones_whichever_store_comes_first(runtime: Runtime) -> None:
    customer = new_customer(runtime, "Initech LLC")
    order = new_order(runtime, customer)
    contract = new_contract(
        runtime, customer, order, [item("PLAN-PRO", "RP-1", "2", "99.50", "recurring")]
    )
    # The later invoice names the order; the earlier one only its contract.
    later = new_invoice(runtime, customer, total="100.00", order=order)
    body = {
        "customer_id": str(customer),
        "contract_id": str(contract),
        "lines": [{"sku": "PLAN-PRO", "quantity": "1", "unit_price": "80.00", "amount": "80.00"}],
        "currency": "EUR",
        "subtotal": "80.00",
        "tax": "0.00",
        "total": "80.00",
        "issue_date": "2026-11-30",
        "due_date": "2026-12-30",
    }
    first = UUID(run(runtime, "invoice", "issue", body).body["id"])
    payment = new_payment(runtime, customer, amount="180.00")

    def pay(invoice: UUID, amount: str, when: str) -> None:
        apply = {"invoice_id": str(invoice), "amount": {"amount": amount, "currency": "EUR"}}
        run(runtime, "payment", "apply", apply, aggregate_id=payment, origin=at(when))

    pay(first, "30.00", "2026-12-01T10:00:00Z")  # partial: not paid yet
    pay(later, "100.00", "2026-12-01T11:00:00Z")  # the later invoice is paid first
    pay(first, "20.00", "2026-12-02T09:30:00Z")  # 50 of 80: still open
    runner(runtime, InvoicesFirst()).catch_up()
    assert milestones(runtime) == []  # no order yet: nothing to hang the invoices on
    runner(runtime, VIEW, batch=1).catch_up()
    ((order_id, *_, invoice_id, issued, paid),) = milestones(runtime)
    assert (order_id, invoice_id, str(issued), paid) == (order, first, "2026-11-30", None)
    pay(first, "30.00", "2026-12-02T18:00:00Z")  # 80 of 80: paid in full
    runner(runtime, VIEW).catch_up()
    (row,) = milestones(runtime)
    assert row[-1] == datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    rebuild(runtime, VIEW)
    runner(runtime, VIEW).catch_up()
    assert milestones(runtime) == [row]


def invoices(runtime: Runtime) -> list[dict[str, Any]]:
    return table(runtime, "crm_invoices", "invoice_id", [c.name for c in INVOICES.columns])


def test_a_refund_keeps_the_paid_milestone_a_failed_payment_never_reaches_it(
    runtime: Runtime,
) -> None:
    customer = new_customer(runtime, "Umbrella Ltd")
    refunded, declined = (new_invoice(runtime, customer, total="100.00") for _ in "ab")

    def pay(invoice: UUID, when: str) -> UUID:
        payment = new_payment(runtime, customer, amount="100.00")
        apply = {"invoice_id": str(invoice), "amount": {"amount": "100.00", "currency": "EUR"}}
        run(runtime, "payment", "apply", apply, aggregate_id=payment, origin=at(when))
        return payment

    first = pay(refunded, "2026-12-05T11:00:00Z")
    back = {"amount": {"amount": "100.00", "currency": "EUR"}, "reference": "RF-9"}
    run(runtime, "payment", "refund", back, aggregate_id=first, origin=at("2026-12-06T10:00:00Z"))
    card = pay(declined, "2026-12-05T11:00:00Z")
    run(runtime, "payment", "fail", {"reason": "declined"}, aggregate_id=card)
    runner(runtime, VIEW).catch_up()
    paid = {r["invoice_id"]: r["paid_at"] for r in invoices(runtime)}
    # The refund reopened an invoice that was paid: it was paid on 12-05. The declined card
    # never paid the other one.
    assert paid == {refunded: datetime(2026, 12, 5, 11, 0, tzinfo=UTC), declined: None}
    pay(declined, "2026-12-06T11:00:00Z")  # the retry settles it
    runner(runtime, VIEW).catch_up()
    rows_now = invoices(runtime)
    assert {r["invoice_id"]: (r["paid"], r["paid_at"]) for r in rows_now} == {
        refunded: (Decimal("0.00"), datetime(2026, 12, 5, 11, 0, tzinfo=UTC)),
        declined: (Decimal("100.00"), datetime(2026, 12, 6, 11, 0, tzinfo=UTC)),
    }
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=1).catch_up()
    again = invoices(runtime)
    assert again == rows_now


def test_hierarchy_columns_match_a_walk_of_the_whole_forest_after_random_moves(
    runtime: Runtime,
) -> None:
    """Only the changed account's subtree is recomputed per event; after a seeded run of
    registrations, moves under other parents (re-parenting whole subtrees) and CRM links,
    every row is what a walk of the whole forest says."""
    import random

    rng = random.Random(7)
    ids: list[UUID] = []
    parents: dict[UUID, UUID | None] = {}
    crm: dict[UUID, str] = {}
    for step in range(40):
        roll = rng.random()
        if roll < 0.45 or len(ids) < 3:
            customer = new_customer(runtime, f"Account {step}")
            ids.append(customer)
            parents[customer] = None
        elif roll < 0.85:
            child, parent = rng.sample(ids, 2)
            walk, seen = parent, set()
            while walk is not None and walk not in seen:  # no move that would make a cycle
                seen.add(walk)
                walk = parents[walk]
            if child in seen:
                continue
            reparent(runtime, child, parent)
            parents[child] = parent
        else:
            customer = rng.choice(ids)
            if customer not in crm:
                crm[customer] = f"001ACC{step:04d}"
                run(
                    runtime,
                    "customer",
                    "link",
                    {"system": "crm", "external_id": crm[customer]},
                    aggregate_id=customer,
                )
        if step % 9 == 0:
            runner(runtime, VIEW, batch=3).catch_up()
    runner(runtime, VIEW).catch_up()
    view = accounts(runtime)
    for customer in ids:
        depth, top = 0, customer
        while parents[top] is not None:
            top, depth = parents[top], depth + 1  # type: ignore[assignment]
        parent = parents[customer]
        row = view[customer]
        assert (row["ultimate_parent_customer_id"], row["depth"]) == (top, depth), customer
        assert row["parent_crm_account_id"] == (crm.get(parent) if parent else None)


def test_paid_at_is_the_earliest_settling_time_also_when_a_later_move_is_dated_earlier(
    runtime: Runtime,
) -> None:
    """Paid on 12-05, refunded, then settled again by a payment the source dates 12-03:
    ``paid_at`` is the earliest time at which the moves so far settled it (12-03), as the
    memo's replay and the restarted runner (its moves read back) both say."""
    customer = new_customer(runtime, "Hooli Inc")
    invoice = new_invoice(runtime, customer, total="100.00")

    def pay(when: str) -> UUID:
        payment = new_payment(runtime, customer, amount="100.00")
        apply = {"invoice_id": str(invoice), "amount": {"amount": "100.00", "currency": "EUR"}}
        run(runtime, "payment", "apply", apply, aggregate_id=payment, origin=at(when))
        return payment

    first = pay("2026-12-05T09:00:00Z")
    back = {"amount": {"amount": "100.00", "currency": "EUR"}, "reference": "RF-1"}
    run(runtime, "payment", "refund", back, aggregate_id=first, origin=at("2026-12-06T09:00:00Z"))
    runner(runtime, VIEW).catch_up()
    ((paid, paid_at),) = [(r["paid"], r["paid_at"]) for r in invoices(runtime)]
    assert (paid, paid_at) == (Decimal("0.00"), datetime(2026, 12, 5, 9, 0, tzinfo=UTC))
    pay("2026-12-03T09:00:00Z")
    runner(runtime, VIEW).catch_up()
    (row,) = invoices(runtime)
    assert (row["paid"], row["paid_at"]) == (
        Decimal("100.00"),
        datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
    )
    rebuild(runtime, VIEW)
    runner(runtime, VIEW).catch_up()
    assert invoices(runtime) == [row]


def every_table(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    keys = {
        "crm_accounts": "customer_id",
        "crm_opportunities": "order_id",
        "crm_contract_orders": "contract_id",
        "crm_invoices": "invoice_id",
        "crm_invoice_moves": "invoice_id, version",
    }
    return {name: rows(runtime, name, order_by=key) for name, key in keys.items()}


def test_rows_held_for_a_run_equal_the_writes_one_event_at_a_time(runtime: Runtime) -> None:
    """Each touched row is written once per store's run in its final state (v6): a run in
    which orders are placed, validated and accepted, a second contract of an order is
    activated earlier than the first (and of another order, two in one run, the first
    earlier), a card payment applied in an earlier run fails (its written move struck) and
    another fails in the same run (its move never written), an invoice is credited and one
    voided, must leave the rows that a replay one event at a time, each written at once,
    leaves."""
    parent = new_customer(runtime, "Parent SA")
    child = new_customer(runtime, "Child SA")
    order = new_order(runtime, child)
    first = new_contract(
        runtime, child, order, [item("PLAN-PRO", "RP-1", "1", "9.00", "recurring")]
    )
    run(runtime, "contract", "activate", {"billing_subscription_id": "sub_late"},
        aggregate_id=first, origin=at("2026-12-03T09:00:00Z"))  # fmt: skip
    early = new_invoice(runtime, child, total="50.00", order=order)
    card = new_payment(runtime, child, amount="50.00")
    apply = {"invoice_id": str(early), "amount": {"amount": "50.00", "currency": "EUR"}}
    run(runtime, "payment", "apply", apply, aggregate_id=card, origin=at("2026-12-05T10:00:00Z"))
    runner(runtime, VIEW).catch_up()

    reparent(runtime, child, parent)
    run(runtime, "customer", "link", {"system": "crm", "external_id": "P-1"}, aggregate_id=parent)
    run(runtime, "order", "validate", {}, aggregate_id=order)
    run(runtime, "order", "accept", {"erp_order_number": "SO-1"}, aggregate_id=order,
        origin=at("2026-12-01T08:00:00Z"))  # fmt: skip
    other = new_order(runtime, parent)
    run(runtime, "order", "validate", {}, aggregate_id=other)
    second = new_contract(
        runtime, child, order, [item("PLAN-PRO", "RP-1", "1", "9.00", "recurring")]
    )
    run(runtime, "contract", "activate", {"billing_subscription_id": "sub_early"},
        aggregate_id=second, origin=at("2026-12-02T09:00:00Z"))  # fmt: skip
    for sub, when in (("sub_a", "2026-12-01T09:00:00Z"), ("sub_b", "2026-12-04T09:00:00Z")):
        made = new_contract(runtime, parent, other, [item("X", "RP-1", "1", "1.00", "recurring")])
        run(runtime, "contract", "activate", {"billing_subscription_id": sub},
            aggregate_id=made, origin=at(when))  # fmt: skip
    run(runtime, "payment", "fail", {"reason": "declined"}, aggregate_id=card)
    late = new_invoice(runtime, parent, total="80.00", order=other)
    again = new_payment(runtime, parent, amount="80.00")
    apply = {"invoice_id": str(late), "amount": {"amount": "80.00", "currency": "EUR"}}
    run(runtime, "payment", "apply", apply, aggregate_id=again, origin=at("2026-12-06T10:00:00Z"))
    run(runtime, "payment", "fail", {"reason": "declined"}, aggregate_id=again)
    credit = {"amount": {"amount": "5.00", "currency": "EUR"}, "credit_note_number": "CN-1"}
    run(runtime, "invoice", "credit", credit, aggregate_id=late)
    run(runtime, "invoice", "void", {"reason": "issued twice"}, aggregate_id=early)
    runner(runtime, VIEW).catch_up()
    held = every_table(runtime)

    (row,) = [r for r in opportunities(runtime) if r["order_id"] == order]
    assert (row["order_status"], row["erp_order_number"]) == ("accepted", "SO-1")
    assert row["billing_subscription_id"] == "sub_early"
    (row,) = [r for r in opportunities(runtime) if r["order_id"] == other]
    assert (row["order_status"], row["billing_subscription_id"]) == ("validated", "sub_a")
    moves = [(r[0], r[2], r[3], r[4]) for r in held["crm_invoice_moves"]]
    assert moves == [(late, None, Decimal("0"), Decimal("5.00"))]  # both cards struck
    paid = {r["invoice_id"]: (r["paid"], r["paid_at"], r["void"]) for r in invoices(runtime)}
    assert paid == {early: (Decimal("0.00"), None, True), late: (Decimal("0.00"), None, False)}
    assert accounts(runtime)[child]["parent_crm_account_id"] == "P-1"

    rebuild(runtime, VIEW)
    runner(runtime, VIEW, pipelined=False).catch_up()
    assert every_table(runtime) == held
