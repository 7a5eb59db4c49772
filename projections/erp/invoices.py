"""``erp_invoices``, ``erp_invoice_lines``, ``erp_payments`` and ``erp_payment_applications``:
what the ERP posts from billing (the invoices to post and their lines) and the cash it books
(payments and where their money currently sits). Built by the ``erp_billing`` projection.

Why every table is fed by one store only: the projection follows ``invoices`` and
``payments``, each in its own order, so an invoice's ``InvoicePaymentApplied`` may be applied
before or after the payment's ``PaymentApplied``. No row here needs a row of the other store:
invoice rows come from invoice events, payment and application rows from payment events, so
any interleaving gives the same rows (a rebuild too).

Why applications come from the payment side: a payment's events say where its money went
(``PaymentApplied``) and what was taken back (the ``unapplied`` lists of
``PaymentRefunded``, ``PaymentFailed`` and ``PaymentReversed``) in one ordered stream, so the
table is exact after each payment event. The invoice's ``InvoicePaymentApplied`` and
``InvoicePaymentUnapplied`` are the mirror of the same unit of work; counting them too would
count every application twice, and they only move ``erp_invoices.amount_paid``.

Why status and balance are recomputed in SQL after each invoice event: they follow
``Invoice._settle`` (hub/domain/invoice.py) from the row's totals, so the view cannot drift
from the domain's rule whatever events came before. Money is exact ``numeric`` from the
events' decimal strings, never floats; a zero keeps the currency's scale.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from projections.definition import Column, Envelope, Position, Projection, Table, ViewCursor
from projections.rows import update_latest

_VERSION_COLUMNS = (
    ("version", "bigint", "Version of the {0} aggregate (its last event)."),
    ("changed_at", "timestamptz", "When Concord recorded the {0}'s last event."),
    (
        "position",
        "bigint",
        "Position of that event in the {1} store's log ({1}_events.notification_id).",
    ),
)


def _latest(entity: str, store: str) -> tuple[Column, ...]:
    return tuple(
        Column(name, kind, comment.format(entity, store), not_null=True)
        for name, kind, comment in _VERSION_COLUMNS
    )


INVOICES = Table(
    name="erp_invoices",
    comment=(
        "Concord ERP view: one row per canonical invoice (billing's document) with what the "
        "ERP posts: totals, money received and credited, status, tax and whether it is "
        "still to post. Built by the erp_billing projection."
    ),
    primary_key=("invoice_id",),
    columns=(
        Column("invoice_id", "uuid", "Canonical invoice id (Concord).", not_null=True),
        Column(
            "customer_id",
            "uuid",
            "Canonical id of the billed customer (the survivor after a merge moved the invoice).",
            not_null=True,
        ),
        Column("order_id", "uuid", "The order the invoice bills; NULL for a contract's."),
        Column("contract_id", "uuid", "The contract (subscription) it bills; may be NULL."),
        Column("source_number", "text", "The billing system's invoice number; may be NULL."),
        Column(
            "erp_document_number",
            "text",
            "The ERP's document number; NULL until the ERP posted the invoice.",
        ),
        Column(
            "status",
            "text",
            "open, partially_paid, paid, credited, uncollectible or void (as the hub's "
            "invoice: paid when nothing is owed, credited when credit notes alone cleared it).",
            not_null=True,
        ),
        Column("currency", "text", "ISO 4217 currency of every amount on the invoice.", True),
        Column("subtotal", "numeric", "Sum of the lines, exact, as billed.", not_null=True),
        Column("tax", "numeric", "Tax billed, exact.", not_null=True),
        Column("total", "numeric", "subtotal + tax, exact (kept as issued when void).", True),
        Column(
            "amount_paid",
            "numeric",
            "Payments currently applied (refunds, failures and chargebacks taken back), exact.",
            not_null=True,
        ),
        Column("amount_credited", "numeric", "Sum of the credit notes, exact.", not_null=True),
        Column(
            "balance",
            "numeric",
            "Still owed: total - amount_credited - amount_paid, never below 0; 0 when void.",
            not_null=True,
        ),
        Column(
            "credit_balance",
            "numeric",
            "Owed back to the customer: credited beyond what was open (a credit note after "
            "payment), exact; 0 otherwise.",
            not_null=True,
        ),
        Column(
            "written_off",
            "boolean",
            "Marked uncollectible (a later payment still settles it).",
            not_null=True,
        ),
        Column("issue_date", "date", "Invoice date (billing's business date).", not_null=True),
        Column("due_date", "date", "Payment due date.", not_null=True),
        Column(
            "tax_status",
            "text",
            "calculated, failed or not_applicable as the ERP or tax platform reported; NULL "
            "when nothing was reported.",
        ),
        Column("tax_failure_reason", "text", "Why the tax calculation failed; NULL otherwise."),
        Column(
            "to_post",
            "boolean",
            "Still to post to the ERP: no ERP document number yet, not void, and the tax "
            "calculation has not failed (a failed tax holds the invoice).",
            not_null=True,
        ),
        *_latest("invoice", "invoices"),
    ),
)

INVOICE_LINES = Table(
    name="erp_invoice_lines",
    comment="Concord ERP view: the lines of each invoice, as billed.",
    primary_key=("invoice_id", "line_number"),
    columns=(
        Column("invoice_id", "uuid", "The invoice (erp_invoices.invoice_id).", not_null=True),
        Column("line_number", "integer", "Position of the line on the invoice, from 1.", True),
        Column("sku", "text", "The line's SKU.", not_null=True),
        Column("description", "text", "The line's text as billed; may be NULL."),
        Column("quantity", "numeric", "Quantity billed, exact.", not_null=True),
        Column("unit_price", "numeric", "Price per unit in the invoice's currency, exact.", True),
        Column(
            "amount",
            "numeric",
            "Amount billed, exact, as the billing system computed it (negative for a discount).",
            not_null=True,
        ),
        Column("tax", "numeric", "Tax on the line, exact; NULL when billing gave none."),
        Column("charge_type", "text", "one_time, recurring or usage; NULL when not given."),
        Column("proration", "boolean", "The billing system prorated the line.", not_null=True),
        Column("service_period_start", "date", "First day served; may be NULL."),
        Column(
            "service_period_end",
            "date",
            "First day NOT served (the period is half-open [start, end)); may be NULL.",
        ),
        Column(
            "order_line",
            "integer",
            "The order line billed: its index in the order's lines (from 0, so "
            "erp_sales_order_lines.line_number - 1); NULL when not given.",
        ),
    ),
)

PAYMENTS = Table(
    name="erp_payments",
    comment=(
        "Concord ERP view: one row per payment received, with what is applied, refunded and "
        "left unapplied. Built by the erp_billing projection."
    ),
    primary_key=("payment_id",),
    columns=(
        Column("payment_id", "uuid", "Canonical payment id (Concord).", not_null=True),
        Column(
            "customer_id",
            "uuid",
            "Canonical id of the payer (the survivor after a merge moved the payment).",
            not_null=True,
        ),
        Column("amount", "numeric", "Amount received, exact.", not_null=True),
        Column("currency", "text", "ISO 4217 currency of every amount on the payment.", True),
        Column("method", "text", "card, ach, wire, check or other.", not_null=True),
        Column("received_at", "timestamptz", "When the money was received (source's time).", True),
        Column("reference", "text", "The source's payment reference; may be NULL."),
        Column(
            "status",
            "text",
            "received, refunded (refunded in full), failed (never settled) or reversed "
            "(charged back).",
            not_null=True,
        ),
        Column("amount_applied", "numeric", "Currently applied to invoices, exact.", True),
        Column("amount_refunded", "numeric", "Refunded so far, exact.", not_null=True),
        Column(
            "unapplied",
            "numeric",
            "The customer's credit left on the payment: amount - amount_applied - "
            "amount_refunded while received; 0 once failed or reversed (no money is left).",
            not_null=True,
        ),
        *_latest("payment", "payments"),
    ),
)

APPLICATIONS = Table(
    name="erp_payment_applications",
    comment=(
        "Concord ERP view: how much of each payment is currently applied to each invoice "
        "(from the payment's events; a pair taken back to zero has no row)."
    ),
    primary_key=("payment_id", "invoice_id"),
    columns=(
        Column("payment_id", "uuid", "The payment (erp_payments.payment_id).", not_null=True),
        Column("invoice_id", "uuid", "The invoice (erp_invoices.invoice_id).", not_null=True),
        Column(
            "amount",
            "numeric",
            "Net amount applied, exact, in the payment's currency (applied less what "
            "refunds, failures and chargebacks took back).",
            not_null=True,
        ),
    ),
)

_INSERT_INVOICE = (
    "INSERT INTO {erp_invoices} (invoice_id, customer_id, order_id, contract_id, "
    "source_number, status, currency, subtotal, tax, total, amount_paid, amount_credited, "
    "balance, credit_balance, written_off, issue_date, due_date, tax_status, to_post, "
    "version, changed_at, position) VALUES (%s, %s, %s, %s, %s, 'open', %s, %s, %s, %s, "
    "%s, %s, %s, %s, false, %s, %s, %s, true, %s, %s, %s)"
)
_INSERT_LINE = (
    "INSERT INTO {erp_invoice_lines} (invoice_id, line_number, sku, description, quantity, "
    "unit_price, amount, tax, charge_type, proration, service_period_start, "
    "service_period_end, order_line) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
#: Invoice._settle in SQL, and what follows from it. ``owed * 0`` is a zero with the
#: currency's scale. SET reads the row as it was before this statement, so ``status`` in
#: ``to_post`` is the status the previous statement left (void stays void).
_SETTLE_INVOICE = (
    "UPDATE {erp_invoices} SET "
    "balance = CASE WHEN status = 'void' THEN total * 0 "
    "ELSE greatest(total - amount_credited - amount_paid, total * 0) END, "
    "credit_balance = greatest(amount_credited + amount_paid - total, total * 0), "
    "status = CASE WHEN status = 'void' THEN 'void' "
    "WHEN total - amount_credited - amount_paid <= 0 THEN "
    "CASE WHEN amount_paid = 0 AND amount_credited <> 0 THEN 'credited' ELSE 'paid' END "
    "WHEN written_off THEN 'uncollectible' "
    "WHEN amount_paid <> 0 THEN 'partially_paid' ELSE 'open' END, "
    "to_post = erp_document_number IS NULL AND status <> 'void' "
    "AND tax_status IS DISTINCT FROM 'failed' "
    "WHERE invoice_id = %s"
)
_INSERT_PAYMENT = (
    "INSERT INTO {erp_payments} (payment_id, customer_id, amount, currency, method, "
    "received_at, reference, status, amount_applied, amount_refunded, unapplied, version, "
    "changed_at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, 'received', %s, %s, %s, %s, "
    "%s, %s)"
)
#: What follows from the payment's amounts (Payment.unapplied; refunded in full).
_SETTLE_PAYMENT = (
    "UPDATE {erp_payments} SET "
    "unapplied = CASE WHEN status IN ('failed', 'reversed') THEN amount * 0 "
    "ELSE amount - amount_applied - amount_refunded END, "
    "status = CASE WHEN status = 'received' AND amount_refunded = amount THEN 'refunded' "
    "ELSE status END "
    "WHERE payment_id = %s"
)
_APPLY = (
    "INSERT INTO {erp_payment_applications} (payment_id, invoice_id, amount) "
    "VALUES (%s, %s, %s) ON CONFLICT (payment_id, invoice_id) "
    "DO UPDATE SET amount = {erp_payment_applications}.amount + excluded.amount"
)
#: Events that take money back off invoices, and the status they leave (None: unchanged).
TAKE_BACK = {"PaymentRefunded": None, "PaymentFailed": "failed", "PaymentReversed": "reversed"}


def money(value: dict[str, Any]) -> Decimal:
    """An event's Money (``{"amount": "12.30", "currency": "USD"}``) as an exact Decimal."""
    return Decimal(str(value["amount"]))


def optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def optional_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


class ErpBilling(Projection):
    name: ClassVar[str] = "erp_billing"
    title: ClassVar[str] = "ERP invoices and payments"
    version: ClassVar[int] = 1
    stores: ClassVar[tuple[str, ...]] = ("invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = (INVOICES, INVOICE_LINES, PAYMENTS, APPLICATIONS)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["aggregate"] == "invoice":
            self._invoice(event, at, cursor)
        elif event["aggregate"] == "payment":
            self._payment(event, at, cursor)

    # -- invoices -------------------------------------------------------------------------

    def _invoice(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        invoice = event["aggregate_id"]
        if event["type"] == "InvoiceIssued":
            self._issue(event, at, cursor)
        else:
            changes, deltas = invoice_changes(event["type"], event["data"])
            update_latest(cursor, "erp_invoices", "invoice_id", event, at, changes)
            add(cursor, "erp_invoices", "invoice_id", invoice, deltas)
        cursor.execute(_SETTLE_INVOICE, (invoice,))

    @staticmethod
    def _issue(event: Envelope, at: Position, cursor: ViewCursor) -> None:
        data, invoice = event["data"], event["aggregate_id"]
        total = money(data["total"])
        zero = total * 0
        cursor.execute(
            _INSERT_INVOICE,
            (
                invoice,
                data["customer_id"],
                data.get("order_id"),
                data.get("contract_id"),
                data.get("source_number"),
                data["currency"],
                money(data["subtotal"]),
                money(data["tax"]),
                total,
                zero,
                zero,
                total,
                zero,
                date.fromisoformat(data["issue_date"]),
                date.fromisoformat(data["due_date"]),
                data.get("tax_status"),
                event["version"],
                datetime.fromisoformat(event["recorded_at"]),
                at.position,
            ),
        )
        for number, line in enumerate(data["lines"], start=1):
            cursor.execute(
                _INSERT_LINE,
                (
                    invoice,
                    number,
                    line["sku"],
                    line.get("description"),
                    Decimal(str(line["quantity"])),
                    Decimal(str(line["unit_price"])),
                    Decimal(str(line["amount"])),
                    optional_decimal(line.get("tax")),
                    line.get("charge_type"),
                    bool(line.get("proration", False)),
                    optional_date(line.get("service_period_start")),
                    optional_date(line.get("service_period_end")),
                    line.get("order_line"),
                ),
            )

    # -- payments -------------------------------------------------------------------------

    def _payment(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        data, kind, payment = event["data"], event["type"], event["aggregate_id"]
        if kind == "PaymentReceived":
            amount = money(data["amount"])
            cursor.execute(
                _INSERT_PAYMENT,
                (
                    payment,
                    data["customer_id"],
                    amount,
                    data["amount"]["currency"],
                    data["method"],
                    datetime.fromisoformat(data["received_at"]),
                    data.get("reference"),
                    amount * 0,
                    amount * 0,
                    amount,
                    event["version"],
                    datetime.fromisoformat(event["recorded_at"]),
                    at.position,
                ),
            )
            return
        changes: dict[str, Any] = {}
        deltas: dict[str, Decimal] = {}
        if kind == "PaymentApplied":
            deltas = {"amount_applied": money(data["amount"])}
            cursor.execute(_APPLY, (payment, data["invoice_id"], money(data["amount"])))
        elif kind in TAKE_BACK:
            deltas = {"amount_applied": -self._take_back(cursor, payment, data["unapplied"])}
            if kind == "PaymentRefunded":
                deltas["amount_refunded"] = money(data["amount"])
            if TAKE_BACK[kind] is not None:
                changes = {"status": TAKE_BACK[kind]}
        elif kind == "PaymentMovedToSurvivor":
            changes = {"customer_id": data["customer_id"]}
        update_latest(cursor, "erp_payments", "payment_id", event, at, changes)
        add(cursor, "erp_payments", "payment_id", payment, deltas)
        cursor.execute(_SETTLE_PAYMENT, (payment,))

    @staticmethod
    def _take_back(cursor: ViewCursor, payment: str, unapplied: list[dict[str, Any]]) -> Decimal:
        """Take each listed amount off its application (a pair at zero is deleted); the sum."""
        back = Decimal(0)
        for item in unapplied:
            amount = money(item["amount"])
            back += amount
            cursor.execute_one(
                "UPDATE {erp_payment_applications} SET amount = amount - %s "
                "WHERE payment_id = %s AND invoice_id = %s",
                (amount, payment, item["invoice_id"]),
                f"erp_payment_applications has no row for payment {payment} and invoice "
                f"{item['invoice_id']}: its application was never applied",
            )
        cursor.execute(
            "DELETE FROM {erp_payment_applications} WHERE payment_id = %s AND amount = 0",
            (payment,),
        )
        return back


def invoice_changes(kind: str, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Decimal]]:
    """What an invoice event (other than its issue) sets, and what it adds to amounts."""
    if kind == "InvoicePosted":
        return {"erp_document_number": data["erp_document_number"]}, {}
    if kind == "InvoiceVoided":
        return {"status": "void"}, {}
    if kind == "InvoiceCredited":
        return {}, {"amount_credited": money(data["credit"]["amount"])}
    if kind == "InvoiceMarkedUncollectible":
        return {"written_off": True}, {}
    if kind == "InvoicePaymentApplied":
        return {}, {"amount_paid": money(data["amount"])}
    if kind == "InvoicePaymentUnapplied":
        return {}, {"amount_paid": -money(data["amount"])}
    if kind == "InvoiceMovedToSurvivor":
        return {"customer_id": data["customer_id"]}, {}
    if kind == "InvoiceTaxFailed":
        return {"tax_status": "failed", "tax_failure_reason": data.get("reason")}, {}
    if kind == "InvoiceTaxCalculated":
        return {"tax_status": data["status"], "tax_failure_reason": None}, {}
    return {}, {}


def add(cursor: ViewCursor, table: str, key: str, row: str, deltas: dict[str, Decimal]) -> None:
    """``column = column + delta`` for each of ``deltas`` on one row (after update_latest
    checked that it exists)."""
    if deltas:
        sets = ", ".join(f"{column} = {column} + %s" for column in deltas)
        cursor.execute(f"UPDATE {{{table}}} SET {sets} WHERE {key} = %s", (*deltas.values(), row))
