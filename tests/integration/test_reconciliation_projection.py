"""The reconciliation projection on real PostgreSQL: every break code opened by hand-built
data and closed again when the data agrees (closings recorded in the history); one store
caught up before the others, event by event, and a rebuild give the same open breaks; SLA
durations and monthly p50/p90 against hand-computed figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.bootstrap import Runtime
from hub.application.service import Origin
from projections.definition import Envelope, Position, ViewCursor
from projections.reconciliation.projection import Reconciliation
from projections.reconciliation.tables import BREAKS
from tests.integration.commands import (
    item,
    new_contract,
    new_customer,
    new_invoice,
    new_order,
    new_payment,
    run,
)
from tests.integration.projection_support import connect, rebuild, rows, runner
from tests.integration.quarter import play

VIEW = Reconciliation()


class StoresReversed(Reconciliation):
    """The same projection applying payments, then invoices, contracts, orders."""

    stores = tuple(reversed(Reconciliation.stores))


def breaks(runtime: Runtime) -> dict[str, dict[str, Any]]:
    names = [c.name for c in BREAKS.columns]
    found = rows(runtime, "recon_breaks", order_by="break_key")
    return {row[0]: dict(zip(names, row, strict=True)) for row in found}


def open_set(runtime: Runtime) -> set[tuple[Any, ...]]:
    keep = ("break_key", "customer_id", "currency", "expected_amount", "actual_amount", "detail")
    return {tuple(b[k] for k in keep) for b in breaks(runtime).values() if b["closed_at"] is None}


def history(runtime: Runtime, key: str) -> list[str]:
    found = rows(runtime, "recon_break_events", order_by="at, change")
    return [row[2] for row in found if row[0] == key]


def at(text: str) -> Origin:
    return Origin(occurred_at=datetime.fromisoformat(text))


def place(runtime: Runtime, customer: UUID, amount: str, **kw: Any) -> UUID:
    body = {
        "customer_id": str(customer),
        "lines": [
            {"sku": "PLAN-PRO", "quantity": "2", "unit_price": "99.50", "charge_type": "recurring"}
        ],
        "currency": "EUR",
        "term_months": 12,
        "start_date": "2026-12-01",
        "booking_date": "2026-11-29",
        "opportunity_amount": {"amount": amount, "currency": "EUR"},
    }
    return UUID(run(runtime, "order", "place", body, **kw).body["id"])


def issue(runtime: Runtime, customer: UUID, day: str) -> UUID:
    """A 100.00 EUR invoice of a new order, issued on ``day``."""
    body = {
        "customer_id": str(customer),
        "order_id": str(new_order(runtime, customer)),
        "lines": [{"sku": "PLAN-PRO", "quantity": "1", "unit_price": "100.00", "amount": "100.00"}],
        "currency": "EUR",
        "subtotal": "100.00",
        "tax": "0.00",
        "total": "100.00",
        "issue_date": day,
        "due_date": day,
    }
    return UUID(run(runtime, "invoice", "issue", body).body["id"])


def receive(runtime: Runtime, customer: UUID, amount: str, when: str) -> UUID:
    body = {
        "customer_id": str(customer),
        "amount": {"amount": amount, "currency": "EUR"},
        "method": "wire",
        "received_at": when,
    }
    return UUID(run(runtime, "payment", "receive", body).body["id"])


def test_each_break_opens_on_disagreement_and_closes_when_the_data_agrees(
    runtime: Runtime,
) -> None:
    customer = new_customer(runtime)
    order = place(runtime, customer, "250.00")
    contract = new_contract(
        runtime, customer, order, [item("PLAN-PRO", "PRO-M", "3", "20.00", "recurring")]
    )
    cancelled = new_order(runtime, customer)
    orphan = new_invoice(runtime, customer, "40.00", order=cancelled)
    run(runtime, "order", "cancel", {"reason": "lost"}, aggregate_id=cancelled)
    invoice = new_invoice(runtime, customer, "100.00", order=order)
    payment = new_payment(runtime, customer, "150.00")
    run(
        runtime,
        "payment",
        "apply",
        {"invoice_id": str(invoice), "amount": {"amount": "100.00", "currency": "EUR"}},
        aggregate_id=payment,
    )
    run(
        runtime,
        "invoice",
        "credit",
        {"amount": {"amount": "30.00", "currency": "EUR"}},
        aggregate_id=invoice,
    )
    runner(runtime, VIEW, batch=3).catch_up()

    found = breaks(runtime)
    assert {
        k: (b["expected_amount"], b["expected_by"], b["actual_amount"], b["closed_at"])
        for k, b in found.items()
    } == {
        f"OPP_AMOUNT_MISMATCH:{order}": (
            Decimal("250.00"),
            "crm (opportunity Amount)",
            Decimal("199.00"),
            None,
        ),
        f"ORDER_CONTRACT_MISMATCH:{contract}": (
            Decimal("2"),
            "hub (order lines)",
            Decimal("3"),
            None,
        ),
        f"INVOICE_WITHOUT_ORDER:{orphan}": (None, "hub (order/contract)", Decimal("40.00"), None),
        f"PAYMENT_OVERAPPLIED:{invoice}": (
            Decimal("70.00"),
            "billing (total less credit notes)",
            Decimal("100.00"),
            None,
        ),
        f"PAYMENT_UNAPPLIED:{payment}": (
            Decimal("0"),
            "invoices (applied)",
            Decimal("50.00"),
            None,
        ),
    }
    assert found[f"ORDER_CONTRACT_MISMATCH:{contract}"]["detail"] == (
        "PLAN-PRO: order 2, contract 3"
    )
    assert found[f"ORDER_CONTRACT_MISMATCH:{contract}"]["currency"] is None
    assert found[f"OPP_AMOUNT_MISMATCH:{order}"]["lineage"] == f"/v1/lineage/{order}"

    # The data agrees again: each break closes, and the closing is recorded.
    lines = [
        {"sku": "PLAN-PRO", "quantity": "2", "unit_price": "125.00", "charge_type": "recurring"}
    ]
    run(runtime, "order", "amend", {"lines": lines}, aggregate_id=order)
    run(
        runtime,
        "contract",
        "amend",
        {"changes": [{"sku": "PLAN-PRO", "quantity": "2"}], "effective_date": "2026-12-15"},
        aggregate_id=contract,
    )
    run(runtime, "invoice", "void", {}, aggregate_id=orphan)
    # A refund of 80: the 50 unapplied, then 30 back off the over-held invoice.
    run(
        runtime,
        "payment",
        "refund",
        {"amount": {"amount": "80.00", "currency": "EUR"}},
        aggregate_id=payment,
    )
    # The ERP posts the voided invoice: a fact, and a break until the ERP zeroes its copy.
    run(runtime, "invoice", "post", {"erp_document_number": "INV-9"}, aggregate_id=orphan)
    runner(runtime, VIEW).catch_up()

    found = breaks(runtime)
    still_open = {k for k, b in found.items() if b["closed_at"] is None}
    assert still_open == {f"INVOICE_MISMATCH:{orphan}"}
    mismatch = found[f"INVOICE_MISMATCH:{orphan}"]
    assert (mismatch["expected_amount"], mismatch["expected_by"], mismatch["actual_amount"]) == (
        Decimal("40.00"),
        "erp (posted document INV-9)",
        Decimal("0"),
    )
    for key in found.keys() - still_open:
        assert history(runtime, key) == ["opened", "closed"], key
        assert found[key]["closed_at"] >= found[key]["opened_at"]
    assert history(runtime, f"INVOICE_MISMATCH:{orphan}") == ["opened"]
    with connect(runtime) as conn:
        schema = runtime.settings.schema_name
        (count,) = conn.execute(f'SELECT count(*) FROM "{schema}".recon_open_breaks').fetchone()
    assert count == 1


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


def test_invoice_mismatch_compares_the_erp_copy_and_closes_on_its_revision(
    runtime: Runtime,
) -> None:
    """The ERP's own total is recorded beside billing's: a break while they differ, closed
    (and the closing recorded) when the ERP corrects its copy. Credit notes are documents
    of their own: they do not make the invoice documents disagree."""
    customer = new_customer(runtime)
    invoice = new_invoice(runtime, customer, "100.00", order=new_order(runtime, customer))
    agreed = new_invoice(runtime, customer, "60.00", order=new_order(runtime, customer))
    post = {"erp_document_number": "INV-7", "total": eur("110.00"), "subtotal": eur("110.00")}
    run(runtime, "invoice", "post", post, aggregate_id=invoice)
    run(runtime, "invoice", "post", {"erp_document_number": "INV-8"}, aggregate_id=agreed)
    run(runtime, "invoice", "credit", {"amount": eur("30.00")}, aggregate_id=invoice)
    runner(runtime, VIEW, batch=2).catch_up()

    key = f"INVOICE_MISMATCH:{invoice}"
    mismatch = breaks(runtime)[key]
    assert (
        mismatch["expected_amount"],
        mismatch["expected_by"],
        mismatch["actual_amount"],
        mismatch["actual_by"],
        mismatch["closed_at"],
    ) == (
        Decimal("110.00"),
        "erp (posted document INV-7)",
        Decimal("100.00"),
        "billing (invoice total)",
        None,
    )
    assert mismatch["detail"] == "the ERP posted INV-7 for 110.00 EUR, billing totals 100.00 EUR"
    assert f"INVOICE_MISMATCH:{agreed}" not in breaks(runtime)

    # The ERP saves the document again at billing's total: its copy is revised, they agree.
    fixed = {"erp_document_number": "INV-7", "total": eur("100.00"), "tax": eur("0.00")}
    run(runtime, "invoice", "post", fixed, aggregate_id=invoice)
    runner(runtime, VIEW).catch_up()
    closed = breaks(runtime)[key]
    assert closed["closed_at"] is not None and closed["closed_at"] >= closed["opened_at"]
    assert history(runtime, key) == ["opened", "closed"]
    with connect(runtime) as conn:
        schema = runtime.settings.schema_name
        (erp_total,) = conn.execute(
            f'SELECT erp_total FROM "{schema}".recon_invoices WHERE invoice_id = %s', (invoice,)
        ).fetchone()
    assert erp_total == Decimal("100.00")

    # A rebuild replays the same opening and closing.
    before = rows(runtime, "recon_break_events", "break_key, event_id")
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500).catch_up()
    assert rows(runtime, "recon_break_events", "break_key, event_id") == before


def test_any_store_order_and_a_rebuild_give_the_same_open_breaks(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    order = place(runtime, customer, "300.00")
    new_contract(runtime, customer, order, [item("PLAN-PRO", "PRO-M", "5", "20.00", "recurring")])
    invoice = new_invoice(runtime, customer, "100.00", order=order)
    payment = new_payment(runtime, customer, "150.00")
    run(
        runtime,
        "payment",
        "apply",
        {"invoice_id": str(invoice), "amount": {"amount": "60.00", "currency": "EUR"}},
        aggregate_id=payment,
    )

    # Payments, then invoices (before their order: a transient INVOICE_WITHOUT_ORDER), ...
    runner(runtime, StoresReversed(), batch=500).catch_up()
    reversed_open = open_set(runtime)
    assert sorted(history(runtime, f"INVOICE_WITHOUT_ORDER:{invoice}")) == ["closed", "opened"]
    assert {key.split(":")[0] for key, *_ in reversed_open} == {
        "OPP_AMOUNT_MISMATCH",
        "ORDER_CONTRACT_MISMATCH",
        "PAYMENT_UNAPPLIED",
    }

    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=1).catch_up()
    assert open_set(runtime) == reversed_open
    first = (
        rows(runtime, "recon_breaks", "break_key"),
        rows(runtime, "recon_break_events", "break_key, event_id"),
    )
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500).catch_up()
    assert (
        rows(runtime, "recon_breaks", "break_key"),
        rows(runtime, "recon_break_events", "break_key, event_id"),
    ) == first


def test_sla_durations_and_monthly_percentiles_match_hand_computed_figures(
    runtime: Runtime,
) -> None:
    customer = new_customer(runtime)
    for placed, activated in (
        ("2026-11-01T00:00:00+00:00", "2026-11-01T10:00:00+00:00"),  # 36000 s
        ("2026-11-02T00:00:00+00:00", "2026-11-03T00:00:00+00:00"),  # 86400 s
        ("2026-11-03T00:00:00+00:00", "2026-11-03T02:00:00+00:00"),  # 7200 s
    ):
        order = place(runtime, customer, "199.00", origin=at(placed))
        contract = new_contract(
            runtime, customer, order, [item("PLAN-PRO", "PRO-M", "2", "20.00", "recurring")]
        )
        run(
            runtime,
            "contract",
            "activate",
            {"billing_subscription_id": f"sub-{placed[:10]}"},
            aggregate_id=contract,
            origin=at(activated),
        )
    pending = place(runtime, customer, "199.00", origin=at("2026-11-04T00:00:00+00:00"))
    new_contract(runtime, customer, pending, [item("PLAN-PRO", "PRO-M", "2", "20.00", "recurring")])
    # Issued 2026-10-01; paid in full after 2, 10, 20 and 1 days; one still open.
    for paid in ("2026-10-03", "2026-10-11", "2026-10-21", "2026-10-02", None):
        invoice = issue(runtime, customer, "2026-10-01")
        if paid is None:
            continue
        payment = new_payment(runtime, customer, "100.00")
        run(
            runtime,
            "payment",
            "apply",
            {"invoice_id": str(invoice), "amount": {"amount": "100.00", "currency": "EUR"}},
            aggregate_id=payment,
            origin=at(f"{paid}T12:00:00+00:00"),
        )
    runner(runtime, VIEW).catch_up()

    durations = sorted(
        (r[5] for r in rows(runtime, "sla_order_activation", "contract_id")),
        key=lambda d: (d is None, d),
    )
    assert durations == [7200, 36000, 86400, None]
    days = sorted(
        (r[4] for r in rows(runtime, "sla_invoice_cash", "invoice_id")),
        key=lambda d: (d is None, d),
    )
    assert days == [1, 2, 10, 20, None]
    monthly = rows(runtime, "sla_monthly", "sla, month")
    assert [tuple(r) for r in monthly] == [
        ("invoice_to_cash", datetime(2026, 10, 1, tzinfo=UTC).date(), "days", 4, 2, 20),
        (
            "order_to_activation",
            datetime(2026, 11, 1, tzinfo=UTC).date(),
            "seconds",
            3,
            36000,
            86400,
        ),
    ]


def test_unapplied_cash_per_month_end(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    invoice = issue(runtime, customer, "2026-10-01")
    payment = receive(runtime, customer, "150.00", "2026-10-05T10:00:00Z")
    run(
        runtime,
        "payment",
        "apply",
        {"invoice_id": str(invoice), "amount": {"amount": "100.00", "currency": "EUR"}},
        aggregate_id=payment,
        origin=at("2026-11-10T09:00:00+00:00"),
    )
    runner(runtime, VIEW).catch_up()
    found = [
        (r[0].isoformat(), r[1], r[2], r[3])
        for r in rows(runtime, "recon_unapplied_cash", "period_end")
    ]
    assert found == [
        ("2026-10-31", customer, "EUR", Decimal("150.00")),
        ("2026-11-30", customer, "EUR", Decimal("50.00")),
    ]


def test_a_metered_usage_item_agrees_with_any_ordered_usage_quantity(runtime: Runtime) -> None:
    """Billing meters usage: its usage item carries quantity 0 (pay as you go), whatever
    usage the order committed, so that is no ORDER_CONTRACT_MISMATCH. A usage item that does
    carry a quantity is compared, and a SKU on one side only is a break either way."""
    customer = new_customer(runtime)
    usage = {"sku": "API", "quantity": "1000", "unit_price": "0.01", "charge_type": "usage"}
    body = {
        "customer_id": str(customer),
        "lines": [
            {"sku": "PLAN-PRO", "quantity": "2", "unit_price": "99.50", "charge_type": "recurring"},
            usage,
        ],
        "currency": "EUR",
        "term_months": 12,
        "start_date": "2026-12-01",
        "booking_date": "2026-11-29",
    }
    plan = item("PLAN-PRO", "PRO-M", "2", "20.00", "recurring")
    contracts = {}
    for name, items in (
        ("metered", [plan, item("API", "API-M", "0", "0.01", "usage")]),
        ("committed", [plan, item("API", "API-M", "1000", "0.01", "usage")]),
        ("other", [plan, item("API", "API-M", "500", "0.01", "usage")]),
    ):
        order = UUID(run(runtime, "order", "place", body).body["id"])
        contracts[name] = new_contract(runtime, customer, order, items)
    # A metered item of a SKU the order does not have: billing bills what was not sold.
    unsold = new_contract(
        runtime,
        customer,
        new_order(runtime, customer),
        [plan, item("API", "API-M", "0", "1", "usage")],
    )
    runner(runtime, VIEW).catch_up()

    found = breaks(runtime)
    assert f"ORDER_CONTRACT_MISMATCH:{contracts['metered']}" not in found
    assert f"ORDER_CONTRACT_MISMATCH:{contracts['committed']}" not in found
    other = found[f"ORDER_CONTRACT_MISMATCH:{contracts['other']}"]
    assert (other["detail"], other["expected_amount"], other["actual_amount"]) == (
        "API: order 1000, contract 500",
        Decimal("1000"),
        Decimal("500"),
    )
    assert found[f"ORDER_CONTRACT_MISMATCH:{unsold}"]["detail"] == "API: order none, contract 0"

    # Metered is the usage item's quantity 0, whenever billing set it so.
    amend = {"changes": [{"sku": "API", "quantity": "0"}], "effective_date": "2026-12-15"}
    run(runtime, "contract", "amend", amend, aggregate_id=contracts["other"])
    runner(runtime, VIEW).catch_up()
    assert breaks(runtime)[f"ORDER_CONTRACT_MISMATCH:{contracts['other']}"]["closed_at"]


class Forgetful(Reconciliation):
    """The projection forgetting its memo before every third event: each fact, break and
    link is then read back from the rows (as after a restart), mid-batch too. What the
    memo holds to write is written first: a restart finds every committed row written
    (only a failed batch, rolled back, loses the held rows with its writes)."""

    def __init__(self) -> None:
        self.events = 0

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        self.events += 1
        if self.events % 3 == 0:
            self.write_held(cursor)
            cursor.memo.clear()
        super().apply(event, at, cursor)


class ForgetfulReversed(Forgetful):
    stores = StoresReversed.stores


class Reads:
    """A cursor counting the reads made through it."""

    def __init__(self, cursor: ViewCursor, seen: list[str]) -> None:
        self.memo = cursor.memo
        self.cursor, self.seen = cursor, seen

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(statement, params)

    def execute_one(self, statement: str, params: Sequence[Any], missing: str) -> None:
        self.cursor.execute_one(statement, params, missing)

    def execute_counted(self, statement: str, params: Sequence[Any] = ()) -> int:
        return self.cursor.execute_counted(statement, params)

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.seen.append(statement)
        return self.cursor.fetchone(statement, params)


class Remembering(StoresReversed):
    """The projection (stores reversed) counting what it reads back."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        super().apply(event, at, Reads(cursor, self.reads))


