"""What the reconciliation projection remembers of its own rows (``ViewCursor.memo``).

Why: every check compares stored facts, and reading them back cost a round trip per read
(about a thousand events a second). The runner is the only writer of these tables, so
what this projection wrote and committed stays true: each object's facts, its breaks and
who names it are kept here, one memo entry per object, updated beside every write and read
from the tables only on a miss.

Why a miss may be "nothing there" without a read: the first event after the memo was
emptied asks once whether the tables are empty (a rebuild's start). If they are, the memo
has seen every row written since, so an object it does not hold has no row, no break and
nobody naming it (``complete``). Otherwise (a restart over built tables) a miss reads the
object's row, items and the ids naming it in one query, and each break row on first need;
what was read is kept, absence included.

Why an object's entry holds who names it ("contracts of order X", "invoices naming order or
contract X"): when an order or contract arrives, the objects naming it are checked again;
those links are set once (at a contract's creation, an invoice's issue) and never move, so
an entry loaded with the full list stays exact by adding each later creation to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from projections.definition import ViewCursor
from projections.reconciliation import writes
from projections.reconciliation.breaks import Breaks

COMPLETE = "reconciliation:complete"
"""Memo key: True when the memo has seen every row of this generation (it began empty)."""

_EMPTY = (
    "SELECT NOT EXISTS (SELECT FROM {recon_orders}) "
    "AND NOT EXISTS (SELECT FROM {recon_order_items}) "
    "AND NOT EXISTS (SELECT FROM {recon_contracts}) "
    "AND NOT EXISTS (SELECT FROM {recon_contract_items}) "
    "AND NOT EXISTS (SELECT FROM {recon_invoices}) "
    "AND NOT EXISTS (SELECT FROM {recon_payments}) "
    "AND NOT EXISTS (SELECT FROM {recon_breaks})"
)


def complete(cursor: ViewCursor) -> bool:
    """Whether a memo miss means "no such row" (asked once per emptied memo)."""
    known: bool | None = cursor.memo.get(COMPLETE)
    if known is None:
        row = writes.read(cursor, _EMPTY)
        known = cursor.memo[COMPLETE] = bool(row and row[0])
    return known


@dataclass(slots=True)
class Order:
    """An order's row (``exists``), its items, the contracts and invoices naming it."""

    exists: bool
    breaks: Breaks
    customer_id: str = ""
    currency: str = ""
    opportunity: Decimal | None = None
    total: Decimal = Decimal(0)
    status: str = ""
    items: dict[str, Decimal] = field(default_factory=dict)
    contracts: tuple[str, ...] = ()
    invoices: tuple[str, ...] = ()


Item = tuple[Decimal, str | None]
"""A contract item: its quantity and charge type (recurring, usage; None if unsaid),
replaced when an amendment changes it. A plain tuple, as the links (``contracts``,
``invoices``, extended by a new tuple): the garbage collector leaves a plain tuple of such
values (and a dict holding only such) out of its passes, and each object the memo holds
is one more for every full pass."""


@dataclass(slots=True)
class Contract:
    exists: bool
    breaks: Breaks
    order_id: str = ""
    customer_id: str = ""
    status: str = ""
    activated_at: datetime | None = None
    items: dict[str, Item] = field(default_factory=dict)
    invoices: tuple[str, ...] = ()


@dataclass(slots=True)
class Invoice:
    exists: bool
    breaks: Breaks
    customer_id: str = ""
    order_id: str | None = None
    contract_id: str | None = None
    currency: str = ""
    total: Decimal = Decimal(0)
    credited: Decimal = Decimal(0)
    paid: Decimal = Decimal(0)
    void: bool = False
    erp_document_number: str | None = None
    erp_total: Decimal | None = None
    paid_at: datetime | None = None


@dataclass(slots=True)
class Payment:
    exists: bool
    breaks: Breaks
    customer_id: str = ""
    currency: str = ""
    unapplied: Decimal = Decimal(0)
    status: str = ""


# -- orders ----------------------------------------------------------------------------

_ORDER = (
    "SELECT o.order_id IS NOT NULL, o.customer_id::text, o.currency, o.opportunity_amount, "
    "o.total, o.status, "
    "(SELECT array_agg(sku ORDER BY sku) FROM {recon_order_items} WHERE order_id = %s), "
    "(SELECT array_agg(quantity ORDER BY sku) FROM {recon_order_items} WHERE order_id = %s), "
    "(SELECT array_agg(contract_id::text) FROM {recon_contracts} WHERE order_id = %s), "
    "(SELECT array_agg(invoice_id::text) FROM {recon_invoices} WHERE order_id = %s) "
    "FROM (SELECT) AS one LEFT JOIN {recon_orders} o ON o.order_id = %s"
)


