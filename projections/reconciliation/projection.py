"""``reconciliation``: breaks between what the systems say, and the business SLAs.

Follows orders, contracts, invoices and payments, each in its own order; stores facts per
object (``tables.py``) and, after each fact, runs the checks of the objects it touches
(``checks.py``), which open or close breaks (``breaks.py``). Facts are facts: nothing here
refuses data, a disagreement is a row.

What the "ERP copy" of an invoice is: the ERP's posting (InvoicePosted) carries its document
number and, since v2, its own amounts (``erp_amounts``); a later save of the same document
with other amounts is InvoiceErpRevised. ``erp_total`` is the ERP's total, billing's when
the posting carried none (a v1 posting, or an ERP that sent no amounts). INVOICE_MISMATCH
compares the two documents' totals: it is open while the ERP posted the invoice and its total
is not billing's, or billing voided it and the ERP still holds a non-zero total. Credit notes
do not count: they are documents of their own on both sides (an ERP credit memo is not the
invoice). It closes when an ERP revision (or a billing change) makes them agree.

Money is exact numeric from the events' decimal strings; times are the events' times.

Why every write sets final values from the memo (``facts.py``): the facts of each object
are remembered, so a change is computed here and written as the row's new values (one
statement text per table and kind of write), and the checks need no read-back; each
touched row is then held and written once per run of a store's events, in its final state
(``writes.py``), so a batch's writes are a few runs of one statement each.
``paid_at`` is computed here too: when the invoice first became settled in full by
payments (cleared if it reopens).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from projections.definition import Envelope, Position, Table, View, ViewCursor
from projections.reconciliation import checks, facts, writes
from projections.reconciliation.tables import BREAK_EVENTS, BREAKS, FACTS
from projections.reconciliation.views import VIEWS
from projections.rows import PerAggregate, business_time


def _amount(money: dict[str, Any]) -> Decimal:
    return Decimal(str(money["amount"]))


def _erp_total(data: dict[str, Any]) -> Decimal | None:
    """The ERP's total of a posting or revision; None: the posting said none (billing's)."""
    amounts = data.get("erp_amounts")
    return None if amounts is None else _amount(amounts["total"])


def _uuid(value: Any) -> str | None:
    """A referenced id as the tables write it back (canonical text), to key the memo."""
    return None if value is None else str(UUID(str(value)))


def _quantities(lines: list[dict[str, Any]]) -> dict[str, Decimal]:
    """Recurring and usage quantity per SKU (what the contract should carry)."""
    sums: dict[str, Decimal] = {}
    for line in lines:
        if line["charge_type"] in ("recurring", "usage"):
            sku = line["sku"]
            sums[sku] = sums.get(sku, Decimal(0)) + Decimal(str(line["quantity"]))
    return sums


class Reconciliation(PerAggregate):
    name: ClassVar[str] = "reconciliation"
    title: ClassVar[str] = "Reconciliation breaks and SLAs"
    version: ClassVar[int] = 4
    stores: ClassVar[tuple[str, ...]] = ("orders", "contracts", "invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = (*FACTS, BREAKS, BREAK_EVENTS)
    views: ClassVar[tuple[View, ...]] = VIEWS

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        """The event's fact and break rows are held in the memo and written at
        :meth:`write_held` (see ``writes.py``); its history rows go now. Whether the memo
        holds every row is settled before the first write after it was emptied (see
        ``facts.complete``): asked later, the rows just written would say no."""
        facts.complete(cursor)
        super().apply(event, at, cursor)

    def write_held(self, cursor: ViewCursor) -> None:
        """Each row touched since the last call, once, in its final state."""
        writes.write(cursor)

    # -- orders -------------------------------------------------------------------------

    def _order(self, event: Envelope, cursor: ViewCursor) -> None:
        data, order_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "OrderPlaced":
            entry = facts.order(cursor, order_id)
            row = writes.touched(writes.held(cursor).orders, order_id, entry)
            twice = entry.exists or row.new is not None
            opportunity = data.get("opportunity_amount")
            entry.exists, entry.customer_id, entry.currency = (
                True,
                data["customer_id"],
                data["currency"],
            )
            entry.opportunity = None if opportunity is None else _amount(opportunity)
            entry.total, entry.status = _amount(data["totals"]["total"]), "open"
            if twice:  # the row is there: its insert fails, at this event
                cursor.execute(writes.ORDER_INSERT, writes.order_row(order_id, entry, when, when))
            else:
                row.new = (when,)
            row.changed_at = when
            self._order_items(row, data["lines"])
            checks.invoices_naming(cursor, event, entry.invoices)
        elif kind == "OrderAmended":
            entry = facts.order(cursor, order_id)
            row = writes.touched(writes.held(cursor).orders, order_id, entry)
            if entry.exists:
                entry.total = _amount(data["totals"]["total"])
                row.changed_at = when
            self._order_items(row, data["lines"])
        elif kind in ("OrderRejected", "OrderCancelled"):
            entry = facts.order(cursor, order_id)
            if entry.exists:
                entry.status = "rejected" if kind == "OrderRejected" else "cancelled"
                writes.touched(writes.held(cursor).orders, order_id, entry).changed_at = when
            checks.invoices_naming(cursor, event, entry.invoices)
            return
        else:
            return
        checks.order(cursor, event, order_id)
        checks.contracts_of(cursor, event, order_id)

    @staticmethod
    def _order_items(row: writes.Row, lines: list[dict[str, Any]]) -> None:
        """The rows become the lines' quantities: what differs from the rows as they stand
        (remembered at the first change since they were written) is written."""
        entry: facts.Order = row.entry
        if row.items is None:
            row.items = dict(entry.items)
        entry.items = _quantities(lines)

    # -- contracts ----------------------------------------------------------------------

    _CONTRACT_STATUS: ClassVar[dict[str, str]] = {
        "ContractActivated": "active",
        "ContractSuspended": "suspended",
        "ContractResumed": "active",
        "ContractCancelled": "cancelled",
    }

    def _contract(self, event: Envelope, cursor: ViewCursor) -> None:
        data, contract_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "ContractCreated":
            entry = facts.contract(cursor, contract_id)
            row = writes.touched(writes.held(cursor).contracts, contract_id, entry)
            twice = entry.exists or row.new is not None
            order_id = _uuid(data["order_id"])
            assert order_id is not None
            entry.exists, entry.order_id, entry.customer_id = True, order_id, data["customer_id"]
            entry.status, entry.activated_at = "pending", None
            if twice:  # the row is there: its insert fails, at this event
                cursor.execute(
                    writes.CONTRACT_INSERT, writes.contract_row(contract_id, entry, when)
                )
            else:
                row.new = tuple(item["sku"] for item in data["items"])
            row.changed_at = when
            for item in data["items"]:
                made: facts.Item = (Decimal(str(item["quantity"])), item.get("charge_type"))
                entry.items[item["sku"]] = made
                if twice:
                    cursor.execute(
                        writes.CONTRACT_ITEM_INSERT,
                        (contract_id, item["sku"], *made),
                    )
            owner = facts.known_order(cursor, order_id)
            if owner is not None:
                owner.contracts += (contract_id,)
            checks.invoices_naming(cursor, event, entry.invoices)
        elif kind == "ContractAmended":
            entry = facts.contract(cursor, contract_id)
            row = writes.touched(writes.held(cursor).contracts, contract_id, entry)
            if row.new is None and row.items is None:
                # The items as they stand, before this run's first change to them.
                row.items = {sku: str(item[0]) for sku, item in entry.items.items()}
            for change in data["changes"]:
                held = entry.items.get(change["sku"])
                if change.get("quantity") is not None and held is not None:
                    quantity = Decimal(str(change["quantity"]))
                    entry.items[change["sku"]] = (quantity, held[1])
        elif kind in self._CONTRACT_STATUS:
            entry = facts.contract(cursor, contract_id)
            if entry.exists:
                entry.status = self._CONTRACT_STATUS[kind]
                if kind == "ContractActivated":
                    entry.activated_at = when
                writes.touched(writes.held(cursor).contracts, contract_id, entry).changed_at = when
            if kind == "ContractActivated":
                return
        else:
            return
        checks.contract(cursor, event, contract_id)

    # -- invoices -----------------------------------------------------------------------

    def _invoice(self, event: Envelope, cursor: ViewCursor) -> None:
        data, invoice_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "InvoiceIssued":
            before = cursor.memo.get(("invoice", invoice_id))
            entry = facts.issued(cursor, invoice_id)
            entry.customer_id, entry.currency = data["customer_id"], data["currency"]
            entry.order_id, entry.contract_id = (
                _uuid(data.get("order_id")),
                _uuid(data.get("contract_id")),
            )
            entry.total = _amount(data["total"])
            issue_date = date.fromisoformat(data["issue_date"])
            invoices = writes.held(cursor).invoices
            if (before is not None and before.exists) or invoice_id in invoices:
                # The row is there (or held): its insert fails, at this event.
                cursor.execute(
                    writes.INVOICE_INSERT, writes.invoice_row(invoice_id, entry, issue_date, when)
                )
            else:
                invoices[invoice_id] = writes.Row(entry, when, (issue_date,))
            if entry.order_id is not None:
                named = facts.known_order(cursor, entry.order_id)
                if named is not None:
                    named.invoices += (invoice_id,)
            if entry.contract_id is not None:
                billed = facts.known_contract(cursor, entry.contract_id)
                if billed is not None:
                    billed.invoices += (invoice_id,)
            checks.invoice(cursor, event, invoice_id)
            return
        if kind not in self._INVOICE_KINDS:
            return
        entry = facts.invoice(cursor, invoice_id)
        if not entry.exists:
            raise LookupError(f"recon_invoices has no row for invoice {invoice_id}")
        if kind == "InvoicePosted":
            entry.erp_document_number = data["erp_document_number"]
            erp = _erp_total(data)
            entry.erp_total = entry.total if erp is None else erp
        elif kind == "InvoiceErpRevised":
            entry.erp_total = _erp_total(data)
        elif kind == "InvoiceVoided":
            entry.void = True
        elif kind == "InvoiceCredited":
            entry.credited += _amount(data["credit"]["amount"])
        elif kind == "InvoicePaymentApplied":
            entry.paid += _amount(data["amount"])
        elif kind == "InvoicePaymentUnapplied":
            entry.paid -= _amount(data["amount"])
        else:  # InvoiceMovedToSurvivor
            entry.customer_id = data["customer_id"]
        # Settled in full by payments: when it first became so (cleared if it reopens).
        settled = entry.paid > 0 and entry.paid >= entry.total - entry.credited
        entry.paid_at = (entry.paid_at or when) if settled else None
        writes.touched(writes.held(cursor).invoices, invoice_id, entry).changed_at = when
        checks.invoice(cursor, event, invoice_id)

    _INVOICE_KINDS: ClassVar[frozenset[str]] = frozenset(
        (
            "InvoicePosted",
            "InvoiceErpRevised",
            "InvoiceVoided",
            "InvoiceCredited",
            "InvoicePaymentApplied",
            "InvoicePaymentUnapplied",
            "InvoiceMovedToSurvivor",
        )
    )

    # -- payments -----------------------------------------------------------------------

    def _payment(self, event: Envelope, cursor: ViewCursor) -> None:
        data, payment_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "PaymentReceived":
            before = cursor.memo.get(("payment", payment_id))
            entry = facts.received(cursor, payment_id)
            amount = _amount(data["amount"])
            received = datetime.fromisoformat(data["received_at"])
            entry.customer_id, entry.currency = data["customer_id"], data["amount"]["currency"]
            entry.unapplied, entry.status = amount, "received"
            payments = writes.held(cursor).payments
            if (before is not None and before.exists) or payment_id in payments:
                # The row is there (or held): its insert fails, at this event.
                cursor.execute(
                    writes.PAYMENT_INSERT,
                    writes.payment_row(payment_id, entry, amount, received, when),
                )
            else:
                payments[payment_id] = writes.Row(entry, when, (amount, received))
            cursor.execute(self._MOVE, (payment_id, event["version"], received, amount))
            checks.payment(cursor, event, payment_id)
            return
        entry = facts.payment(cursor, payment_id)
        if not entry.exists:
            raise LookupError(f"recon_payments has no row for payment {payment_id}")
        if kind == "PaymentApplied":
            entry.unapplied -= _amount(data["amount"])
        elif kind == "PaymentRefunded":
            back = sum((_amount(u["amount"]) for u in data.get("unapplied", [])), Decimal(0))
            entry.unapplied += back - _amount(data["amount"])
        elif kind in ("PaymentFailed", "PaymentReversed"):
            entry.unapplied = Decimal(0)
            entry.status = "failed" if kind == "PaymentFailed" else "reversed"
        elif kind == "PaymentMovedToSurvivor":
            entry.customer_id = data["customer_id"]
        else:
            return
        writes.touched(writes.held(cursor).payments, payment_id, entry).changed_at = when
        cursor.execute(self._MOVE, (payment_id, event["version"], when, entry.unapplied))
        checks.payment(cursor, event, payment_id)

    _MOVE: ClassVar[str] = (
        "INSERT INTO {recon_payment_moves} (payment_id, version, at, unapplied) "
        "VALUES (%s, %s, %s, %s)"
    )
