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

Why status and balance are recomputed after each invoice event: they follow
``Invoice._settle`` (hub/domain/invoice.py) from the row's totals, so the view cannot drift
from the domain's rule whatever events came before. Money is exact ``numeric`` from the
events' decimal strings (``Decimal`` in Python), never floats; a zero keeps the currency's
scale.

Why the rows are kept in ``cursor.memo`` and written by ``write_held``: each invoice or
payment event used to be three updates (the change, the amounts, the settlement), each
waiting for its row to be checked, and a rebuild's events of one aggregate come one after
the other. Kept in Python (read from the table only on a miss: the runner is the only
writer), each row touched in a run of events is computed there and written once in its
final state, the new ones as multi-row inserts and the older ones as one update text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from projections.definition import Column, Envelope, Position, Projection, Table, ViewCursor
from projections.rows import missing_row

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

_INVOICE_COLUMNS = (
    "invoice_id, customer_id, order_id, contract_id, source_number, erp_document_number, "
    "status, currency, subtotal, tax, total, amount_paid, amount_credited, balance, "
    "credit_balance, written_off, issue_date, due_date, tax_status, tax_failure_reason, "
    "to_post, version, changed_at, position"
)
_INSERT_INVOICE = (
    f"INSERT INTO {{erp_invoices}} ({_INVOICE_COLUMNS}) VALUES (" + ", ".join(["%s"] * 24) + ")"
)
#: What an invoice event after its issue may change (the rest is as issued).
_UPDATE_INVOICE = (
    "UPDATE {erp_invoices} SET customer_id = %s, erp_document_number = %s, status = %s, "
    "amount_paid = %s, amount_credited = %s, balance = %s, credit_balance = %s, "
    "written_off = %s, tax_status = %s, tax_failure_reason = %s, to_post = %s, version = %s, "
    "changed_at = %s, position = %s WHERE invoice_id = %s"
)
_INSERT_LINE = (
    "INSERT INTO {erp_invoice_lines} (invoice_id, line_number, sku, description, quantity, "
    "unit_price, amount, tax, charge_type, proration, service_period_start, "
    "service_period_end, order_line) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_PAYMENT_COLUMNS = (
    "payment_id, customer_id, amount, currency, method, received_at, reference, status, "
    "amount_applied, amount_refunded, unapplied, version, changed_at, position"
)
_INSERT_PAYMENT = (
    f"INSERT INTO {{erp_payments}} ({_PAYMENT_COLUMNS}) VALUES (" + ", ".join(["%s"] * 14) + ")"
)
_UPDATE_PAYMENT = (
    "UPDATE {erp_payments} SET customer_id = %s, status = %s, amount_applied = %s, "
    "amount_refunded = %s, unapplied = %s, version = %s, changed_at = %s, position = %s "
    "WHERE payment_id = %s"
)
_INSERT_APPLICATION = (
    "INSERT INTO {erp_payment_applications} (payment_id, invoice_id, amount) VALUES (%s, %s, %s)"
)
#: Events that take money back off invoices, and the status they leave (None: unchanged).
TAKE_BACK = {"PaymentRefunded": None, "PaymentFailed": "failed", "PaymentReversed": "reversed"}
#: Memo keys: an invoice's row (``(_INVOICE, id)``), a payment's row with its applications
#: (``(_PAYMENT, id)``), and the ids touched since the last write -> whether they are new.
_INVOICE = "erp_billing.invoice"
_PAYMENT = "erp_billing.payment"
_HELD_INVOICES = "erp_billing.held_invoices"
_HELD_PAYMENTS = "erp_billing.held_payments"


def money(value: dict[str, Any]) -> Decimal:
    """An event's Money (``{"amount": "12.30", "currency": "USD"}``) as an exact Decimal."""
    return Decimal(str(value["amount"]))


def optional_decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def optional_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