def order(cursor: ViewCursor, order_id: str) -> Order:
    """The order's entry, read from the tables on a miss (unless the memo is complete)."""
    key = ("order", order_id)
    entry: Order | None = cursor.memo.get(key)
    if entry is None:
        if complete(cursor):
            entry = Order(False, Breaks(True))
        else:
            row = writes.read(cursor, _ORDER, (order_id,) * 5)
            assert row is not None  # one row, joined or not
            exists = bool(row[0])
            entry = Order(exists, Breaks(not exists))
            if exists:
                entry.customer_id, entry.currency = row[1], row[2]
                entry.opportunity, entry.total, entry.status = row[3], row[4], row[5]
            entry.items = dict(zip(row[6] or [], row[7] or [], strict=True))
            entry.contracts = tuple(row[8] or ())
            entry.invoices = tuple(row[9] or ())
        cursor.memo[key] = entry
    return entry


def known_order(cursor: ViewCursor, order_id: str) -> Order | None:
    """The order's entry if the memo holds (or, complete, implies) it; None: unknown, the
    tables will tell on the first need (so a new link need not be added here)."""
    entry: Order | None = cursor.memo.get(("order", order_id))
    if entry is None and complete(cursor):
        entry = order(cursor, order_id)
    return entry


# -- contracts -------------------------------------------------------------------------

_CONTRACT = (
    "SELECT c.contract_id IS NOT NULL, c.order_id::text, c.customer_id::text, c.status, "
    "c.activated_at, "
    "(SELECT array_agg(sku ORDER BY sku) FROM {recon_contract_items} WHERE contract_id = %s), "
    "(SELECT array_agg(quantity ORDER BY sku) FROM {recon_contract_items} "
    "WHERE contract_id = %s), "
    "(SELECT array_agg(charge_type ORDER BY sku) FROM {recon_contract_items} "
    "WHERE contract_id = %s), "
    "(SELECT array_agg(invoice_id::text) FROM {recon_invoices} WHERE contract_id = %s) "
    "FROM (SELECT) AS one LEFT JOIN {recon_contracts} c ON c.contract_id = %s"
)


def contract(cursor: ViewCursor, contract_id: str) -> Contract:
    key = ("contract", contract_id)
    entry: Contract | None = cursor.memo.get(key)
    if entry is None:
        if complete(cursor):
            entry = Contract(False, Breaks(True))
        else:
            row = writes.read(cursor, _CONTRACT, (contract_id,) * 5)
            assert row is not None
            exists = bool(row[0])
            entry = Contract(exists, Breaks(not exists))
            if exists:
                entry.order_id, entry.customer_id = row[1], row[2]
                entry.status, entry.activated_at = row[3], row[4]
            entry.items = {
                sku: (quantity, charge)
                for sku, quantity, charge in zip(
                    row[5] or [], row[6] or [], row[7] or [], strict=True
                )
            }
            entry.invoices = tuple(row[8] or ())
        cursor.memo[key] = entry
    return entry


def known_contract(cursor: ViewCursor, contract_id: str) -> Contract | None:
    entry: Contract | None = cursor.memo.get(("contract", contract_id))
    if entry is None and complete(cursor):
        entry = contract(cursor, contract_id)
    return entry


# -- invoices --------------------------------------------------------------------------

_INVOICE = (
    "SELECT customer_id::text, order_id::text, contract_id::text, currency, total, credited, "
    "paid, void, erp_document_number, erp_total, paid_at FROM {recon_invoices} "
    "WHERE invoice_id = %s"
)


def invoice(cursor: ViewCursor, invoice_id: str) -> Invoice:
    key = ("invoice", invoice_id)
    entry: Invoice | None = cursor.memo.get(key)
    if entry is None:
        row = None if complete(cursor) else writes.read(cursor, _INVOICE, (invoice_id,))
        entry = Invoice(row is not None, Breaks(row is None))
        if row is not None:
            entry.customer_id, entry.order_id, entry.contract_id = row[0], row[1], row[2]
            entry.currency, entry.total, entry.credited, entry.paid = row[3:7]
            entry.void, entry.erp_document_number, entry.erp_total = row[7], row[8], row[9]
            entry.paid_at = row[10]
        cursor.memo[key] = entry
    return entry


def issued(cursor: ViewCursor, invoice_id: str) -> Invoice:
    """A new invoice's entry: no row, so no break (were there one, its insert fails the
    batch, and a failed batch empties the memo)."""
    entry = cursor.memo[("invoice", invoice_id)] = Invoice(True, Breaks(True))
    return entry


# -- payments --------------------------------------------------------------------------

_PAYMENT = (
    "SELECT customer_id::text, currency, unapplied, status FROM {recon_payments} "
    "WHERE payment_id = %s"
)


def payment(cursor: ViewCursor, payment_id: str) -> Payment:
    key = ("payment", payment_id)
    entry: Payment | None = cursor.memo.get(key)
    if entry is None:
        row = None if complete(cursor) else writes.read(cursor, _PAYMENT, (payment_id,))
        entry = Payment(row is not None, Breaks(row is None))
        if row is not None:
            entry.customer_id, entry.currency, entry.unapplied, entry.status = row
        cursor.memo[key] = entry
    return entry


def received(cursor: ViewCursor, payment_id: str) -> Payment:
    """A new payment's entry (see :func:`issued`)."""
    entry = cursor.memo[("payment", payment_id)] = Payment(True, Breaks(True))
    return entry
