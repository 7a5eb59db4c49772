"""The metrics projection's fact tables and the ``metrics_monthly`` view over them.

Why facts plus a view: every figure of a month (recognised, deferred, receivables) is a sum of
facts dated by the source's business dates, so keeping the facts and summing at read time
means no stored total can drift from its facts, and any interleaving of the stores converges.
Every amount is ``bigint`` minor units of its row's currency (cents, whole yen): exact, and
never converted between currencies.
"""

from __future__ import annotations

from projections.definition import Column, Table, View

_MINOR = "Amount in minor units of currency (cents; whole yen for JPY), exact."


def _key(name: str, comment: str) -> Column:
    return Column(name, "uuid", comment, not_null=True)


def _common() -> tuple[Column, ...]:
    return (
        Column("currency", "text", "ISO 4217 currency of the amount (no FX).", not_null=True),
        _key("customer_id", "Canonical customer id."),
    )


SCHEDULE = Table(
    name="metrics_revenue_schedule",
    comment=(
        "Concord metrics: revenue recognised per invoice line (or credit of it) per month, "
        "straight-line by day over the service period [start, end)."
    ),
    primary_key=("invoice_id", "line", "entry", "month"),
    columns=(
        _key("invoice_id", "Canonical invoice id."),
        Column(
            "line",
            "integer",
            "Index of the invoice line (-1: a credit naming no line).",
            not_null=True,
        ),
        Column(
            "entry",
            "integer",
            "0: the line as billed; n: the credit note recorded at invoice version n (reversal).",
            not_null=True,
        ),
        Column("month", "date", "First day of the month recognised in.", not_null=True),
        *_common(),
        Column("contract_id", "uuid", "Canonical contract id the invoice bills, if named."),
        Column("amount", "bigint", _MINOR, not_null=True),
    ),
)

LINES = Table(
    name="metrics_invoice_lines",
    comment="Concord metrics: each invoice line's recognition rule (what credit notes reverse).",
    primary_key=("invoice_id", "line"),
    columns=(
        _key("invoice_id", "Canonical invoice id."),
        Column("line", "integer", "Index of the line on the invoice.", not_null=True),
        Column(
            "kind", "text", "recurring, one_time or usage (how it is recognised).", not_null=True
        ),
        Column("span_start", "date", "First day of the recognition span.", not_null=True),
        Column("span_end", "date", "First day after the span (half-open).", not_null=True),
    ),
)

ONE_TIME = Table(
    name="metrics_one_time",
    comment=(
        "Concord metrics: one-time lines (and their credits) waiting for or matched to their "
        "contract's activation; recognised in full on max(activation, not_before)."
    ),
    primary_key=("invoice_id", "line", "entry"),
    columns=(
        _key("invoice_id", "Canonical invoice id."),
        Column("line", "integer", "Index of the invoice line.", not_null=True),
        Column("entry", "integer", "0: the line; n: a credit at invoice version n.", not_null=True),
        *_common(),
        _key("contract_id", "The contract whose ContractActivated dates the revenue."),
        Column("amount", "bigint", _MINOR, not_null=True),
        Column("not_before", "date", "A credit note's date: nothing reverses before it."),
    ),
)

ACTIVATIONS = Table(
    name="metrics_contract_activations",
    comment="Concord metrics: the business date each contract was activated in billing.",
    primary_key=("contract_id",),
    columns=(
        _key("contract_id", "Canonical contract id."),
        Column("activated_on", "date", "ContractActivated's business date.", not_null=True),
    ),
)

BILLINGS = Table(
    name="metrics_billings",
    comment=(
        "Concord metrics: invoices (subtotal, tax excluded) on their issue date and credit "
        "notes (negative) on their date."
    ),
    primary_key=("invoice_id", "entry"),
    columns=(
        _key("invoice_id", "Canonical invoice id."),
        Column(
            "entry", "integer", "0: the invoice; n: the credit note at version n.", not_null=True
        ),
        Column(
            "day", "date", "Business date (issue date of the invoice or the note).", not_null=True
        ),
        *_common(),
        Column("contract_id", "uuid", "Canonical contract id, if the invoice names one."),
        Column("amount", "bigint", _MINOR + " Negative for credit notes.", not_null=True),
    ),
)

CASH = Table(
    name="metrics_cash",
    comment=(
        "Concord metrics: money received (receipt date) and given back (refunds, chargebacks: "
        "negative, on their date), and applications to invoices (for receivables)."
    ),
    primary_key=("payment_id", "entry", "kind"),
    columns=(
        _key("payment_id", "Canonical payment id."),
        Column(
            "entry", "integer", "Payment version of the event the row comes from.", not_null=True
        ),
        Column("kind", "text", "cash (money moved) or applied (put on invoices).", not_null=True),
        Column(
            "day",
            "date",
            "Business date (received_at, refunded_at, else occurred_at).",
            not_null=True,
        ),
        *_common(),
        Column("amount", "bigint", _MINOR, not_null=True),
    ),
)