@dataclass
class InvoiceRow:
    """An erp_invoices row; ``fixed`` holds the columns no later event changes."""

    invoice_id: str
    fixed: tuple[Any, ...]
    """order_id, contract_id, source_number, currency, subtotal, tax (in that order)."""
    total: Decimal
    issue_date: date
    due_date: date
    customer_id: str
    erp_document_number: str | None
    status: str
    amount_paid: Decimal
    amount_credited: Decimal
    balance: Decimal
    credit_balance: Decimal
    written_off: bool
    tax_status: str | None
    tax_failure_reason: str | None
    to_post: bool
    version: int
    changed_at: datetime
    position: int

    def settle(self) -> None:
        """Invoice._settle, and what follows from it (as the SQL this replaced did)."""
        zero = self.total * 0
        owed = self.total - self.amount_credited - self.amount_paid
        void = self.status == "void"
        self.balance = zero if void else max(owed, zero)
        self.credit_balance = max(self.amount_credited + self.amount_paid - self.total, zero)
        if void:
            pass
        elif owed <= 0:
            credited = self.amount_paid == 0 and self.amount_credited != 0
            self.status = "credited" if credited else "paid"
        elif self.written_off:
            self.status = "uncollectible"
        else:
            self.status = "partially_paid" if self.amount_paid != 0 else "open"
        self.to_post = (
            self.erp_document_number is None and not void and (self.tax_status != "failed")
        )

    def changing(self) -> tuple[Any, ...]:
        return (
            self.customer_id,
            self.erp_document_number,
            self.status,
            self.amount_paid,
            self.amount_credited,
            self.balance,
            self.credit_balance,
            self.written_off,
            self.tax_status,
            self.tax_failure_reason,
            self.to_post,
            self.version,
            self.changed_at,
            self.position,
        )

    def inserted(self) -> tuple[Any, ...]:
        order_id, contract_id, source_number, currency, subtotal, tax = self.fixed
        return (
            self.invoice_id,
            self.customer_id,
            order_id,
            contract_id,
            source_number,
            self.erp_document_number,
            self.status,
            currency,
            subtotal,
            tax,
            self.total,
            self.amount_paid,
            self.amount_credited,
            self.balance,
            self.credit_balance,
            self.written_off,
            self.issue_date,
            self.due_date,
            self.tax_status,
            self.tax_failure_reason,
            self.to_post,
            self.version,
            self.changed_at,
            self.position,
        )


@dataclass
class PaymentRow:
    """An erp_payments row and the payment's erp_payment_applications (invoice -> amount)."""

    payment_id: str
    fixed: tuple[Any, ...]
    """currency, method, received_at, reference (in that order)."""
    amount: Decimal
    customer_id: str
    status: str
    amount_applied: Decimal
    amount_refunded: Decimal
    unapplied: Decimal
    version: int
    changed_at: datetime
    position: int
    applications: dict[str, Decimal] = field(default_factory=dict)
    applications_changed: bool = False

    def settle(self) -> None:
        """Payment.unapplied, and refunded in full (as the SQL this replaced did)."""
        if self.status in ("failed", "reversed"):
            self.unapplied = self.amount * 0
        else:
            self.unapplied = self.amount - self.amount_applied - self.amount_refunded
        if self.status == "received" and self.amount_refunded == self.amount:
            self.status = "refunded"

    def changing(self) -> tuple[Any, ...]:
        return (
            self.customer_id,
            self.status,
            self.amount_applied,
            self.amount_refunded,
            self.unapplied,
            self.version,
            self.changed_at,
            self.position,
        )

    def inserted(self) -> tuple[Any, ...]:
        currency, method, received_at, reference = self.fixed
        return (
            self.payment_id,
            self.customer_id,
            self.amount,
            currency,
            method,
            received_at,
            reference,
            self.status,
            self.amount_applied,
            self.amount_refunded,
            self.unapplied,
            self.version,
            self.changed_at,
            self.position,
        )


_READ_INVOICE = (
    "SELECT order_id::text, contract_id::text, source_number, currency, subtotal, tax, total, "
    "issue_date, due_date, customer_id::text, erp_document_number, status, amount_paid, "
    "amount_credited, balance, credit_balance, written_off, tax_status, tax_failure_reason, "
    "to_post, version, changed_at, position FROM {erp_invoices} WHERE invoice_id = %s"
)
_READ_PAYMENT = (
    "SELECT currency, method, received_at, reference, amount, customer_id::text, status, "
    "amount_applied, amount_refunded, unapplied, version, changed_at, position, "
    "(SELECT json_agg(json_build_array(a.invoice_id::text, a.amount::text)) "
    "FROM {erp_payment_applications} a WHERE a.payment_id = p.payment_id) "
    "FROM {erp_payments} p WHERE payment_id = %s"
)