def every_row(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    return {t.name: rows(runtime, t.name, ", ".join(t.primary_key)) for t in VIEW.tables}


def test_what_is_read_back_after_a_restart_builds_the_same_rows(runtime: Runtime) -> None:
    """A memo emptied at any point (a restart, a failed batch) reads the facts back from the
    rows: the view is the one a run remembering everything builds, in either store order
    (reversed, in one batch: every invoice arrives before the order or contract it names)."""
    customer = new_customer(runtime)
    cancelled = new_order(runtime, customer)
    orphan = new_invoice(runtime, customer, "40.00", order=cancelled)
    run(runtime, "order", "cancel", {"reason": "lost"}, aggregate_id=cancelled)
    post = {"erp_document_number": "INV-7", "total": eur("41.00"), "subtotal": eur("41.00")}
    run(runtime, "invoice", "post", post, aggregate_id=orphan)
    play(runtime)
    remembering = Remembering()
    cases = ((Forgetful(), VIEW, 7), (ForgetfulReversed(), remembering, 500))
    for forgetful, full, batch in cases:
        rebuild(runtime, VIEW)
        runner(runtime, forgetful, batch=batch).catch_up()
        assert forgetful.events > 40
        read_back = every_row(runtime)
        assert len(read_back["recon_break_events"]) > 10

        rebuild(runtime, VIEW)
        runner(runtime, full, batch=batch).catch_up()
        assert every_row(runtime) == read_back
    # A rebuild reads nothing back but whether its tables are empty (they are: it knows all).
    assert len(remembering.reads) == 1 and "NOT EXISTS" in remembering.reads[0]


class Writes:
    """A cursor recording the statements written through it."""

    def __init__(self, cursor: ViewCursor, seen: list[str]) -> None:
        self.memo = cursor.memo
        self.cursor, self.seen = cursor, seen

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self.seen.append(statement)
        self.cursor.execute(statement, params)

    def execute_one(self, statement: str, params: Sequence[Any], missing: str) -> None:
        self.seen.append(statement)
        self.cursor.execute_one(statement, params, missing)

    def execute_counted(self, statement: str, params: Sequence[Any] = ()) -> int:
        self.seen.append(statement)
        return self.cursor.execute_counted(statement, params)

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        return self.cursor.fetchone(statement, params)


class Recording(Reconciliation):
    """The projection recording every statement it writes, held or not."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        super().apply(event, at, Writes(cursor, self.written))

    def write_held(self, cursor: ViewCursor) -> None:
        super().write_held(Writes(cursor, self.written))


def test_a_rebuild_writes_each_row_once_in_its_final_state(runtime: Runtime) -> None:
    """Held until the end of its store's run, a row its events change again and again (an
    invoice issued, posted and paid; a break opened and closed) is written once: a rebuild
    in one batch per store inserts each fact and break row once and updates none, and
    builds the very rows of the runner that writes them one event at a time (the replay)."""
    play(runtime)
    recording = Recording()
    rebuild(runtime, VIEW)
    runner(runtime, recording, batch=100_000).catch_up()
    built = every_row(runtime)
    assert not [s for s in recording.written if not s.startswith("INSERT")]
    for table in ("recon_orders", "recon_invoices", "recon_payments", "recon_breaks"):
        inserts = [s for s in recording.written if s.startswith(f"INSERT INTO {{{table}}}")]
        assert len(inserts) == len(built[table]) > 0
    closed = [c.name for c in BREAKS.columns].index("closed_at")
    assert any(r[closed] is not None for r in built["recon_breaks"])  # closed in the run

    rebuild(runtime, VIEW)
    runner(runtime, VIEW, pipelined=False).catch_up()
    assert every_row(runtime) == built
