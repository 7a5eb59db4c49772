"""The metrics projection's tables: headers (who and which currency) and dated facts.

Why headers apart from facts: a fact (a booking, a billing, a month of revenue, a cash move)
is dated and final once written; who it belongs to (customer after merges, the contract an
order-only invoice bills) may be learnt later from another store. Views join the two, so
the facts never need rewriting when a link arrives second.

Every amount is an integer in the currency's minor units (``bigint``): cents for USD, yen
for JPY, fils for KWD. Nothing is a float.
"""

from __future__ import annotations

from projections.definition import Column, Table

_MINOR = "in minor units of the currency (cents; yen for JPY)"


def _key(name: str, what: str) -> Column:
    return Column(name, "uuid", what, not_null=True)


ORDERS = Table(
    name="metrics_orders",
    comment="Metrics header: each order, its customer, currency, contract and what it booked.",
    primary_key=("order_id",),
    columns=(
        _key("order_id", "Canonical order id."),
        _key("customer_id", "Canonical id of the ordering customer."),
        Column("currency", "text", "ISO 4217 currency of the order.", not_null=True),
        Column("contract_id", "uuid", "The contract created from the order (NULL until known)."),
        Column("booked", "bigint", f"Highest order total booked so far, {_MINOR}.", True),
        Column("booked_acv", "bigint", f"Highest ACV booked so far, {_MINOR}.", True),
    ),
)

BOOKINGS = Table(
    name="metrics_bookings",
    comment=(
        "Metrics facts: bookings. One row when a won deal's order is placed (its total, on the "
        "opportunity's close date) and one per amendment that raised the total above "
        "everything booked before (the increase only, on the amendment's date)."
    ),
    primary_key=("order_id", "version"),
    columns=(
        _key("order_id", "The order (metrics_orders.order_id)."),
        Column("version", "bigint", "Order event version that booked it.", not_null=True),
        Column("kind", "text", "placed or upsell.", not_null=True),
        Column(
            "booked_on",
            "date",
            "placed: OrderPlaced.close_date (else booking_date); upsell: the amendment's "
            "business date (its source time, occurred_at, else when Concord recorded it).",
            not_null=True,
        ),
        Column("amount", "bigint", f"Booked value, {_MINOR}; never negative.", not_null=True),
        Column(
            "acv",
            "bigint",
            f"Annual contract value added, {_MINOR}: Σ recurring lines quantity x billing "
            "unit price x billing periods per year; never negative.",
            not_null=True,
        ),
    ),
)

CONTRACTS = Table(
    name="metrics_contracts",
    comment="Metrics header: each contract, its order and the day billing activated it.",
    primary_key=("contract_id",),
    indexes=(("order_id",),),
    columns=(
        _key("contract_id", "Canonical contract id."),
        _key("order_id", "The order it came from."),
        _key("customer_id", "The contract's customer."),
        Column(
            "activated_on",
            "date",
            "Business date of ContractActivated (source time, else recorded); one-time lines "
            "of its order's invoices are recognised on it. NULL while pending.",
        ),
    ),
)

INVOICES = Table(
    name="metrics_invoices",
    comment="Metrics header: each invoice, its customer (after merges), contract and currency.",
    primary_key=("invoice_id",),
    indexes=(("order_id",), ("contract_id",)),
    columns=(
        _key("invoice_id", "Canonical invoice id."),
        _key("customer_id", "The billed customer (the survivor after a merge)."),
        Column("order_id", "uuid", "The order it bills, if it names one."),
        Column(
            "contract_id",
            "uuid",
            "The contract it bills: as the invoice names it, else the contract of its order "
            "(filled when that contract arrives).",
        ),
        Column("contract_named", "boolean", "The invoice named its contract itself.", True),
        Column("currency", "text", "ISO 4217 currency.", not_null=True),
        Column("issue_date", "date", "Issue date of the invoice.", not_null=True),
        Column(
            "lines",
            "jsonb",
            "Replay state: per line its amount and tax in minor units and its recognition "
            "rule, for the credit notes that follow. Read metrics_revenue_entries instead.",
            not_null=True,
        ),
    ),
)