class ErpBilling(Projection):
    name: ClassVar[str] = "erp_billing"
    title: ClassVar[str] = "ERP invoices and payments"
    version: ClassVar[int] = 2
    stores: ClassVar[tuple[str, ...]] = ("invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = (INVOICES, INVOICE_LINES, PAYMENTS, APPLICATIONS)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["aggregate"] == "invoice":
            self._invoice(event, at, cursor)
        elif event["aggregate"] == "payment":
            self._payment(event, at, cursor)

    def write_held(self, cursor: ViewCursor) -> None:
        """Every invoice and payment touched since the last call, written once as it now is:
        older rows as updates (a payment's applications replaced when they changed), new
        ones as inserts. Updates and deletes come before the inserts, each kind one run."""
        invoices: dict[str, bool] = cursor.memo.pop(_HELD_INVOICES, None) or {}
        payments: dict[str, bool] = cursor.memo.pop(_HELD_PAYMENTS, None) or {}
        for key, new in invoices.items():
            if not new:
                row: InvoiceRow = cursor.memo[(_INVOICE, key)]
                cursor.execute(_UPDATE_INVOICE, (*row.changing(), key))
        for key, new in payments.items():
            if not new:
                pay: PaymentRow = cursor.memo[(_PAYMENT, key)]
                cursor.execute(_UPDATE_PAYMENT, (*pay.changing(), key))
        for key, new in payments.items():
            if not new and cursor.memo[(_PAYMENT, key)].applications_changed:
                cursor.execute(
                    "DELETE FROM {erp_payment_applications} WHERE payment_id = %s", (key,)
                )
        for key, new in invoices.items():
            if new:
                cursor.execute(_INSERT_INVOICE, cursor.memo[(_INVOICE, key)].inserted())
        for key, new in payments.items():
            pay = cursor.memo[(_PAYMENT, key)]
            if new:
                cursor.execute(_INSERT_PAYMENT, pay.inserted())
            if new or pay.applications_changed:
                for invoice, amount in pay.applications.items():
                    cursor.execute(_INSERT_APPLICATION, (key, invoice, amount))
            pay.applications_changed = False

    # -- invoices -------------------------------------------------------------------------

    def _invoice(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        key = event["aggregate_id"]
        held: dict[str, bool] = cursor.memo.setdefault(_HELD_INVOICES, {})
        if event["type"] == "InvoiceIssued":
            if key in held or (_INVOICE, key) in cursor.memo:
                raise ValueError(f"erp_invoices already has invoice {key}: issued twice")
            row = self._issue(event, at, cursor)
            held[key] = True
        else:
            row = self._stored_invoice(cursor, event)
            held.setdefault(key, False)
            apply_invoice_event(row, event["type"], event["data"])
            row.version = event["version"]
            row.changed_at = datetime.fromisoformat(event["recorded_at"])
            row.position = at.position
        row.settle()
        cursor.memo[(_INVOICE, key)] = row

    @staticmethod
    def _stored_invoice(cursor: ViewCursor, event: Envelope) -> InvoiceRow:
        key = event["aggregate_id"]
        row: InvoiceRow | None = cursor.memo.get((_INVOICE, key))
        if row is not None:
            return row
        found = cursor.fetchone(_READ_INVOICE, (key,))
        if found is None:
            raise missing_row("erp_invoices", "invoice_id", event)
        return InvoiceRow(str(key), tuple(found[:6]), *found[6:])

    @staticmethod
    def _issue(event: Envelope, at: Position, cursor: ViewCursor) -> InvoiceRow:
        data, invoice = event["data"], event["aggregate_id"]
        total = money(data["total"])
        zero = total * 0
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
        return InvoiceRow(
            invoice_id=invoice,
            fixed=(
                data.get("order_id"),
                data.get("contract_id"),
                data.get("source_number"),
                data["currency"],
                money(data["subtotal"]),
                money(data["tax"]),
            ),
            total=total,
            issue_date=date.fromisoformat(data["issue_date"]),
            due_date=date.fromisoformat(data["due_date"]),
            customer_id=data["customer_id"],
            erp_document_number=None,
            status="open",
            amount_paid=zero,
            amount_credited=zero,
            balance=total,
            credit_balance=zero,
            written_off=False,
            tax_status=data.get("tax_status"),
            tax_failure_reason=None,
            to_post=True,
            version=event["version"],
            changed_at=datetime.fromisoformat(event["recorded_at"]),
            position=at.position,
        )

    # -- payments -------------------------------------------------------------------------

    def _payment(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        data, kind, key = event["data"], event["type"], event["aggregate_id"]
        held: dict[str, bool] = cursor.memo.setdefault(_HELD_PAYMENTS, {})
        changed_at = datetime.fromisoformat(event["recorded_at"])
        if kind == "PaymentReceived":
            if key in held or (_PAYMENT, key) in cursor.memo:
                raise ValueError(f"erp_payments already has payment {key}: received twice")
            amount = money(data["amount"])
            cursor.memo[(_PAYMENT, key)] = PaymentRow(
                payment_id=key,
                fixed=(
                    data["amount"]["currency"],
                    data["method"],
                    datetime.fromisoformat(data["received_at"]),
                    data.get("reference"),
                ),
                amount=amount,
                customer_id=data["customer_id"],
                status="received",
                amount_applied=amount * 0,
                amount_refunded=amount * 0,
                unapplied=amount,
                version=event["version"],
                changed_at=changed_at,
                position=at.position,
            )
            held[key] = True
            return
        row = self._stored_payment(cursor, event)
        held.setdefault(key, False)
        if kind == "PaymentApplied":
            amount = money(data["amount"])
            row.amount_applied += amount
            invoice = data["invoice_id"]
            row.applications[invoice] = row.applications.get(invoice, amount * 0) + amount
            row.applications_changed = True
        elif kind in TAKE_BACK:
            row.amount_applied -= self._take_back(row, data["unapplied"])
            if kind == "PaymentRefunded":
                row.amount_refunded += money(data["amount"])
            status = TAKE_BACK[kind]
            if status is not None:
                row.status = status
        elif kind == "PaymentMovedToSurvivor":
            row.customer_id = data["customer_id"]
        row.version, row.changed_at, row.position = event["version"], changed_at, at.position
        row.settle()

    @staticmethod
    def _stored_payment(cursor: ViewCursor, event: Envelope) -> PaymentRow:
        key = event["aggregate_id"]
        row: PaymentRow | None = cursor.memo.get((_PAYMENT, key))
        if row is not None:
            return row
        found = cursor.fetchone(_READ_PAYMENT, (key,))
        if found is None:
            raise missing_row("erp_payments", "payment_id", event)
        applications = {invoice: Decimal(amount) for invoice, amount in found[13] or ()}
        row = PaymentRow(str(key), tuple(found[:4]), *found[4:13])
        row.applications = applications
        cursor.memo[(_PAYMENT, key)] = row
        return row

    @staticmethod
    def _take_back(row: PaymentRow, unapplied: list[dict[str, Any]]) -> Decimal:
        """Take each listed amount off its application (pairs left at zero are removed);
        the sum."""
        back = Decimal(0)
        for item in unapplied:
            amount = money(item["amount"])
            back += amount
            invoice = item["invoice_id"]
            if invoice not in row.applications:
                raise LookupError(
                    f"erp_payment_applications has no row for payment {row.payment_id} and "
                    f"invoice {invoice}: its application was never applied"
                )
            row.applications[invoice] -= amount
        row.applications = {i: a for i, a in row.applications.items() if a != 0}
        row.applications_changed = True
        return back


def apply_invoice_event(row: InvoiceRow, kind: str, data: dict[str, Any]) -> None:
    """What an invoice event (other than its issue) changes on its row, before settling."""
    if kind == "InvoicePosted":
        row.erp_document_number = data["erp_document_number"]
    elif kind == "InvoiceVoided":
        row.status = "void"
    elif kind == "InvoiceCredited":
        row.amount_credited += money(data["credit"]["amount"])
    elif kind == "InvoiceMarkedUncollectible":
        row.written_off = True
    elif kind == "InvoicePaymentApplied":
        row.amount_paid += money(data["amount"])
    elif kind == "InvoicePaymentUnapplied":
        row.amount_paid -= money(data["amount"])
    elif kind == "InvoiceMovedToSurvivor":
        row.customer_id = data["customer_id"]
    elif kind == "InvoiceTaxFailed":
        row.tax_status, row.tax_failure_reason = "failed", data.get("reason")
    elif kind == "InvoiceTaxCalculated":
        row.tax_status, row.tax_failure_reason = data["status"], None
