"""The break checks: each reads the stored facts of one object and settles its breaks.

Why checks read facts rather than events: the two sides of a comparison come from
different stores, applied each in its own order. Running the check after a change on
either side, against what is stored for the other, makes the open breaks a function of the
facts alone: every interleaving ends with the same open set. (The history may differ
between interleavings, e.g. an invoice applied before its order opens INVOICE_WITHOUT_ORDER
and the order closes it again; a rebuild replays one fixed order, so it is identical.)
"""

from __future__ import annotations

from decimal import Decimal

from projections.definition import Envelope, ViewCursor
from projections.reconciliation.breaks import Finding, settle


def _money(value: Decimal) -> str:
    return format(value, "f")


def order(cursor: ViewCursor, event: Envelope, order_id: str) -> None:
    """OPP_AMOUNT_MISMATCH: the CRM opportunity's Amount is not the order's line total."""
    row = cursor.fetchone(
        "SELECT customer_id, currency, opportunity_amount, total FROM {recon_orders} "
        "WHERE order_id = %s",
        (order_id,),
    )
    found = None
    if row is not None and row[2] is not None and row[2] != row[3]:
        found = Finding(
            str(row[0]),
            row[1],
            row[2],
            "crm (opportunity Amount)",
            row[3],
            "hub (order lines total)",
            f"the opportunity's Amount is {_money(row[2])} {row[1]}, the order's lines total "
            f"{_money(row[3])} {row[1]}",
        )
    settle(cursor, event, "OPP_AMOUNT_MISMATCH", "order", order_id, found)


_DIFFERENCES = (
    "SELECT string_agg(format('%%s: order %%s, contract %%s', sku, coalesce(oq::text, 'none'), "
    "coalesce(cq::text, 'none')), '; ' ORDER BY sku), sum(coalesce(oq, 0)), "
    "sum(coalesce(cq, 0)) FROM (SELECT coalesce(o.sku, c.sku) AS sku, o.quantity AS oq, "
    "c.quantity AS cq FROM (SELECT sku, quantity FROM {recon_order_items} WHERE order_id = %s) o "
    "FULL JOIN (SELECT sku, quantity FROM {recon_contract_items} WHERE contract_id = %s) c "
    "ON o.sku = c.sku WHERE o.quantity IS DISTINCT FROM c.quantity) d"
)


def contract(cursor: ViewCursor, event: Envelope, contract_id: str) -> None:
    """ORDER_CONTRACT_MISMATCH: the order's recurring/usage quantities per SKU are not the
    contract's items (a cancelled contract bills nothing more, so it has no break)."""
    row = cursor.fetchone(
        "SELECT c.order_id, c.customer_id, c.status, o.order_id IS NOT NULL "
        "FROM {recon_contracts} c LEFT JOIN {recon_orders} o USING (order_id) "
        "WHERE c.contract_id = %s",
        (contract_id,),
    )
    found = None
    if row is not None and row[2] != "cancelled" and row[3]:
        detail, ordered, held = cursor.fetchone(_DIFFERENCES, (row[0], contract_id)) or (None,) * 3
        if detail is not None:
            found = Finding(
                str(row[1]), None, ordered, "hub (order lines)", held, "billing (contract)", detail
            )
    settle(cursor, event, "ORDER_CONTRACT_MISMATCH", "contract", contract_id, found)


def contracts_of(cursor: ViewCursor, event: Envelope, order_id: str) -> None:
    """Re-check every contract of an order that changed (few: one per order, usually)."""
    row = cursor.fetchone(
        "SELECT array_agg(contract_id::text ORDER BY contract_id) FROM {recon_contracts} "
        "WHERE order_id = %s",
        (order_id,),
    )
    for contract_id in row[0] if row and row[0] else []:
        contract(cursor, event, contract_id)