BOOKINGS = Table(
    name="metrics_bookings",
    comment=(
        "Concord metrics: orders booked (OrderPlaced on close_date, else booking_date) and "
        "the positive part of each amendment's change."
    ),
    primary_key=("order_id", "entry"),
    columns=(
        _key("order_id", "Canonical order id."),
        Column("entry", "integer", "Order version of the event.", not_null=True),
        Column("day", "date", "Business date booked.", not_null=True),
        *_common(),
        Column("amount", "bigint", _MINOR + " Order total (all charge types).", not_null=True),
        Column(
            "acv",
            "bigint",
            "Annual contract value, minor units: recurring lines' "
            "quantity x billing unit price x billing periods a year.",
            not_null=True,
        ),
        Column(
            "total",
            "bigint",
            "The order's total after this event (for the next delta).",
            not_null=True,
        ),
        Column("total_acv", "bigint", "The order's ACV after this event.", not_null=True),
    ),
)

_FACTS = (
    "SELECT month, currency, customer_id, 0 AS bookings, 0 AS acv, 0 AS billings, 0 AS cash, "
    "0 AS applied, amount AS recognised FROM {metrics_revenue_schedule} "
    "UNION ALL SELECT date_trunc('month', day)::date, currency, customer_id, amount, acv, "
    "0, 0, 0, 0 FROM {metrics_bookings} "
    "UNION ALL SELECT date_trunc('month', day)::date, currency, customer_id, 0, 0, amount, "
    "0, 0, 0 FROM {metrics_billings} "
    "UNION ALL SELECT date_trunc('month', day)::date, currency, customer_id, 0, 0, 0, "
    "CASE WHEN kind = 'cash' THEN amount ELSE 0 END, "
    "CASE WHEN kind = 'applied' THEN amount ELSE 0 END, 0 FROM {metrics_cash}"
)

MONTHLY = View(
    name="metrics_monthly",
    comment=(
        "Concord metrics per month, currency and customer (minor units, no FX): the month's "
        "flows and the balances at its end (deferred revenue, receivables)."
    ),
    select=(
        f"WITH facts AS ({_FACTS}), sums AS (SELECT month, currency, customer_id, "
        "sum(bookings)::bigint AS bookings, sum(acv)::bigint AS acv, "
        "sum(billings)::bigint AS billings, sum(cash)::bigint AS cash, "
        "sum(applied)::bigint AS applied, sum(recognised)::bigint AS recognised "
        "FROM facts GROUP BY 1, 2, 3), series AS (SELECT currency, customer_id, "
        "generate_series(min(month)::timestamp, max(month)::timestamp, interval '1 month')"
        "::date AS month FROM sums GROUP BY 1, 2) "
        "SELECT s.month, s.currency, s.customer_id, coalesce(x.bookings, 0) AS bookings, "
        "coalesce(x.acv, 0) AS acv, coalesce(x.billings, 0) AS billings, "
        "coalesce(x.cash, 0) AS cash, coalesce(x.recognised, 0) AS recognised, "
        "(sum(coalesce(x.billings, 0) - coalesce(x.recognised, 0)) OVER w)::bigint "
        "AS deferred, (sum(coalesce(x.billings, 0) - coalesce(x.applied, 0)) OVER w)::bigint "
        "AS receivables FROM series s LEFT JOIN sums x USING (currency, customer_id, month) "
        "WINDOW w AS (PARTITION BY s.currency, s.customer_id ORDER BY s.month)"
    ),
    columns=(
        Column("month", "date", "First day of the month."),
        Column("currency", "text", "ISO 4217 currency of every amount on the row."),
        Column("customer_id", "uuid", "Canonical customer id."),
        Column("bookings", "bigint", "Orders booked in the month (minor units)."),
        Column("acv", "bigint", "ACV booked in the month (minor units)."),
        Column("billings", "bigint", "Invoiced less credited in the month, tax excluded."),
        Column("cash", "bigint", "Received less refunded/charged back in the month."),
        Column("recognised", "bigint", "Revenue recognised in the month."),
        Column("deferred", "bigint", "Billed to date less recognised to date, at month end."),
        Column("receivables", "bigint", "Billed to date less cash applied to date."),
    ),
)

TABLES = (SCHEDULE, LINES, ONE_TIME, ACTIVATIONS, BILLINGS, CASH, BOOKINGS)
