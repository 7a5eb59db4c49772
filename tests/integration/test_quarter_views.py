"""The ERP, billing and CRM views on the realistic quarter (tests/integration/quarter.py),
each table against rows written out by hand below from the quarter's script (never from the
projection code). Money is compared as exact Decimal; the columns saying when Concord wrote
a row (changed_at, position) are left out, every business time is the quarter's own."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.bootstrap import Runtime
from projections.billing.subscriptions import BillingSubscriptions
from projections.crm.projection import CrmView
from projections.definition import Projection
from projections.erp.customers import ErpCustomers
from projections.erp.invoices import ErpBilling
from projections.erp.orders import ErpOrders
from projections.lineage.projection import Lineage
from projections.reconciliation.projection import Reconciliation
from tests.integration.projection_support import rebuild, runner
from tests.integration.quarter import play
from tests.integration.quarter_views import caught_up, d, day, table, utc


def keyed(rows: list[tuple[Any, ...]]) -> dict[Any, tuple[Any, ...]]:
    """Rows by their first column (the canonical id), the rest as the value."""
    return {row[0]: row[1:] for row in rows}


def test_erp_customers_carry_the_erp_numbers_terms_and_the_crm_hierarchy(
    runtime: Runtime,
) -> None:
    q = play(runtime)
    caught_up(runtime, ErpCustomers())
    # (number, ERP record, legal name, tax id, parent, terms, currency, status, merged into,
    #  erased, version). Versions: Holdings registered + CRM link = 2; Globex registered,
    # CRM link, ERP link, number, terms = 5; Kaisha the same without the ERP link = 4.
    assert keyed(table(runtime, "erp_customers", "customer_id")) == {
        q.holdings: (
            None, None, "Globex Holdings", None, None, None, "USD", "active", None, False, 2
        ),
        q.globex: (
            "C-1001", "4711", "Globex Inc", None, q.holdings, "NET30", "USD", "active", None,
            False, 5,
        ),
        q.kaisha: (
            "C-1002", None, "Kaisha KK", None, None, "NET15", "JPY", "active", None, False, 4
        ),
    }  # fmt: skip


def test_erp_sales_orders_lines_and_items(runtime: Runtime) -> None:
    q = play(runtime)
    caught_up(runtime, ErpOrders())
    # (customer, opportunity, status, currency, ERP number, booked, start, term, total,
    #  version). The deal: placed, accepted, amended (reopened: placed), accepted again = 4;
    # total after the upgrade 1000.00 + 15 x 2400.00 + 500.00 = 37,500.00.
    assert keyed(table(runtime, "erp_sales_orders", "order_id")) == {
        q.deal: (
            q.globex, "006DEAL", "accepted", "USD", "SO-1001", day("2024-01-10"),
            day("2024-01-01"), 24, d("37500.00"), 4,
        ),
        q.addon: (
            q.globex, "006ADDON", "accepted", "USD", "SO-1002", day("2024-02-01"),
            day("2024-02-01"), 12, d("1200.00"), 2,
        ),
        q.support: (
            q.kaisha, "006SUPPORT", "accepted", "JPY", "SO-0990", day("2023-12-20"),
            day("2024-01-01"), 12, d("360000"), 2,
        ),
        q.renewal: (
            q.kaisha, "006RENEWAL", "placed", "JPY", None, day("2024-03-20"),
            day("2025-01-01"), 12, d("360000"), 1,
        ),
    }  # fmt: skip
    # The deal's lines are the amended ones (15 seats); API has no ERP item id.
    assert set(table(runtime, "erp_sales_order_lines", "order_id, line_number")) == {
        (q.deal, 1, "SETUP", "ITEM-100", d("1"), d("1000.00"), "one_time", d("1000.00")),
        (q.deal, 2, "SEATS", "ITEM-200", d("15"), d("2400.00"), "recurring", d("36000.00")),
        (q.deal, 3, "API", None, d("1"), d("500.00"), "usage", d("500.00")),
        (q.addon, 1, "ADDON", "ITEM-300", d("1"), d("1200.00"), "recurring", d("1200.00")),
        (q.support, 1, "SUPPORT", "ITEM-400", d("1"), d("360000"), "recurring", d("360000")),
        (q.renewal, 1, "SUPPORT", "ITEM-400", d("1"), d("360000"), "recurring", d("360000")),
    }
    items = [(sku, item) for sku, _, item in table(runtime, "erp_items", "sku")]
    assert items == [
        ("ADDON", "ITEM-300"),
        ("API", None),
        ("SEATS", "ITEM-200"),
        ("SETUP", "ITEM-100"),
        ("SUPPORT", "ITEM-400"),
    ]


def test_erp_invoices_lines_payments_and_applications(runtime: Runtime) -> None:
    q = play(runtime)
    caught_up(runtime, ErpBilling())
    inv, pay = q.invoices, q.payments
    deal = q.deal_contract
    # (customer, order, contract, number, ERP document, status, currency, subtotal, tax,
    #  total, paid, credited, balance, credit balance, written off, issued, due, tax status,
    #  tax failure, to post, version).
    # January 2,100.00: 1,500.00 + 600.00 declined (taken back) + 600.00 retry = paid.
    # February 1,100.00: paid 1,100.00, credited 110.00, the refund took 110.00 back: paid
    # 990.00 + credited 110.00 = total, so paid, nothing owed back.
    # Prorated 758.62 and March 1,037.50 + 100.00 tax: open, not posted yet.
    jan, feb, mar, yen = (day(f"2024-0{m}-01") for m in (1, 2, 3, 1))
    assert keyed(table(runtime, "erp_invoices", "invoice_id")) == {
        inv["jan"]: (
            q.globex, q.deal, None, "INV-0001", "INV10001", "paid", "USD", d("2000.00"),
            d("100.00"), d("2100.00"), d("2100.00"), d("0"), d("0"), d("0"), False, jan, jan,
            None, None, False, 6,  # issued, posted, 3 applied, 1 unapplied (declined)
        ),
        inv["feb"]: (
            q.globex, None, deal, "INV-0002", "INV10002", "paid", "USD", d("1000.00"),
            d("100.00"), d("1100.00"), d("990.00"), d("110.00"), d("0"), d("0"), False, feb,
            feb, None, None, False, 5,  # issued, posted, applied, credited, unapplied
        ),
        inv["prorated"]: (
            q.globex, None, deal, "INV-0003", None, "open", "USD", d("758.62"), d("0.00"),
            d("758.62"), d("0"), d("0"), d("758.62"), d("0"), False, day("2024-02-15"),
            day("2024-02-15"), None, None, True, 1,
        ),
        inv["mar"]: (
            q.globex, None, deal, "INV-0004", None, "open", "USD", d("1037.50"), d("100.00"),
            d("1137.50"), d("0"), d("0"), d("1137.50"), d("0"), False, mar, mar, None, None,
            True, 1,
        ),
        inv["yen"]: (
            q.kaisha, None, q.support_contract, "INV-0005", "INV10003", "paid", "JPY",
            d("90000"), d("9000"), d("99000"), d("99000"), d("0"), d("0"), d("0"), False, yen,
            yen, None, None, False, 3,
        ),
    }  # fmt: skip
    seats = ("SEATS", None, d("1"))
    assert set(table(runtime, "erp_invoice_lines", "invoice_id, line_number")) == {
        (inv["jan"], 1, "SETUP", None, d("1"), d("1000.00"), d("1000.00"), None, "one_time",
         False, None, None, None),
        (inv["jan"], 2, *seats, d("1000.00"), d("1000.00"), d("100.00"), "recurring", False,
         jan, feb, None),
        (inv["feb"], 1, *seats, d("1000.00"), d("1000.00"), d("100.00"), "recurring", False,
         feb, mar, None),
        (inv["prorated"], 1, *seats, d("758.62"), d("758.62"), None, "recurring", True,
         day("2024-02-15"), day("2024-04-01"), None),
        (inv["mar"], 1, *seats, d("1000.00"), d("1000.00"), d("100.00"), "recurring", False,
         mar, day("2024-04-01"), None),
        (inv["mar"], 2, "API", None, d("1"), d("37.50"), d("37.50"), None, "usage", False, feb,
         mar, None),
        (inv["yen"], 1, "SUPPORT", None, d("1"), d("90000"), d("90000"), d("9000"),
         "recurring", False, yen, day("2024-04-01"), None),
    }  # fmt: skip
    # (customer, amount, currency, method, received, reference, status, applied, refunded,
    #  unapplied, version): every payment's cash sits on an invoice, nothing is left over.
    assert keyed(table(runtime, "erp_payments", "payment_id")) == {
        pay["partial"]: (
            q.globex, d("1500.00"), "USD", "card", utc("2024-01-25", "10:00"), "ch_1001",
            "received", d("1500.00"), d("0"), d("0"), 2,
        ),
        pay["declined"]: (
            q.globex, d("600.00"), "USD", "card", utc("2024-02-05", "10:00"), "ch_1002",
            "failed", d("0"), d("0"), d("0"), 3,
        ),
        pay["retry"]: (
            q.globex, d("600.00"), "USD", "card", utc("2024-02-10", "10:00"), "ch_1003",
            "received", d("600.00"), d("0"), d("0"), 2,
        ),
        pay["feb"]: (
            q.globex, d("1100.00"), "USD", "card", utc("2024-02-20", "10:00"), "ch_1004",
            "received", d("990.00"), d("110.00"), d("0"), 3,
        ),
        pay["yen"]: (
            q.kaisha, d("99000"), "JPY", "card", utc("2024-01-31", "10:00"), "ch_1005",
            "received", d("99000"), d("0"), d("0"), 2,
        ),
    }  # fmt: skip
    # The declined card's application was taken back to zero: no row.
    assert set(table(runtime, "erp_payment_applications", "payment_id, invoice_id")) == {
        (pay["partial"], inv["jan"], d("1500.00")),
        (pay["retry"], inv["jan"], d("600.00")),
        (pay["feb"], inv["feb"], d("990.00")),
        (pay["yen"], inv["yen"], d("99000")),
    }


def test_billing_subscriptions_items_and_account_arr(runtime: Runtime) -> None:
    q = play(runtime)
    caught_up(runtime, BillingSubscriptions())
    sub = "sub-{}".format
    # (customer, order, subscription, status, currency, term start, term end, cancelled on,
    #  reason, scheduled changes, version). The upgrade (effective 2024-02-15) is in force:
    # nothing scheduled. Kaisha's renewal moved its term end to 2025-12-31.
    rows = table(
        runtime, "billing_subscriptions", "contract_id", ("amendment_log", "changed_at", "position")
    )
    assert keyed(rows) == {
        q.deal_contract: (
            q.globex, q.deal, sub(q.deal_contract.hex[:8]), "active", "USD", day("2024-01-01"),
            day("2025-12-31"), None, None, [], 3,  # created, activated, amended
        ),
        q.addon_contract: (
            q.globex, q.addon, sub(q.addon_contract.hex[:8]), "cancelled", "USD",
            day("2024-02-01"), day("2025-01-31"), day("2024-03-31"), "unused", [], 3,
        ),
        q.support_contract: (
            q.kaisha, q.support, sub(q.support_contract.hex[:8]), "active", "JPY",
            day("2024-01-01"), day("2025-12-31"), None, None, [], 3,  # ..., renewed
        ),
    }  # fmt: skip
    assert set(table(runtime, "billing_subscription_items", "contract_id, sku")) == {
        (q.deal_contract, "API", "API-M", d("0"), d("0.01"), "month", "usage"),
        (q.deal_contract, "SEATS", "SEATS-M", d("15"), d("100.00"), "month", "recurring"),
        (q.addon_contract, "ADDON", "ADDON-M", d("1"), d("100.00"), "month", "recurring"),
        (q.support_contract, "SUPPORT", "SUPPORT-M", d("1"), d("30000"), "month", "recurring"),
    }
    # ARR: Globex 15 x 100.00 x 12 = 18,000.00 (the cancelled add-on and usage count
    # nothing); Kaisha 30,000 x 12 = 360,000 yen. No FX: one row per currency.
    assert set(table(runtime, "crm_account_arr", "customer_id")) == {
        (q.globex, "USD", d("18000.00"), 1),
        (q.kaisha, "JPY", d("360000"), 1),
    }


def test_crm_accounts_opportunities_and_milestones(runtime: Runtime) -> None:
    q = play(runtime)
    caught_up(runtime, CrmView())
    # (name, CRM id, status, merged into, parent, parent's CRM id, ultimate parent, depth,
    #  erased, version). Holdings was linked after Globex: Globex still gets its CRM id.
    assert keyed(table(runtime, "crm_accounts", "customer_id")) == {
        q.holdings: (
            "Globex Holdings", "001HOLDINGS", "active", None, None, None, q.holdings, 0, False, 2
        ),
        q.globex: (
            "Globex Inc", "001GLOBEX", "active", None, q.holdings, "001HOLDINGS", q.holdings, 1,
            False, 5,
        ),
        q.kaisha: ("Kaisha KK", "001KAISHA", "active", None, None, None, q.kaisha, 0, False, 4),
    }  # fmt: skip
    contracts = {q.deal_contract: q.deal, q.addon_contract: q.addon}
    contracts[q.support_contract] = q.support
    assert dict(table(runtime, "crm_contract_orders", "contract_id")) == contracts
    sub = "sub-{}".format
    # (opportunity, customer, status, currency, CRM amount, order total, close date, ordered,
    #  first accepted by the ERP, its number, activated, subscription). The deal's CRM
    # Amount was not updated after the upgrade; its first acceptance (01-12) stands.
    assert keyed(table(runtime, "crm_opportunities", "order_id")) == {
        q.deal: (
            "006DEAL", q.globex, "accepted", "USD", d("25500.00"), d("37500.00"),
            day("2024-01-10"), utc("2024-01-10"), utc("2024-01-12"), "SO-1001",
            utc("2024-01-20"), sub(q.deal_contract.hex[:8]),
        ),
        q.addon: (
            "006ADDON", q.globex, "accepted", "USD", d("1200.00"), d("1200.00"),
            day("2024-02-01"), utc("2024-02-01"), utc("2024-02-02"), "SO-1002",
            utc("2024-02-01"), sub(q.addon_contract.hex[:8]),
        ),
        q.support: (
            "006SUPPORT", q.kaisha, "accepted", "JPY", d("360000"), d("360000"),
            day("2023-12-20"), utc("2023-12-20"), utc("2023-12-21"), "SO-0990",
            utc("2024-01-02"), sub(q.support_contract.hex[:8]),
        ),
        q.renewal: (
            "006RENEWAL", q.kaisha, "placed", "JPY", d("360000"), d("360000"),
            day("2024-03-20"), utc("2024-03-20"), None, None, None, None,
        ),
    }  # fmt: skip
    # Milestones: the first invoice of the deal is January's (it names the order), paid in
    # full by the retry of 2024-02-10 (the declined card of 02-05 never settled it); the
    # support's is the quarterly one, paid by the yen applied on 02-01. The add-on was never
    # invoiced, the renewal's order has no contract and no invoice yet.
    milestones = table(runtime, "crm_opportunity_milestones", "order_id", ())
    assert {row[0]: row[9:] for row in milestones} == {
        q.deal: (q.invoices["jan"], day("2024-01-01"), utc("2024-02-10", "10:00")),
        q.addon: (None, None, None),
        q.support: (q.invoices["yen"], day("2024-01-01"), utc("2024-02-01", "10:00")),
        q.renewal: (None, None, None),
    }
    opportunities = {r[0]: r for r in table(runtime, "crm_opportunities", "order_id")}
    for row in milestones:  # the rest of each milestone row is its opportunity's
        o = opportunities[row[0]]
        assert row[:9] == (o[0], o[1], o[2], o[3], o[8], o[9], o[10], o[11], o[12])


def snapshot(runtime: Runtime, view: Projection) -> list[list[tuple[Any, ...]]]:
    """Every table of ``view`` in full; for reconciliation, whose history may differ between
    interleavings of its stores (see projections/reconciliation/checks.py), the open breaks."""
    if isinstance(view, Reconciliation):
        return [table(runtime, "recon_open_breaks", "break_key", ())]
    return [table(runtime, t.name, ", ".join(t.primary_key), ()) for t in view.tables]


@pytest.mark.parametrize(
    "kind",
    [ErpCustomers, ErpOrders, ErpBilling, BillingSubscriptions, CrmView, Lineage, Reconciliation],
)
def test_each_view_of_the_quarter_is_the_same_whatever_the_store_order(
    runtime: Runtime, kind: type[Projection]
) -> None:
    play(runtime)
    view = kind()
    caught_up(runtime, view)
    first = snapshot(runtime, view)
    assert all(first)
    reversed_stores = type("Reversed", (kind,), {"stores": tuple(reversed(kind.stores))})
    rebuild(runtime, view)
    runner(runtime, reversed_stores(), batch=1).catch_up()
    assert snapshot(runtime, view) == first
