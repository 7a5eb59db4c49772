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
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from projections.definition import Envelope, Table, View, ViewCursor
from projections.reconciliation import checks
from projections.reconciliation.tables import BREAK_EVENTS, BREAKS, FACTS
from projections.reconciliation.views import VIEWS
from projections.rows import PerAggregate, business_time


def _amount(money: dict[str, Any]) -> Decimal:
    return Decimal(str(money["amount"]))


def _erp_total(data: dict[str, Any]) -> Decimal | None:
    """The ERP's total of a posting or revision; None: the posting said none (billing's)."""
    amounts = data.get("erp_amounts")
    return None if amounts is None else _amount(amounts["total"])


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
    version: ClassVar[int] = 2
    stores: ClassVar[tuple[str, ...]] = ("orders", "contracts", "invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = (*FACTS, BREAKS, BREAK_EVENTS)
    views: ClassVar[tuple[View, ...]] = VIEWS

    # -- orders -------------------------------------------------------------------------

    def _order(self, event: Envelope, cursor: ViewCursor) -> None:
        data, order_id, when = event["data"], event["aggregate_id"], business_time(event)
        if event["type"] == "OrderPlaced":
            opportunity = data.get("opportunity_amount")
            cursor.execute(
                "INSERT INTO {recon_orders} (order_id, customer_id, currency, "
                "opportunity_amount, total, status, placed_at, changed_at) "
                "VALUES (%s, %s, %s, %s, %s, 'open', %s, %s)",
                (
                    order_id,
                    data["customer_id"],
                    data["currency"],
                    None if opportunity is None else _amount(opportunity),
                    _amount(data["totals"]["total"]),
                    when,
                    when,
                ),
            )
            self._order_items(cursor, order_id, data["lines"])
            checks.invoices_naming(cursor, event, "order_id", order_id)
        elif event["type"] == "OrderAmended":
            cursor.execute(
                "UPDATE {recon_orders} SET total = %s, changed_at = %s WHERE order_id = %s",
                (_amount(data["totals"]["total"]), when, order_id),
            )
            cursor.execute("DELETE FROM {recon_order_items} WHERE order_id = %s", (order_id,))
            self._order_items(cursor, order_id, data["lines"])
        elif event["type"] in ("OrderRejected", "OrderCancelled"):
            status = "rejected" if event["type"] == "OrderRejected" else "cancelled"
            cursor.execute(
                "UPDATE {recon_orders} SET status = %s, changed_at = %s WHERE order_id = %s",
                (status, when, order_id),
            )
            checks.invoices_naming(cursor, event, "order_id", order_id)
            return
        else:
            return
        checks.order(cursor, event, order_id)
        checks.contracts_of(cursor, event, order_id)

    @staticmethod
    def _order_items(cursor: ViewCursor, order_id: str, lines: list[dict[str, Any]]) -> None:
        for sku, quantity in sorted(_quantities(lines).items()):
            cursor.execute(
                "INSERT INTO {recon_order_items} (order_id, sku, quantity) VALUES (%s, %s, %s)",
                (order_id, sku, quantity),
            )

    # -- contracts ----------------------------------------------------------------------

    _CONTRACT_STATUS: ClassVar[dict[str, str]] = {
        "ContractSuspended": "suspended",
        "ContractResumed": "active",
        "ContractCancelled": "cancelled",
    }

    def _contract(self, event: Envelope, cursor: ViewCursor) -> None:
        data, contract_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "ContractCreated":
            cursor.execute(
                "INSERT INTO {recon_contracts} (contract_id, order_id, customer_id, status, "
                "activated_at, changed_at) VALUES (%s, %s, %s, 'pending', NULL, %s)",
                (contract_id, data["order_id"], data["customer_id"], when),
            )
            for item in data["items"]:
                cursor.execute(
                    "INSERT INTO {recon_contract_items} (contract_id, sku, quantity) "
                    "VALUES (%s, %s, %s)",
                    (contract_id, item["sku"], Decimal(str(item["quantity"]))),
                )
            checks.invoices_naming(cursor, event, "contract_id", contract_id)
        elif kind == "ContractActivated":
            cursor.execute(
                "UPDATE {recon_contracts} SET status = 'active', activated_at = %s, "
                "changed_at = %s WHERE contract_id = %s",
                (when, when, contract_id),
            )
            return
        elif kind == "ContractAmended":
            for change in data["changes"]:
                if change.get("quantity") is not None:
                    cursor.execute(
                        "UPDATE {recon_contract_items} SET quantity = %s "
                        "WHERE contract_id = %s AND sku = %s",
                        (Decimal(str(change["quantity"])), contract_id, change["sku"]),
                    )
        elif kind in self._CONTRACT_STATUS:
            cursor.execute(
                "UPDATE {recon_contracts} SET status = %s, changed_at = %s WHERE contract_id = %s",
                (self._CONTRACT_STATUS[kind], when, contract_id),
            )
        else:
            return
        checks.contract(cursor, event, contract_id)

    # -- invoices -----------------------------------------------------------------------

    def _invoice(self, event: Envelope, cursor: ViewCursor) -> None:
        data, invoice_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "InvoiceIssued":
            cursor.execute(
                "INSERT INTO {recon_invoices} (invoice_id, customer_id, order_id, contract_id, "
                "currency, total, credited, paid, void, issue_date, changed_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, 0, 0, false, %s, %s)",
                (
                    invoice_id,
                    data["customer_id"],
                    data.get("order_id"),
                    data.get("contract_id"),
                    data["currency"],
                    _amount(data["total"]),
                    date.fromisoformat(data["issue_date"]),
                    when,
                ),
            )
        elif kind == "InvoicePosted":
            self._set(
                cursor,
                invoice_id,
                "erp_document_number = %s, erp_total = coalesce(%s, total)",
                [data["erp_document_number"], _erp_total(data)],
                when,
            )
        elif kind == "InvoiceErpRevised":
            self._set(cursor, invoice_id, "erp_total = %s", [_erp_total(data)], when)
        elif kind == "InvoiceVoided":
            self._set(cursor, invoice_id, "void = true", [], when)
        elif kind == "InvoiceCredited":
            credit = _amount(data["credit"]["amount"])
            self._set(cursor, invoice_id, "credited = credited + %s", [credit], when)
        elif kind in ("InvoicePaymentApplied", "InvoicePaymentUnapplied"):
            amount = _amount(data["amount"])
            delta = amount if kind == "InvoicePaymentApplied" else -amount
            self._set(cursor, invoice_id, "paid = paid + %s", [delta], when)
        elif kind == "InvoiceMovedToSurvivor":
            self._set(cursor, invoice_id, "customer_id = %s", [data["customer_id"]], when)
        else:
            return
        # Settled in full by payments: when it first became so (cleared if it reopens).
        cursor.execute(
            "UPDATE {recon_invoices} SET paid_at = CASE WHEN paid > 0 AND paid >= total - "
            "credited THEN coalesce(paid_at, %s) END WHERE invoice_id = %s",
            (when, invoice_id),
        )
        checks.invoice(cursor, event, invoice_id)

    @staticmethod
    def _set(
        cursor: ViewCursor, invoice_id: str, sets: str, params: list[Any], when: datetime
    ) -> None:
        cursor.execute_one(
            f"UPDATE {{recon_invoices}} SET {sets}, changed_at = %s WHERE invoice_id = %s",
            (*params, when, invoice_id),
            f"recon_invoices has no row for invoice {invoice_id}",
        )

    # -- payments -----------------------------------------------------------------------

    def _payment(self, event: Envelope, cursor: ViewCursor) -> None:
        data, payment_id, when = event["data"], event["aggregate_id"], business_time(event)
        kind = event["type"]
        if kind == "PaymentReceived":
            amount = _amount(data["amount"])
            received = datetime.fromisoformat(data["received_at"])
            cursor.execute(
                "INSERT INTO {recon_payments} (payment_id, customer_id, currency, amount, "
                "unapplied, status, received_at, changed_at) "
                "VALUES (%s, %s, %s, %s, %s, 'received', %s, %s)",
                (
                    payment_id,
                    data["customer_id"],
                    data["amount"]["currency"],
                    amount,
                    amount,
                    received,
                    when,
                ),
            )
            self._move(cursor, event, received, amount)
            checks.payment(cursor, event, payment_id)
            return
        row = cursor.fetchone(
            "SELECT unapplied FROM {recon_payments} WHERE payment_id = %s", (payment_id,)
        )
        if row is None:
            raise LookupError(f"recon_payments has no row for payment {payment_id}")
        unapplied: Decimal = row[0]
        status = None
        if kind == "PaymentApplied":
            unapplied -= _amount(data["amount"])
        elif kind == "PaymentRefunded":
            back = sum((_amount(u["amount"]) for u in data.get("unapplied", [])), Decimal(0))
            unapplied += back - _amount(data["amount"])
        elif kind in ("PaymentFailed", "PaymentReversed"):
            unapplied = Decimal(0)
            status = "failed" if kind == "PaymentFailed" else "reversed"
        elif kind == "PaymentMovedToSurvivor":
            cursor.execute(
                "UPDATE {recon_payments} SET customer_id = %s WHERE payment_id = %s",
                (data["customer_id"], payment_id),
            )
        else:
            return
        cursor.execute(
            "UPDATE {recon_payments} SET unapplied = %s, status = coalesce(%s, status), "
            "changed_at = %s WHERE payment_id = %s",
            (unapplied, status, when, payment_id),
        )
        self._move(cursor, event, when, unapplied)
        checks.payment(cursor, event, payment_id)

    @staticmethod
    def _move(cursor: ViewCursor, event: Envelope, when: datetime, unapplied: Decimal) -> None:
        cursor.execute(
            "INSERT INTO {recon_payment_moves} (payment_id, version, at, unapplied) "
            "VALUES (%s, %s, %s, %s)",
            (event["aggregate_id"], event["version"], when, unapplied),
        )