BILLINGS = Table(
    name="metrics_billings",
    comment=(
        "Metrics facts: billings, tax excluded. An invoice's subtotal on its issue date; a "
        "credit note (or a void) negative on its date, its tax-excluded part."
    ),
    primary_key=("invoice_id", "version"),
    columns=(
        _key("invoice_id", "The invoice (metrics_invoices.invoice_id)."),
        Column("version", "bigint", "Invoice event version of the document.", not_null=True),
        Column("kind", "text", "invoice, credit_note or void.", not_null=True),
        Column("billed_on", "date", "Issue date (credit note: its issue_date).", True),
        Column("amount", "bigint", f"Tax-excluded amount, {_MINOR}; negative for credits.", True),
        Column(
            "gross",
            "bigint",
            f"The same document with tax (what receivables count), {_MINOR}.",
            not_null=True,
        ),
    ),
)

REVENUE = Table(
    name="metrics_revenue",
    comment=(
        "Metrics facts: the revenue schedule, per invoice line (or credit of a line) and "
        "month; the months of an entry add up to its amount exactly."
    ),
    primary_key=("invoice_id", "entry", "month"),
    columns=(
        _key("invoice_id", "The invoice (metrics_invoices.invoice_id)."),
        Column(
            "entry",
            "text",
            "line:<index> for an invoice line, credit:<version>:<index> for a credit note "
            "(or void) of that line.",
            not_null=True,
        ),
        Column("month", "date", "First day of the month recognised in.", not_null=True),
        Column("amount", "bigint", f"Recognised that month, {_MINOR}; negative for credits.", True),
    ),
)

ENTRIES = Table(
    name="metrics_revenue_entries",
    comment=(
        "Metrics facts: each invoice line and credit of a line with its recognition rule; "
        "metrics_revenue is its monthly schedule."
    ),
    primary_key=("invoice_id", "entry"),
    columns=(
        _key("invoice_id", "The invoice."),
        Column("entry", "text", "As metrics_revenue.entry.", not_null=True),
        Column(
            "rule",
            "text",
            "ratable (straight-line by day over [period_start, period_end)), point (all on "
            "point_day) or activation (all on the activation day of the invoice's contract).",
            not_null=True,
        ),
        Column("amount", "bigint", f"Amount to recognise, {_MINOR}.", not_null=True),
        Column("period_start", "date", "Ratable: first service day."),
        Column("period_end", "date", "Ratable: first day not served."),
        Column("point_day", "date", "Point: the day recognised."),
        Column("not_before", "date", "Credits: nothing is recognised before the note's date."),
    ),
)

PAYMENTS = Table(
    name="metrics_payments",
    comment="Metrics header: each payment, its payer (after merges), currency and receipt day.",
    primary_key=("payment_id",),
    columns=(
        _key("payment_id", "Canonical payment id."),
        _key("customer_id", "The payer (the survivor after a merge)."),
        Column("currency", "text", "ISO 4217 currency.", not_null=True),
        Column("amount", "bigint", f"Amount received, {_MINOR}.", not_null=True),
        Column("received_on", "date", "Receipt date (the date of received_at).", True),
    ),
)

CASH = Table(
    name="metrics_cash",
    comment=(
        "Metrics facts: cash moves (part 0: money in or out) and the cash applied to "
        "invoices (parts 1..: per invoice) of each payment event."
    ),
    primary_key=("payment_id", "version", "part"),
    columns=(
        _key("payment_id", "The payment (metrics_payments.payment_id)."),
        Column("version", "bigint", "Payment event version.", not_null=True),
        Column("part", "bigint", "0: the cash move; 1..: one per invoice touched.", True),
        Column(
            "moved_on",
            "date",
            "Receipt date (receipt, application, and a failure, which so counts nothing), "
            "refund date, or chargeback date (source time of PaymentReversed).",
            not_null=True,
        ),
        Column("invoice_id", "uuid", "Parts 1..: the invoice the cash was applied to."),
        Column("cash", "bigint", f"Cash in (+) or out (-), {_MINOR}.", not_null=True),
        Column(
            "applied",
            "bigint",
            f"Cash applied to the invoice (+) or taken back off it (-), {_MINOR}.",
            not_null=True,
        ),
    ),
)

TABLES = (ORDERS, BOOKINGS, CONTRACTS, INVOICES, BILLINGS, REVENUE, ENTRIES, PAYMENTS, CASH)