def invoices_naming(cursor: ViewCursor, event: Envelope, column: str, object_id: str) -> None:
    """Re-check the invoices that name an order or contract that just arrived."""
    row = cursor.fetchone(
        f"SELECT array_agg(invoice_id::text ORDER BY invoice_id) FROM {{recon_invoices}} "
        f"WHERE {column} = %s",
        (object_id,),
    )
    for invoice_id in row[0] if row and row[0] else []:
        invoice(cursor, event, invoice_id)


def invoice(cursor: ViewCursor, event: Envelope, invoice_id: str) -> None:
    """INVOICE_MISMATCH, PAYMENT_OVERAPPLIED and INVOICE_WITHOUT_ORDER of one invoice.

    The hub refuses an invoice naming neither an order nor a contract, so "no order behind
    it" means: the order it names was rejected or cancelled (and it names no contract), or
    neither the order nor the contract it names has reached this view (an interleaving: it
    closes when they arrive)."""
    row = cursor.fetchone(
        "SELECT i.customer_id, i.currency, i.total, i.credited, i.paid, i.void, "
        "i.erp_document_number, i.erp_total, i.order_id, i.contract_id, "
        "EXISTS (SELECT 1 FROM {recon_orders} o WHERE o.order_id = i.order_id "
        "AND o.status = 'open') "
        "OR EXISTS (SELECT 1 FROM {recon_contracts} c WHERE c.contract_id = i.contract_id) "
        ", (SELECT o.status FROM {recon_orders} o WHERE o.order_id = i.order_id) "
        "FROM {recon_invoices} i WHERE i.invoice_id = %s",
        (invoice_id,),
    )
    if row is None:
        return
    customer, currency, total, credited, paid, void, erp_number, erp_total = row[:8]
    customer = str(customer)
    mismatch = None
    billing_total = Decimal(0) if void else total
    if erp_number is not None and erp_total != billing_total:
        said = "voided the invoice" if void else f"totals {_money(total)} {currency}"
        mismatch = Finding(
            customer,
            currency,
            erp_total,
            f"erp (posted document {erp_number})",
            billing_total,
            "billing (invoice void)" if void else "billing (invoice total)",
            f"the ERP posted {erp_number} for {_money(erp_total)} {currency}, billing {said}",
        )
    settle(cursor, event, "INVOICE_MISMATCH", "invoice", invoice_id, mismatch)
    billed = total - credited
    over = None
    if not void and paid > billed:
        over = Finding(
            customer,
            currency,
            billed,
            "billing (total less credit notes)",
            paid,
            "payments applied",
            f"payments hold {_money(paid)} {currency} of an invoice that bills "
            f"{_money(billed)} {currency}",
        )
    settle(cursor, event, "PAYMENT_OVERAPPLIED", "invoice", invoice_id, over)
    orphan = None
    if not void and not row[10]:
        named = "names an order/contract this view has not seen (yet)"
        if row[11] in ("rejected", "cancelled"):
            named = f"bills an order that was {row[11]}"
        orphan = Finding(
            customer,
            currency,
            None,
            "hub (order/contract)",
            total,
            "billing (invoice total)",
            f"the invoice {named}",
        )
    settle(cursor, event, "INVOICE_WITHOUT_ORDER", "invoice", invoice_id, orphan)


def payment(cursor: ViewCursor, event: Envelope, payment_id: str) -> None:
    """PAYMENT_UNAPPLIED: cash received that no invoice holds (now; per month end, see
    the recon_unapplied_cash view)."""
    row = cursor.fetchone(
        "SELECT customer_id, currency, unapplied FROM {recon_payments} WHERE payment_id = %s",
        (payment_id,),
    )
    found = None
    if row is not None and row[2] > 0:
        found = Finding(
            str(row[0]),
            row[1],
            Decimal(0),
            "invoices (applied)",
            row[2],
            "payments (unapplied)",
            f"{_money(row[2])} {row[1]} received that no invoice holds",
        )
    settle(cursor, event, "PAYMENT_UNAPPLIED", "payment", payment_id, found)
