"""The ERP billing view (``erp_invoices``, ``erp_invoice_lines``, ``erp_payments``,
``erp_payment_applications``) on real PostgreSQL: a USD invoice held by a failed tax, then
calculated and posted, paid in part by two payments, one refunded (the refund unapplies),
then credited; a JPY invoice credited, paid by a payment that fails, credited in full. The
rows are asserted against hand-computed values (exact Decimals), and the view comes out the
same with the payments store applied first, one event per batch, and after a rebuild."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.bootstrap import Runtime
from projections.erp.invoices import APPLICATIONS, INVOICES, PAYMENTS, ErpBilling
from tests.integration.commands import new_customer, new_order, run
from tests.integration.projection_support import rebuild, rows, runner, status

VIEW = ErpBilling()
TABLES = (INVOICES, PAYMENTS, APPLICATIONS)


class StoresReversed(ErpBilling):
    """The same projection applying the payments store before the invoices store."""

    stores = tuple(reversed(ErpBilling.stores))


def as_dicts(runtime: Runtime, table: Any) -> list[dict[str, Any]]:
    names = [c.name for c in table.columns]
    found = rows(runtime, table.name, order_by=", ".join(table.primary_key))
    return [dict(zip(names, row, strict=True)) for row in found]


def by_id(runtime: Runtime, table: Any) -> dict[UUID, dict[str, Any]]:
    return {row[table.primary_key[0]]: row for row in as_dicts(runtime, table)}


def everything(runtime: Runtime) -> list[list[tuple[Any, ...]]]:
    tables = (*TABLES, VIEW.table("erp_invoice_lines"))
    return [rows(runtime, t.name, ", ".join(t.primary_key)) for t in tables]


def cash(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def receive(runtime: Runtime, customer: UUID, amount: str, currency: str) -> UUID:
    result = run(
        runtime,
        "payment",
        "receive",
        {
            "customer_id": str(customer),
            "amount": cash(amount, currency),
            "method": "card",
            "received_at": "2026-12-10T09:30:00Z",
            "reference": f"ch_{currency}_{amount}",
        },
    )
    return UUID(result.body["id"])


def apply(runtime: Runtime, payment: UUID, invoice: UUID, amount: str, currency: str) -> None:
    data = {"invoice_id": str(invoice), "amount": cash(amount, currency)}
    run(runtime, "payment", "apply", data, aggregate_id=payment)


def issue_usd(runtime: Runtime, customer: UUID, order: UUID) -> UUID:
    plan = {
        "sku": "PLAN-PRO",
        "description": "Pro plan, December",
        "quantity": "2",
        "unit_price": "99.50",
        "amount": "199.00",
        "tax": "15.92",
        "charge_type": "recurring",
        "service_period_start": "2026-12-01",
        "service_period_end": "2027-01-01",
        "order_line": 0,
    }
    setup = {
        "sku": "SETUP",
        "quantity": "1",
        "unit_price": "250.00",
        "amount": "250.00",
        "tax": "20.00",
        "charge_type": "one_time",
        "proration": True,
    }
    data = {
        "customer_id": str(customer),
        "order_id": str(order),
        "lines": [plan, setup],
        "currency": "USD",
        "subtotal": "449.00",
        "tax": "35.92",
        "total": "484.92",
        "issue_date": "2026-12-01",
        "due_date": "2026-12-31",
        "source_number": "INV-0001",
    }
    return UUID(run(runtime, "invoice", "issue", data).body["id"])


def issue_jpy(runtime: Runtime, customer: UUID, order: UUID) -> UUID:
    line = {"sku": "SUPPORT", "quantity": "3", "unit_price": "4000", "amount": "12000"}
    data = {
        "customer_id": str(customer),
        "order_id": str(order),
        "lines": [line],
        "currency": "JPY",
        "subtotal": "12000",
        "tax": "0",
        "total": "12000",
        "issue_date": "2026-12-02",
        "due_date": "2027-01-01",
        "tax_status": "not_applicable",
    }
    return UUID(run(runtime, "invoice", "issue", data).body["id"])


def test_invoices_and_payments_catch_up_to_hand_computed_rows_in_any_store_order(
    runtime: Runtime,
) -> None:
    customer = new_customer(runtime, "Globex Corp")
    usd = issue_usd(runtime, customer, new_order(runtime, customer))
    jpy = issue_jpy(runtime, customer, new_order(runtime, customer))

    # A failed tax holds the USD invoice (not to post); calculated, it is to post; posted.
    run(
        runtime,
        "invoice",
        "record_tax",
        {"status": "failed", "reason": "no nexus"},
        aggregate_id=usd,
    )
    runner(runtime, VIEW).catch_up()
    held = by_id(runtime, INVOICES)[usd]
    assert (held["tax_status"], held["tax_failure_reason"], held["to_post"]) == (
        "failed",
        "no nexus",
        False,
    )
    assert by_id(runtime, INVOICES)[jpy]["to_post"] is True
    run(runtime, "invoice", "record_tax", {"status": "calculated"}, aggregate_id=usd)
    runner(runtime, VIEW).catch_up()
    assert by_id(runtime, INVOICES)[usd]["to_post"] is True
    run(runtime, "invoice", "post", {"erp_document_number": "ERP-INV-9"}, aggregate_id=usd)

    # USD: 200.00 from p1, 284.92 from p2 (paid); p2 refunds 200.00: 115.08 of it was
    # unapplied credit, the other 84.92 comes back off the invoice (partially paid, 84.92
    # open); a credit note of 84.92 clears it: paid (something was paid).
    p1 = receive(runtime, customer, "300.00", "USD")
    apply(runtime, p1, usd, "200.00", "USD")
    runner(runtime, VIEW).catch_up()
    part = by_id(runtime, INVOICES)[usd]
    assert (part["status"], part["amount_paid"], part["balance"]) == (
        "partially_paid",
        Decimal("200.00"),
        Decimal("284.92"),
    )
    p2 = receive(runtime, customer, "400.00", "USD")
    apply(runtime, p2, usd, "284.92", "USD")
    run(runtime, "payment", "refund", {"amount": cash("200.00", "USD")}, aggregate_id=p2)
    run(runtime, "invoice", "credit", {"amount": cash("84.92", "USD")}, aggregate_id=usd)

    # JPY: credit 2000 (open, 10000), p3 pays 10000 (paid), p3 fails (open again, 10000),
    # a credit note of 10000 clears it: credited (nothing was paid).
    run(runtime, "invoice", "credit", {"amount": cash("2000", "JPY")}, aggregate_id=jpy)
    p3 = receive(runtime, customer, "10000", "JPY")
    apply(runtime, p3, jpy, "10000", "JPY")
    run(runtime, "payment", "fail", {"reason": "card declined"}, aggregate_id=p3)
    run(runtime, "invoice", "credit", {"amount": cash("10000", "JPY")}, aggregate_id=jpy)

    runner(runtime, VIEW).catch_up()
    invoices = by_id(runtime, INVOICES)
    heads = {s.store: s.head for s in status(runtime, VIEW).stores}
    assert invoices[jpy]["position"] == heads["invoices"]  # the last invoice event
    common = {"customer_id": customer, "written_off": False, "credit_balance": Decimal(0)}
    assert invoices[usd] == common | {
        "invoice_id": usd,
        "order_id": invoices[usd]["order_id"],
        "contract_id": None,
        "source_number": "INV-0001",
        "erp_document_number": "ERP-INV-9",
        "status": "paid",
        "currency": "USD",
        "subtotal": Decimal("449.00"),
        "tax": Decimal("35.92"),
        "total": Decimal("484.92"),
        "amount_paid": Decimal("400.00"),  # 200.00 + 284.92 - 84.92
        "amount_credited": Decimal("84.92"),
        "balance": Decimal("0.00"),
        "issue_date": date(2026, 12, 1),
        "due_date": date(2026, 12, 31),
        "tax_status": "calculated",
        "tax_failure_reason": None,
        "to_post": False,
        # issued, tax failed, calculated, posted, p1, p2, p2 unapplied, credited
        "version": 8,
        "changed_at": invoices[usd]["changed_at"],
        "position": invoices[usd]["position"],
    }
    assert invoices[jpy] == common | {
        "invoice_id": jpy,
        "order_id": invoices[jpy]["order_id"],
        "contract_id": None,
        "source_number": None,
        "erp_document_number": None,
        "status": "credited",
        "currency": "JPY",
        "subtotal": Decimal("12000"),
        "tax": Decimal("0"),
        "total": Decimal("12000"),
        "amount_paid": Decimal("0"),
        "amount_credited": Decimal("12000"),
        "balance": Decimal("0"),
        "issue_date": date(2026, 12, 2),
        "due_date": date(2027, 1, 1),
        "tax_status": "not_applicable",
        "tax_failure_reason": None,
        "to_post": True,
        "version": 5,  # issued, credited, p3 applied, p3 unapplied, credited
        "changed_at": invoices[jpy]["changed_at"],
        "position": heads["invoices"],
    }
    assert invoices[usd]["order_id"] != invoices[jpy]["order_id"]
    assert str(invoices[usd]["balance"]) == "0.00"  # a zero keeps the currency's scale
    assert str(invoices[jpy]["amount_paid"]) == "0"

    payments = by_id(runtime, PAYMENTS)
    received = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)

    def payment(pid: UUID, amount: str, currency: str, **changed: Any) -> dict[str, Any]:
        return {
            "payment_id": pid,
            "customer_id": customer,
            "amount": Decimal(amount),
            "currency": currency,
            "method": "card",
            "received_at": received,
            "reference": f"ch_{currency}_{amount}",
            "changed_at": payments[pid]["changed_at"],
            "position": payments[pid]["position"],
        } | changed

    assert payments == {
        p1: payment(
            p1,
            "300.00",
            "USD",
            status="received",
            amount_applied=Decimal("200.00"),
            amount_refunded=Decimal("0.00"),
            unapplied=Decimal("100.00"),
            version=2,
        ),
        p2: payment(
            p2,
            "400.00",
            "USD",
            status="received",
            amount_applied=Decimal("200.00"),  # 284.92 - 84.92 taken back by the refund
            amount_refunded=Decimal("200.00"),
            unapplied=Decimal("0.00"),
            version=3,
        ),
        p3: payment(
            p3,
            "10000",
            "JPY",
            status="failed",
            amount_applied=Decimal("0"),
            amount_refunded=Decimal("0"),
            unapplied=Decimal("0"),
            version=3,
        ),
    }
    assert payments[p3]["position"] == heads["payments"]
    # p3's application was taken back in full: no row.
    assert sorted(
        (r["payment_id"], r["invoice_id"], r["amount"]) for r in as_dicts(runtime, APPLICATIONS)
    ) == sorted([(p1, usd, Decimal("200.00")), (p2, usd, Decimal("200.00"))])
    assert rows(runtime, "erp_invoice_lines", "invoice_id, line_number") == sorted(
        [
            (
                usd,
                1,
                "PLAN-PRO",
                "Pro plan, December",
                Decimal("2"),
                Decimal("99.50"),
                Decimal("199.00"),
                Decimal("15.92"),
                "recurring",
                False,
                date(2026, 12, 1),
                date(2027, 1, 1),
                0,
            ),
            (
                usd,
                2,
                "SETUP",
                None,
                Decimal("1"),
                Decimal("250.00"),
                Decimal("250.00"),
                Decimal("20.00"),
                "one_time",
                True,
                None,
                None,
                None,
            ),
            (
                jpy,
                1,
                "SUPPORT",
                None,
                Decimal("3"),
                Decimal("4000"),
                Decimal("12000"),
                None,
                None,
                False,
                None,
                None,
                None,
            ),
        ]
    )

    # Same rows with the payments store first, one event per batch, and by default batch.
    first = everything(runtime)
    rebuild(runtime, VIEW)
    runner(runtime, StoresReversed(), batch=1).catch_up()
    assert everything(runtime) == first
    rebuild(runtime, VIEW)
    runner(runtime, VIEW).catch_up()
    assert everything(runtime) == first
    assert status(runtime, VIEW).rebuilt_at is not None


def test_a_merge_moves_open_invoices_and_credit_and_a_void_invoice_is_not_to_post(
    runtime: Runtime,
) -> None:
    dupe, survivor = new_customer(runtime, "Globex (dupe)"), new_customer(runtime, "Globex")
    owed = issue_usd(runtime, dupe, new_order(runtime, dupe))
    voided = issue_jpy(runtime, dupe, new_order(runtime, dupe))
    run(runtime, "invoice", "void", {"reason": "issued twice"}, aggregate_id=voided)
    run(runtime, "invoice", "mark_uncollectible", {}, aggregate_id=owed)
    credit = receive(runtime, dupe, "100.00", "USD")
    apply(runtime, credit, owed, "84.92", "USD")
    run(runtime, "customer", "merge", {"target_customer_id": str(survivor)}, aggregate_id=dupe)
    runner(runtime, VIEW, batch=1).catch_up()

    invoices, payments = by_id(runtime, INVOICES), by_id(runtime, PAYMENTS)
    # Open (written off, 400.00 still owed): moved. Void: stays with the duplicate.
    assert {k: invoices[owed][k] for k in ("customer_id", "status", "balance", "written_off")} == {
        "customer_id": survivor,
        "status": "uncollectible",
        "balance": Decimal("400.00"),
        "written_off": True,
    }
    assert {k: invoices[voided][k] for k in ("customer_id", "status", "balance", "to_post")} == {
        "customer_id": dupe,
        "status": "void",
        "balance": Decimal("0"),
        "to_post": False,
    }
    # 15.08 of unapplied credit: the payment moves to the survivor.
    assert (payments[credit]["customer_id"], payments[credit]["unapplied"]) == (
        survivor,
        Decimal("15.08"),
    )
    first = everything(runtime)
    rebuild(runtime, VIEW)
    runner(runtime, StoresReversed()).catch_up()
    assert everything(runtime) == first
