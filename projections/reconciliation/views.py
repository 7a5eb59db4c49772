"""SQL views of the reconciliation projection: open breaks, unapplied cash per month end,
and the SLA timings (per item and p50/p90 per month).

Why views: they are queries of the fact rows, so they never disagree with them, and the
timings need no "now" (an item still open simply has no duration); the API reads the clock
at query time to list what breaches now. Percentiles are ``percentile_disc`` over integers
(seconds, days): a value some item really had, never a float.
"""

from __future__ import annotations

from projections.definition import Column, View

OPEN_BREAKS = View(
    name="recon_open_breaks",
    comment="The reconciliation breaks open now (recon_breaks with closed_at NULL).",
    select=(
        "SELECT break_key, code, object_kind, object_id, customer_id, currency, "
        "expected_amount, expected_by, actual_amount, actual_by, detail, opened_at, lineage "
        "FROM {recon_breaks} WHERE closed_at IS NULL"
    ),
    columns=(
        Column("break_key", "text", "As recon_breaks."),
        Column("code", "text", "As recon_breaks."),
        Column("object_kind", "text", "As recon_breaks."),
        Column("object_id", "uuid", "As recon_breaks."),
        Column("customer_id", "uuid", "As recon_breaks."),
        Column("currency", "text", "As recon_breaks."),
        Column("expected_amount", "numeric", "As recon_breaks."),
        Column("expected_by", "text", "As recon_breaks."),
        Column("actual_amount", "numeric", "As recon_breaks."),
        Column("actual_by", "text", "As recon_breaks."),
        Column("detail", "text", "As recon_breaks."),
        Column("opened_at", "timestamptz", "As recon_breaks."),
        Column("lineage", "text", "As recon_breaks."),
    ),
)

UNAPPLIED_CASH = View(
    name="recon_unapplied_cash",
    comment=(
        "PAYMENT_UNAPPLIED per period end: cash received that no invoice held at each month "
        "end (UTC), per customer and currency, from the first to the last payment move."
    ),
    select=(
        "WITH months AS (SELECT generate_series(date_trunc('month', min(at AT TIME ZONE 'UTC')),"
        " date_trunc('month', max(at AT TIME ZONE 'UTC')), interval '1 month') AS m "
        "FROM {recon_payment_moves}), "
        "last AS (SELECT DISTINCT ON (months.m, v.payment_id) months.m, v.payment_id, "
        "v.unapplied FROM months JOIN {recon_payment_moves} v "
        "ON v.at < (months.m + interval '1 month') AT TIME ZONE 'UTC' "
        "ORDER BY months.m, v.payment_id, v.at DESC, v.version DESC) "
        "SELECT (last.m + interval '1 month' - interval '1 day')::date AS period_end, "
        "p.customer_id, p.currency, sum(last.unapplied) AS unapplied, "
        "count(*) AS payments FROM last JOIN {recon_payments} p USING (payment_id) "
        "WHERE last.unapplied > 0 GROUP BY 1, 2, 3"
    ),
    columns=(
        Column("period_end", "date", "Last day of the month (UTC)."),
        Column("customer_id", "uuid", "The payer (after merges)."),
        Column("currency", "text", "ISO 4217 currency."),
        Column("unapplied", "numeric", "Cash no invoice held at the end of that day, exact."),
        Column("payments", "bigint", "Payments with unapplied cash then."),
    ),
)

ORDER_ACTIVATION = View(
    name="sla_order_activation",
    comment=(
        "SLA order-to-activation per contract: order placed (recon_orders.placed_at) to "
        "contract activated by billing; duration NULL while pending."
    ),
    select=(
        "SELECT c.contract_id, c.order_id, o.customer_id, o.placed_at, c.activated_at, "
        "EXTRACT(epoch FROM c.activated_at - o.placed_at)::bigint AS duration_seconds, "
        "date_trunc('month', o.placed_at AT TIME ZONE 'UTC')::date AS month "
        "FROM {recon_contracts} c JOIN {recon_orders} o USING (order_id) "
        "WHERE c.status <> 'cancelled' OR c.activated_at IS NOT NULL"
    ),
    columns=(
        Column("contract_id", "uuid", "The contract."),
        Column("order_id", "uuid", "Its order."),
        Column("customer_id", "uuid", "The customer."),
        Column("placed_at", "timestamptz", "When the order was placed."),
        Column("activated_at", "timestamptz", "When billing activated the contract; or NULL."),
        Column("duration_seconds", "bigint", "activated_at - placed_at in whole seconds."),
        Column("month", "date", "First day of the month the order was placed (UTC)."),
    ),
)

INVOICE_CASH = View(
    name="sla_invoice_cash",
    comment=(
        "SLA invoice-to-cash per invoice: billing's issue date to the day payments settled "
        "it in full; duration NULL while open. Void invoices are left out."
    ),
    select=(
        "SELECT invoice_id, customer_id, issue_date, paid_at, "
        "(paid_at AT TIME ZONE 'UTC')::date - issue_date AS duration_days, "
        "date_trunc('month', issue_date)::date AS month FROM {recon_invoices} WHERE NOT void"
    ),
    columns=(
        Column("invoice_id", "uuid", "The invoice."),
        Column("customer_id", "uuid", "The customer."),
        Column("issue_date", "date", "Billing's issue date."),
        Column("paid_at", "timestamptz", "When payments settled it in full; or NULL."),
        Column("duration_days", "integer", "Days from issue_date to paid_at's date (UTC)."),
        Column("month", "date", "First day of the issue month."),
    ),
)

MONTHLY = View(
    name="sla_monthly",
    comment="SLA percentiles per month over the completed items (percentile_disc, exact).",
    select=(
        "SELECT 'order_to_activation'::text AS sla, month, 'seconds'::text AS unit, "
        "count(*) AS items, percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_seconds) "
        "AS p50, percentile_disc(0.9) WITHIN GROUP (ORDER BY duration_seconds) AS p90 "
        "FROM {sla_order_activation} WHERE duration_seconds IS NOT NULL GROUP BY month "
        "UNION ALL SELECT 'invoice_to_cash', month, 'days', count(*), "
        "percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_days)::bigint, "
        "percentile_disc(0.9) WITHIN GROUP (ORDER BY duration_days)::bigint "
        "FROM {sla_invoice_cash} WHERE duration_days IS NOT NULL GROUP BY month"
    ),
    columns=(
        Column("sla", "text", "order_to_activation or invoice_to_cash."),
        Column("month", "date", "The month (of placing / of issue)."),
        Column("unit", "text", "seconds (order_to_activation) or days (invoice_to_cash)."),
        Column("items", "bigint", "Completed items of that month."),
        Column("p50", "bigint", "Median duration (percentile_disc 0.5), in unit."),
        Column("p90", "bigint", "90th percentile duration (percentile_disc 0.9), in unit."),
    ),
)

VIEWS = (OPEN_BREAKS, UNAPPLIED_CASH, ORDER_ACTIVATION, INVOICE_CASH, MONTHLY)
