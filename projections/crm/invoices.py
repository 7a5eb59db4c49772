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

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

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
#: An invoice issued since the last write, in its state at the write: one plain insert text.
_INSERT = (
    "INSERT INTO {crm_invoices} (credited, paid, paid_at, void, invoice_id, order_id, "
    "contract_id, issue_date, total) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
#: An older invoice touched since the last write: its changing columns from the memo.
_UPDATE = (
    "UPDATE {crm_invoices} SET credited = %s, paid = %s, paid_at = %s, void = %s "
    "WHERE invoice_id = %s"
)
_STRIKE = "DELETE FROM {crm_invoice_moves} WHERE invoice_id = %s AND payment_id = %s"
_LOAD = (
    "SELECT i.total, i.credited, i.paid, i.paid_at, i.void, m.versions, m.payments, m.paid, "
    "m.credited, m.at "
    "FROM {crm_invoices} i LEFT JOIN LATERAL (SELECT array_agg(version ORDER BY version) "
    "AS versions, array_agg(payment_id::text ORDER BY version) AS payments, "
    "array_agg(paid ORDER BY version) AS paid, array_agg(credited ORDER BY version) AS "
    "credited, array_agg(at ORDER BY version) AS at FROM {crm_invoice_moves} m "
    "WHERE m.invoice_id = i.invoice_id) m ON true WHERE i.invoice_id = %s"
)
#: The invoices touched since the last write (see :class:`_Held`), in the order touched.
_HELD = ("crm", "invoices.held")


@dataclass(frozen=True)
class _Move:
    version: int
    payment: str | None
    paid: Decimal
    credited: Decimal
    at: datetime


@dataclass
class _Invoice:
    """What the memo keeps of an invoice: its row's changing columns and its moves in
    version order (``crm_invoice_moves``), so ``paid_at`` is replayed here instead of by a
    query. ``paid_at`` is the column as last written: only a payment's move recomputes it."""

    total: Decimal
    credited: Decimal
    paid: Decimal
    paid_at: datetime | None = None
    void: bool = False
    moves: list[_Move] = field(default_factory=list)

    def settled_at(self) -> datetime | None:
        """The earliest time of a payment move after which the moves so far (in version
        order) settle it in full."""
        paid = credited = Decimal(0)
        settled: list[datetime] = []
        for move in self.moves:
            paid, credited = paid + move.paid, credited + move.credited
            if move.payment is not None and paid > 0 and paid >= self.total - credited:
                settled.append(move.at)
        return min(settled, default=None)


@dataclass
class _Held:
    """What an invoice's events since the last write leave to write: for one issued since,
    its columns that never change (``new``); the moves not written yet, in order; and the
    payments whose written moves are to be struck (a failed payment's)."""

    invoice: _Invoice
    new: tuple[Any, ...] | None = None
    moves: list[_Move] = field(default_factory=list)
    struck: list[str] = field(default_factory=list)


def _invoice(cursor: ViewCursor, invoice: str, missing: str) -> _Invoice:
    """The memo's invoice, read with its moves on a miss; it must have been issued."""
    known: _Invoice | None = cursor.memo.get(("crm", "invoice", invoice))
    if known is not None:
        return known
    row = cursor.fetchone(_LOAD, (invoice,))
    if row is None:
        raise LookupError(missing)
    total, credited, paid, paid_at, void, versions, payments, *sums = row
    known = _Invoice(total, credited, paid, paid_at, void)
    if versions is not None:
        for version, payment, moved, credit, at in zip(versions, payments, *sums, strict=True):
            known.moves.append(_Move(version, payment, moved, credit, at))
    cursor.memo[("crm", "invoice", invoice)] = known
    return known


def apply_invoice(event: Envelope, cursor: ViewCursor) -> None:
    """An invoice's events on the memo's invoice (read back only on a miss), held for
    :func:`write_invoices`. Why the memo: applying a payment recomputed ``paid_at`` with a
    window query over the invoice's moves; the memo holds the invoice's sums and moves, so
    ``paid_at`` is computed here. Why hold: an invoice's events (issued, paid, credited)
    mostly follow one another in a run, and each updated its row; held, each touched row
    is written once per run in its final state, the moves still one row each, in order."""
    data, invoice, kind = event["data"], event["aggregate_id"], event["type"]
    held: dict[str, _Held] = cursor.memo.setdefault(_HELD, {})
    if kind == "InvoiceIssued":
        if ("crm", "invoice", invoice) in cursor.memo:
            raise ValueError(f"crm_invoices already has invoice {invoice}: issued twice")
        total = Decimal(str(data["total"]["amount"]))
        known = _Invoice(total, Decimal(0), Decimal(0))
        cursor.memo[("crm", "invoice", invoice)] = known
        new = (
            invoice,
            data.get("order_id"),
            data.get("contract_id"),
            date.fromisoformat(data["issue_date"]),
            total,
        )
        held[invoice] = _Held(known, new)
        return
    if kind not in ("InvoicePaymentApplied", "InvoicePaymentUnapplied", "InvoiceCredited"):
        if kind == "InvoiceVoided":
            known = _invoice(cursor, invoice, _missing(invoice, kind))
            known.void = True
            held.setdefault(invoice, _Held(known))
        return
    known = _invoice(cursor, invoice, _missing(invoice, kind))
    entry = held.setdefault(invoice, _Held(known))
    if kind == "InvoiceCredited":
        credit = Decimal(str(data["credit"]["amount"]["amount"]))
        move = _Move(event["version"], None, Decimal(0), credit, business_time(event))
        known.moves.append(move)
        entry.moves.append(move)
        known.credited += credit
        return
    amount = Decimal(str(data["amount"]["amount"]))
    amount = amount if kind == "InvoicePaymentApplied" else -amount
    payment = str(UUID(str(data["payment_id"])))
    if data.get("reason") == UnapplyReason.FAILURE:
        # Its moves held since the last write are never written; written ones are struck.
        fresh = [m for m in entry.moves if m.payment == payment]
        if entry.new is None and sum(m.payment == payment for m in known.moves) > len(fresh):
            entry.struck.append(payment)
        entry.moves = [m for m in entry.moves if m.payment != payment]
        known.moves = [m for m in known.moves if m.payment != payment]
    else:
        move = _Move(event["version"], payment, amount, Decimal(0), business_time(event))
        known.moves.append(move)
        entry.moves.append(move)
    known.paid += amount
    known.paid_at = known.settled_at()


def write_invoices(cursor: ViewCursor) -> None:
    """Each invoice touched since the last call, written once as the memo holds it: the
    older ones as one run of one update text, the struck moves, then the new invoices and
    every held move as runs of plain inserts (side by side: they read nothing)."""
    held: dict[str, _Held] | None = cursor.memo.pop(_HELD, None)
    if not held:
        return
    for invoice, entry in held.items():
        if entry.new is None:
            known = entry.invoice
            cursor.execute(
                _UPDATE, (known.credited, known.paid, known.paid_at, known.void, invoice)
            )
    for invoice, entry in held.items():
        for payment in entry.struck:
            cursor.execute(_STRIKE, (invoice, payment))
    for entry in held.values():
        if entry.new is not None:
            known = entry.invoice
            cursor.execute(
                _INSERT, (known.credited, known.paid, known.paid_at, known.void, *entry.new)
            )
    for invoice, entry in held.items():
        for move in entry.moves:
            cursor.execute(
                _MOVE, (invoice, move.version, move.payment, move.paid, move.credited, move.at)
            )


def _missing(invoice: str, kind: str) -> str:
    return f"crm_invoices has no row for invoice {invoice} ({kind}): never issued"
