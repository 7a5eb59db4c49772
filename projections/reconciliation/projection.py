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
statement text per table and kind of write), and the checks need no read-back; an event's
writes then go as one statement (``writes.py``), so runs of events of one kind fold.
``paid_at`` is computed here too: when the invoice first became settled in full by
payments (cleared if it reopens).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

from projections.definition import Envelope, Position, Table, View, ViewCursor
from projections.reconciliation import checks, facts
from projections.reconciliation.tables import BREAK_EVENTS, BREAKS, FACTS
from projections.reconciliation.views import VIEWS
from projections.reconciliation.writes import EventWrites
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
    version: ClassVar[int] = 3
    stores: ClassVar[tuple[str, ...]] = ("orders", "contracts", "invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = (*FACTS, BREAKS, BREAK_EVENTS)
    views: ClassVar[tuple[View, ...]] = VIEWS

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        """The event's writes go as one statement (see ``writes.py``). Whether the memo
        holds every row is settled before the first write after it was emptied (see
        ``facts.complete``): asked later, the rows just written would say no."""
        facts.complete(cursor)
        writes = EventWrites(cursor)
        super().apply(event, at, writes)
        writes.send()

    # -- orders -------------------------------------------------------------------------

    _ORDER_UPDATE: ClassVar[str] = (
        "UPDATE {recon_orders} SET total = %s, status = %s, changed_at = %s WHERE order_id = %s"
    )

    def _order(self, event: Envelope, cursor: ViewCursor) -> None:
        data, order_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "OrderPlaced":
            entry = facts.order(cursor, order_id)
            opportunity = data.get("opportunity_amount")
            entry.exists, entry.customer_id, entry.currency = (
                True,
                data["customer_id"],
                data["currency"],
            )
            entry.opportunity = None if opportunity is None else _amount(opportunity)
            entry.total, entry.status = _amount(data["totals"]["total"]), "open"
            cursor.execute(
                "INSERT INTO {recon_orders} (order_id, customer_id, currency, "
                "opportunity_amount, total, status, placed_at, changed_at) "
                "VALUES (%s, %s, %s, %s, %s, 'open', %s, %s)",
                (
                    order_id,
                    entry.customer_id,
                    entry.currency,
                    entry.opportunity,
                    entry.total,
                    when,
                    when,
                ),
            )
            self._order_items(cursor, entry, order_id, data["lines"])
            checks.invoices_naming(cursor, event, entry.invoices)
        elif kind == "OrderAmended":
            entry = facts.order(cursor, order_id)
            if entry.exists:
                entry.total = _amount(data["totals"]["total"])
                cursor.execute(self._ORDER_UPDATE, (entry.total, entry.status, when, order_id))
            self._order_items(cursor, entry, order_id, data["lines"])
        elif kind in ("OrderRejected", "OrderCancelled"):
            entry = facts.order(cursor, order_id)
            if entry.exists:
                entry.status = "rejected" if kind == "OrderRejected" else "cancelled"
                cursor.execute(self._ORDER_UPDATE, (entry.total, entry.status, when, order_id))
            checks.invoices_naming(cursor, event, entry.invoices)
            return
        else:
            return
        checks.order(cursor, event, order_id)
        checks.contracts_of(cursor, event, order_id)

    @staticmethod
    def _order_items(
        cursor: ViewCursor, entry: facts.Order, order_id: str, lines: list[dict[str, Any]]
    ) -> None:
        """The rows become the lines' quantities: only what differs is written."""
        now, before = _quantities(lines), entry.items
        for sku in sorted(before.keys() - now.keys()):
            cursor.execute(
                "DELETE FROM {recon_order_items} WHERE order_id = %s AND sku = %s",
                (order_id, sku),
            )
        for sku, quantity in sorted(now.items()):
            held = before.get(sku)
            if held is None:
                cursor.execute(
                    "INSERT INTO {recon_order_items} (order_id, sku, quantity) VALUES (%s, %s, %s)",
                    (order_id, sku, quantity),
                )
            elif str(held) != str(quantity):
                cursor.execute(
                    "UPDATE {recon_order_items} SET quantity = %s WHERE order_id = %s AND sku = %s",
                    (quantity, order_id, sku),
                )
        entry.items = now

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
            order_id = _uuid(data["order_id"])
            assert order_id is not None
            entry.exists, entry.order_id, entry.customer_id = True, order_id, data["customer_id"]
            entry.status, entry.activated_at = "pending", None
            cursor.execute(
                "INSERT INTO {recon_contracts} (contract_id, order_id, customer_id, status, "
                "activated_at, changed_at) VALUES (%s, %s, %s, 'pending', NULL, %s)",
                (contract_id, order_id, entry.customer_id, when),
            )
            for item in data["items"]:
                made = facts.Item(Decimal(str(item["quantity"])), item.get("charge_type"))
                entry.items[item["sku"]] = made
                cursor.execute(
                    "INSERT INTO {recon_contract_items} (contract_id, sku, quantity, charge_type) "
                    "VALUES (%s, %s, %s, %s)",
                    (contract_id, item["sku"], made.quantity, made.charge_type),
                )
            owner = facts.known_order(cursor, order_id)
            if owner is not None:
                owner.contracts.append(contract_id)
            checks.invoices_naming(cursor, event, entry.invoices)
        elif kind == "ContractAmended":
            entry = facts.contract(cursor, contract_id)
            for change in data["changes"]:
                held = entry.items.get(change["sku"])
                if change.get("quantity") is not None and held is not None:
                    held.quantity = Decimal(str(change["quantity"]))
                    cursor.execute(
                        "UPDATE {recon_contract_items} SET quantity = %s "
                        "WHERE contract_id = %s AND sku = %s",
                        (held.quantity, contract_id, change["sku"]),
                    )
        elif kind in self._CONTRACT_STATUS:
            entry = facts.contract(cursor, contract_id)
            if entry.exists:
                entry.status = self._CONTRACT_STATUS[kind]
                if kind == "ContractActivated":
                    entry.activated_at = when
                cursor.execute(
                    "UPDATE {recon_contracts} SET status = %s, activated_at = %s, "
                    "changed_at = %s WHERE contract_id = %s",
                    (entry.status, entry.activated_at, when, contract_id),
                )
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
            entry = facts.issued(cursor, invoice_id)
            entry.customer_id, entry.currency = data["customer_id"], data["currency"]
            entry.order_id, entry.contract_id = (
                _uuid(data.get("order_id")),
                _uuid(data.get("contract_id")),
            )
            entry.total = _amount(data["total"])
            cursor.execute(
                "INSERT INTO {recon_invoices} (invoice_id, customer_id, order_id, contract_id, "
                "currency, total, credited, paid, void, issue_date, changed_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, 0, 0, false, %s, %s)",
                (
                    invoice_id,
                    entry.customer_id,
                    entry.order_id,
                    entry.contract_id,
                    entry.currency,
                    entry.total,
                    date.fromisoformat(data["issue_date"]),
                    when,
                ),
            )
            if entry.order_id is not None:
                named = facts.known_order(cursor, entry.order_id)
                if named is not None:
                    named.invoices.append(invoice_id)
            if entry.contract_id is not None:
                billed = facts.known_contract(cursor, entry.contract_id)
                if billed is not None:
                    billed.invoices.append(invoice_id)
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
        cursor.execute(
            "UPDATE {recon_invoices} SET customer_id = %s, credited = %s, paid = %s, "
            "void = %s, erp_document_number = %s, erp_total = %s, paid_at = %s, "
            "changed_at = %s WHERE invoice_id = %s",
            (
                entry.customer_id,
                entry.credited,
                entry.paid,
                entry.void,
                entry.erp_document_number,
                entry.erp_total,
                entry.paid_at,
                when,
                invoice_id,
            ),
        )
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
            entry = facts.received(cursor, payment_id)
            amount = _amount(data["amount"])
            received = datetime.fromisoformat(data["received_at"])
            entry.customer_id, entry.currency = data["customer_id"], data["amount"]["currency"]
            entry.unapplied, entry.status = amount, "received"
            cursor.execute(
                "INSERT INTO {recon_payments} (payment_id, customer_id, currency, amount, "
                "unapplied, status, received_at, changed_at) "
                "VALUES (%s, %s, %s, %s, %s, 'received', %s, %s)",
                (
                    payment_id,
                    entry.customer_id,
                    entry.currency,
                    amount,
                    amount,
                    received,
                    when,
                ),
            )
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
        cursor.execute(
            "UPDATE {recon_payments} SET customer_id = %s, unapplied = %s, status = %s, "
            "changed_at = %s WHERE payment_id = %s",
            (entry.customer_id, entry.unapplied, entry.status, when, payment_id),
        )
        cursor.execute(self._MOVE, (payment_id, event["version"], when, entry.unapplied))
        checks.payment(cursor, event, payment_id)

    _MOVE: ClassVar[str] = (
        "INSERT INTO {recon_payment_moves} (payment_id, version, at, unapplied) "
        "VALUES (%s, %s, %s, %s)"
    )
