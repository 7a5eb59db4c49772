"""The break checks: each reads the stored facts of one object and settles its breaks.

Why checks read facts rather than events: the two sides of a comparison come from
different stores, applied each in its own order. Running the check after a change on
either side, against what is stored for the other, makes the open breaks a function of the
facts alone: every interleaving ends with the same open set. (The history may differ
between interleavings, e.g. an invoice applied before its order opens INVOICE_WITHOUT_ORDER
and the order closes it again; a rebuild replays one fixed order, so it is identical.)

The facts are the remembered rows (:mod:`projections.reconciliation.facts`), and the
comparisons are computed here as the queries over the rows did: the same findings, texts
and amounts, numbers written as PostgreSQL writes ``numeric`` as text.
"""

from __future__ import annotations

from decimal import Decimal

from projections.definition import Envelope, ViewCursor
from projections.reconciliation import facts
from projections.reconciliation.breaks import Finding, settle


def _money(value: Decimal) -> str:
    """``numeric`` as text: every digit of its scale, no exponent, no negative zero."""
    return format(abs(value) if value == 0 else value, "f")


def order(cursor: ViewCursor, event: Envelope, order_id: str) -> None:
    """OPP_AMOUNT_MISMATCH: the CRM opportunity's Amount is not the order's line total."""
    entry = facts.order(cursor, order_id)
    found = None
    if entry.exists and entry.opportunity is not None and entry.opportunity != entry.total:
        currency = entry.currency
        found = Finding(
            entry.customer_id,
            currency,
            entry.opportunity,
            "crm (opportunity Amount)",
            entry.total,
            "hub (order lines total)",
            f"the opportunity's Amount is {_money(entry.opportunity)} {currency}, the order's "
            f"lines total {_money(entry.total)} {currency}",
        )
    settle(cursor, event, "OPP_AMOUNT_MISMATCH", "order", order_id, found, entry.breaks)


def _quantity(value: Decimal | None) -> str:
    return "none" if value is None else _money(value)


def _differences(ordered: dict[str, Decimal], held: dict[str, facts.Item]) -> Finding | None:
    """Per SKU (code point order), where the order's quantity is not the contract's; the
    customer is filled in by the caller. A usage item of quantity 0 is metered: billing
    counts the usage as it comes, so the item carries no quantity and agrees with whatever
    usage quantity the order committed for its SKU (a Stripe metered price has no quantity;
    the hub's own contracts carry the order's). A SKU on one side only still differs."""
    parts: list[str] = []
    ordered_sum = held_sum = Decimal(0)
    for sku in sorted(ordered.keys() | held.keys()):
        mine = ordered.get(sku)
        item = held.get(sku)
        theirs = None if item is None else item[0]
        metered = item is not None and item[1] == "usage" and theirs == 0
        if mine is not None and item is not None and (mine == theirs or metered):
            continue
        parts.append(f"{sku}: order {_quantity(mine)}, contract {_quantity(theirs)}")
        ordered_sum += Decimal(0) if mine is None else mine
        held_sum += Decimal(0) if theirs is None else theirs
    if not parts:
        return None
    detail = "; ".join(parts)
    return Finding(
        "", None, ordered_sum, "hub (order lines)", held_sum, "billing (contract)", detail
    )


def contract(cursor: ViewCursor, event: Envelope, contract_id: str) -> None:
    """ORDER_CONTRACT_MISMATCH: the order's recurring/usage quantities per SKU are not the
    contract's items (a cancelled contract bills nothing more, so it has no break; a
    metered usage item agrees with any ordered usage quantity, see :func:`_differences`)."""
    entry = facts.contract(cursor, contract_id)
    found = None
    if entry.exists and entry.status != "cancelled":
        owner = facts.order(cursor, entry.order_id)
        if owner.exists:
            differs = _differences(owner.items, entry.items)
            if differs is not None:
                found = Finding(
                    entry.customer_id,
                    None,
                    differs.expected,
                    differs.expected_by,
                    differs.actual,
                    differs.actual_by,
                    differs.detail,
                )
    settle(cursor, event, "ORDER_CONTRACT_MISMATCH", "contract", contract_id, found, entry.breaks)


def contracts_of(cursor: ViewCursor, event: Envelope, order_id: str) -> None:
    """Re-check every contract of an order that changed (few: one per order, usually)."""
    for contract_id in sorted(facts.order(cursor, order_id).contracts):
        contract(cursor, event, contract_id)


def invoices_naming(cursor: ViewCursor, event: Envelope, invoices: tuple[str, ...]) -> None:
    """Re-check the invoices that name an order or contract that just arrived."""
    for invoice_id in sorted(invoices):
        invoice(cursor, event, invoice_id)


def invoice(cursor: ViewCursor, event: Envelope, invoice_id: str) -> None:
    """INVOICE_MISMATCH, PAYMENT_OVERAPPLIED and INVOICE_WITHOUT_ORDER of one invoice.

    The hub refuses an invoice naming neither an order nor a contract, so "no order behind
    it" means: the order it names was rejected or cancelled (and it names no contract), or
    neither the order nor the contract it names has reached this view (an interleaving: it
    closes when they arrive)."""
    entry = facts.invoice(cursor, invoice_id)
    if not entry.exists:
        return
    customer, currency, total, void = entry.customer_id, entry.currency, entry.total, entry.void
    erp_number, erp_total = entry.erp_document_number, entry.erp_total
    mismatch = None
    billing_total = Decimal(0) if void else total
    if erp_number is not None and erp_total != billing_total:
        assert erp_total is not None  # set with the document number
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
    settle(cursor, event, "INVOICE_MISMATCH", "invoice", invoice_id, mismatch, entry.breaks)
    billed = total - entry.credited
    paid = entry.paid
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
    settle(cursor, event, "PAYMENT_OVERAPPLIED", "invoice", invoice_id, over, entry.breaks)
    orphan = None
    if not void:
        status = None
        if entry.order_id is not None:
            named = facts.order(cursor, entry.order_id)
            status = named.status if named.exists else None
        backed = status == "open" or (
            entry.contract_id is not None and facts.contract(cursor, entry.contract_id).exists
        )
        if not backed:
            said = "names an order/contract this view has not seen (yet)"
            if status in ("rejected", "cancelled"):
                said = f"bills an order that was {status}"
            orphan = Finding(
                customer,
                currency,
                None,
                "hub (order/contract)",
                total,
                "billing (invoice total)",
                f"the invoice {said}",
            )
    settle(cursor, event, "INVOICE_WITHOUT_ORDER", "invoice", invoice_id, orphan, entry.breaks)


def payment(cursor: ViewCursor, event: Envelope, payment_id: str) -> None:
    """PAYMENT_UNAPPLIED: cash received that no invoice holds (now; per month end, see
    the recon_unapplied_cash view)."""
    entry = facts.payment(cursor, payment_id)
    found = None
    if entry.exists and entry.unapplied > 0:
        unapplied, currency = entry.unapplied, entry.currency
        found = Finding(
            entry.customer_id,
            currency,
            Decimal(0),
            "invoices (applied)",
            unapplied,
            "payments (unapplied)",
            f"{_money(unapplied)} {currency} received that no invoice holds",
        )
    settle(cursor, event, "PAYMENT_UNAPPLIED", "payment", payment_id, found, entry.breaks)
