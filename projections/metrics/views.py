"""SQL views of the metrics projection: the facts joined to their headers, and per month.

Why views over stored facts: a monthly figure is a sum of fact rows, so it can never disagree
with them, and a link learnt late (the contract of an order-only invoice, a merged customer)
shows in every month at once. ``metrics_monthly`` is dense: every (currency, customer,
contract) has a row for each month from its first fact to the last month of any fact, so
the cumulative columns (deferred, receivables) can be read, summed or snapshot for any month
without gaps. Amounts are minor units (integer numeric): exact, no float anywhere.
"""

from __future__ import annotations

from projections.definition import Column, View

_MONTH = "date_trunc('month', {})::date"

FACTS_SELECT = (
    f"SELECT {_MONTH.format('b.booked_on')} AS month, o.currency, o.customer_id, o.contract_id, "
    "b.amount AS bookings, b.acv, 0 AS billings, 0 AS billed_gross, 0 AS cash, "
    "0 AS recognised, 0 AS applied "
    "FROM {metrics_bookings} b JOIN {metrics_orders} o USING (order_id) "
    f"UNION ALL SELECT {_MONTH.format('f.billed_on')}, i.currency, i.customer_id, "
    "i.contract_id, 0, 0, f.amount, f.gross, 0, 0, 0 "
    "FROM {metrics_billings} f JOIN {metrics_invoices} i USING (invoice_id) "
    "UNION ALL SELECT r.month, i.currency, i.customer_id, i.contract_id, 0, 0, 0, 0, 0, "
    "r.amount, 0 "
    "FROM {metrics_revenue} r JOIN {metrics_invoices} i USING (invoice_id) "
    f"UNION ALL SELECT {_MONTH.format('c.moved_on')}, coalesce(i.currency, p.currency), "
    "coalesce(i.customer_id, p.customer_id), i.contract_id, 0, 0, 0, 0, c.cash, 0, c.applied "
    "FROM {metrics_cash} c JOIN {metrics_payments} p USING (payment_id) "
    "LEFT JOIN {metrics_invoices} i ON i.invoice_id = c.invoice_id"
)

FACTS = View(
    name="metrics_facts",
    comment=(
        "Every metrics fact with its month, currency, customer and contract: bookings, "
        "billings, revenue schedule rows and cash moves, in minor units (one non-zero measure "
        "per row, except cash rows that may carry cash or applied)."
    ),
    select=FACTS_SELECT,
    columns=(
        Column("month", "date", "First day of the month of the fact's business date."),
        Column("currency", "text", "ISO 4217 currency."),
        Column("customer_id", "uuid", "Customer (after merges)."),
        Column("contract_id", "uuid", "Contract; NULL for cash not applied to an invoice."),
        Column("bookings", "bigint", "Booked value (minor units)."),
        Column("acv", "bigint", "ACV booked (minor units)."),
        Column("billings", "bigint", "Billed, tax excluded (minor units)."),
        Column("billed_gross", "bigint", "Billed with tax (minor units)."),
        Column("cash", "bigint", "Cash in (+) / out (-) (minor units)."),
        Column("recognised", "bigint", "Revenue recognised (minor units)."),
        Column("applied", "bigint", "Cash applied to invoices (minor units)."),
    ),
)

MONTHLY = View(
    name="metrics_monthly",
    comment=(
        "Finance metrics per month, currency, customer and contract (no FX): flows of the "
        "month and, for deferred and receivables, the balance at the month end. Dense from "
        "the group's first fact to the last month of any fact. Minor units."
    ),
    select=(
        "WITH facts AS (" + FACTS_SELECT + "), "
        "sums AS (SELECT month, currency, customer_id, contract_id, sum(bookings) AS bookings, "
        "sum(acv) AS acv, sum(billings) AS billings, sum(billed_gross) AS billed_gross, "
        "sum(cash) AS cash, "
        "sum(recognised) AS recognised, sum(applied) AS applied FROM facts GROUP BY 1, 2, 3, 4), "
        "groups AS (SELECT currency, customer_id, contract_id, min(month) AS first "
        "FROM sums GROUP BY 1, 2, 3), "
        "grid AS (SELECT g.currency, g.customer_id, g.contract_id, m::date AS month "
        "FROM groups g CROSS JOIN (SELECT max(month) AS last FROM sums) b "
        "CROSS JOIN LATERAL generate_series(g.first, b.last, interval '1 month') m) "
        "SELECT grid.month, grid.currency, grid.customer_id, grid.contract_id, "
        "coalesce(s.bookings, 0) AS bookings, coalesce(s.acv, 0) AS acv, "
        "coalesce(s.billings, 0) AS billings, coalesce(s.cash, 0) AS cash, "
        "coalesce(s.recognised, 0) AS recognised, "
        "sum(coalesce(s.billings, 0) - coalesce(s.recognised, 0)) OVER w AS deferred, "
        "sum(coalesce(s.billed_gross, 0) - coalesce(s.applied, 0)) OVER w AS receivables "
        "FROM grid LEFT JOIN sums s ON s.month = grid.month AND s.currency = grid.currency "
        "AND s.customer_id = grid.customer_id "
        "AND s.contract_id IS NOT DISTINCT FROM grid.contract_id "
        "WINDOW w AS (PARTITION BY grid.currency, grid.customer_id, grid.contract_id "
        "ORDER BY grid.month)"
    ),
    columns=(
        Column("month", "date", "First day of the month."),
        Column("currency", "text", "ISO 4217 currency; amounts are never converted."),
        Column("customer_id", "uuid", "Customer (after merges)."),
        Column(
            "contract_id",
            "uuid",
            "Contract (of the order, or billed by the invoice); NULL: cash not applied to an "
            "invoice, or an order/invoice without a contract.",
        ),
        Column("bookings", "numeric", "Booked in the month (minor units)."),
        Column("acv", "numeric", "ACV booked in the month (minor units)."),
        Column("billings", "numeric", "Billed in the month, tax excluded, net of credits."),
        Column("cash", "numeric", "Cash received less refunds and chargebacks in the month."),
        Column("recognised", "numeric", "Revenue recognised in the month (minor units)."),
        Column("deferred", "numeric", "At the month end: billed to date - recognised to date."),
        Column(
            "receivables",
            "numeric",
            "At the month end: billed to date with tax (what the customer owes) - cash "
            "applied to date (applications at receipt, less what refunds, failures and "
            "chargebacks took back off invoices).",
        ),
    ),
)

VIEWS = (FACTS, MONTHLY)
