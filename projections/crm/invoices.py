"""The CRM view's billing milestones: each invoice's order or contract, issue date and the
moment it was first paid in full, and ``crm_opportunity_milestones`` that reads them.

Why a view for "first invoice" and "paid": the invoice names its order or only its contract,
and the contract's order is known from another store that may be applied later. Keeping the
invoice facts and joining at read time makes every interleaving of the stores give the same
answer, with nothing to back-fill.

Why ``paid_at`` is replayed from ``crm_invoice_moves`` rather than kept as a running flag: a
card payment that fails was never money, yet its application may have completed the invoice
before the failure was known (applied on 02-05, declined on 02-06). Its applications are then
struck from the invoice's moves and ``paid_at`` is the first moment the remaining moves settled
it (the retry of 02-10), not the declined card's. A refund or chargeback did move money: the
invoice was paid, and ``paid_at`` stays once reached.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hub.domain.invoice import UnapplyReason
from projections.definition import Column, Envelope, Table, View, ViewCursor
from projections.rows import business_time

INVOICES = Table(
    name="crm_invoices",
    comment=(
        "Concord CRM view: the invoices behind the first-invoice and paid milestones "
        "(read crm_opportunity_milestones)."
    ),
    primary_key=("invoice_id",),
    columns=(
        Column("invoice_id", "uuid", "Canonical invoice id (Concord).", not_null=True),
        Column("order_id", "uuid", "The order the invoice bills, if it names one."),
        Column("contract_id", "uuid", "The contract the invoice bills, if it names one."),
        Column("issue_date", "date", "Billing's issue date (business date).", not_null=True),
        Column("total", "numeric", "Invoice total, exact.", not_null=True),
        Column("credited", "numeric", "Sum of its credit notes, exact.", not_null=True),
        Column("paid", "numeric", "Payments applied to it now, exact.", not_null=True),
        Column("void", "boolean", "Voided: it is nobody's first invoice.", not_null=True),
        Column(
            "paid_at",
            "timestamptz",
            "When payments first settled it in full (the applying event's occurred_at, else "
            "recorded_at); kept once reached, also if a refund later reopens it; a payment "
            "that failed never settled it (its applications do not count).",
        ),
    ),
)

MOVES = Table(
    name="crm_invoice_moves",
    comment=(
        "Concord CRM view: replay state of crm_invoices.paid_at: each payment applied to or "
        "taken off an invoice and each credit note, in the invoice's order (a failed "
        "payment's moves are struck). Read crm_opportunity_milestones instead."
    ),
    primary_key=("invoice_id", "version"),
    columns=(
        Column("invoice_id", "uuid", "The invoice (crm_invoices.invoice_id).", not_null=True),
        Column("version", "bigint", "Version of the invoice event that moved it.", True),
        Column("payment_id", "uuid", "The payment applied or taken back; NULL for a credit."),
        Column("paid", "numeric", "Change of the payments applied, exact.", not_null=True),
        Column("credited", "numeric", "Change of the credit notes, exact.", not_null=True),
        Column("at", "timestamptz", "The event's occurred_at, else recorded_at.", True),
    ),
)

MILESTONES = View(
    name="crm_opportunity_milestones",
    comment=(
        "Concord CRM view: each order's milestones up to cash: ordered, accepted by the ERP, "
        "activated in billing, first invoice and paid (the first invoice paid in full)."
    ),
    select=(
        "SELECT o.order_id, o.opportunity_id, o.customer_id, o.order_status, o.ordered_at, "
        "o.accepted_by_erp_at, o.erp_order_number, o.activated_at, o.billing_subscription_id, "
        "f.invoice_id, f.issue_date, f.paid_at FROM {crm_opportunities} o "
        "LEFT JOIN LATERAL (SELECT i.invoice_id, i.issue_date, i.paid_at FROM {crm_invoices} i "
        "WHERE NOT i.void AND (i.order_id = o.order_id OR i.contract_id IN "
        "(SELECT c.contract_id FROM {crm_contract_orders} c WHERE c.order_id = o.order_id)) "
        "ORDER BY i.issue_date, i.invoice_id LIMIT 1) f ON true"
    ),
    columns=(
        Column("order_id", "uuid", "Canonical order id (crm_opportunities.order_id)."),
        Column("opportunity_id", "text", "CRM opportunity the order was won from."),
        Column("customer_id", "uuid", "Canonical id of the ordering customer."),
        Column("order_status", "text", "The order's status (see crm_opportunities)."),
        Column("ordered_at", "timestamptz", "Milestone: order placed."),
        Column("accepted_by_erp_at", "timestamptz", "Milestone: accepted by the ERP."),
        Column("erp_order_number", "text", "The ERP's sales order number."),
        Column("activated_at", "timestamptz", "Milestone: activated in billing."),
        Column("billing_subscription_id", "text", "Billing's subscription id."),
        Column("first_invoice_id", "uuid", "The first (earliest issued) invoice not voided."),
        Column("first_invoice_date", "date", "Milestone: its issue date (business date)."),
        Column("paid_at", "timestamptz", "Milestone: that invoice first paid in full."),
    ),
)

_MOVE = (
    "INSERT INTO {crm_invoice_moves} (invoice_id, version, payment_id, paid, credited, at) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
#: The first payment move after which the moves so far settle the invoice in full.
_SETTLED = (
    "UPDATE {crm_invoices} i SET paid = i.paid + %s, paid_at = (SELECT min(m.at) FROM "
    "(SELECT payment_id, at, sum(paid) OVER w AS paid, sum(credited) OVER w AS credited "
    "FROM {crm_invoice_moves} WHERE invoice_id = %s WINDOW w AS (ORDER BY version)) m "
    "WHERE m.payment_id IS NOT NULL AND m.paid > 0 AND m.paid >= i.total - m.credited) "
    "WHERE i.invoice_id = %s"
)


def apply_invoice(event: Envelope, cursor: ViewCursor) -> None:
    data, invoice, kind = event["data"], event["aggregate_id"], event["type"]
    if kind == "InvoiceIssued":
        cursor.execute(
            "INSERT INTO {crm_invoices} (invoice_id, order_id, contract_id, issue_date, total, "
            "credited, paid, void) VALUES (%s, %s, %s, %s, %s, 0, 0, false)",
            (
                invoice,
                data.get("order_id"),
                data.get("contract_id"),
                date.fromisoformat(data["issue_date"]),
                Decimal(str(data["total"]["amount"])),
            ),
        )
        return
    missing = f"crm_invoices has no row for invoice {invoice} ({kind}): never issued"
    if kind in ("InvoicePaymentApplied", "InvoicePaymentUnapplied"):
        amount = Decimal(str(data["amount"]["amount"]))
        amount = amount if kind == "InvoicePaymentApplied" else -amount
        if data.get("reason") == UnapplyReason.FAILURE:
            cursor.execute(
                "DELETE FROM {crm_invoice_moves} WHERE invoice_id = %s AND payment_id = %s",
                (invoice, data["payment_id"]),
            )
        else:
            move = (invoice, event["version"], data["payment_id"], amount, 0, business_time(event))
            cursor.execute(_MOVE, move)
        cursor.execute_one(_SETTLED, (amount, invoice, invoice), missing)
    elif kind == "InvoiceCredited":
        credit = Decimal(str(data["credit"]["amount"]["amount"]))
        cursor.execute(_MOVE, (invoice, event["version"], None, 0, credit, business_time(event)))
        cursor.execute_one(
            "UPDATE {crm_invoices} SET credited = credited + %s WHERE invoice_id = %s",
            (credit, invoice),
            missing,
        )
    elif kind == "InvoiceVoided":
        cursor.execute_one(
            "UPDATE {crm_invoices} SET void = true WHERE invoice_id = %s", (invoice,), missing
        )
