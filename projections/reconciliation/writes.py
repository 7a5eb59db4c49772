"""The rows touched since the last write, held in the memo and written once per run.

Why hold: a store's events come aggregate after aggregate (an invoice is issued, posted,
paid; a payment is received, applied), and written one by one each event was a statement
of its own, several rows of different tables that no run of equal statements could fold.
Held, each touched row is written once per run of a store's events, in its final state
(:meth:`Reconciliation.write_held`): a row created since as one plain single-row insert
of one constant text per table (the runner folds them into multi-row inserts), an older
one as one update of one constant text per table (a run of them is one ``executemany``).

Why this is exact: every write of these rows set its final values from the memo (the facts
in ``facts.py``, the break rows in ``breaks.py``), so the last write of a row is the row;
holding it writes only that last one. What a row's events change is remembered here as
what the tables hold (whether the row exists, the item quantities as written), so the
writes at the end are the difference. The history rows (break openings and closings,
payment moves) are inserts that keep every row: they are not held here, each goes to the
runner as it happens, in order.

Why a read first writes what is held (:func:`read`): a memo miss reads the tables (a
restart over built tables; a rebuild never reads), and a row created in this run but
still held would be missing from what it reads. A failed batch empties the memo, held
rows included, and its replay writes what each event held right after it, so a failing
write is still reported at its own event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from projections.definition import ViewCursor

if TYPE_CHECKING:
    from projections.reconciliation.breaks import Break

HELD = "reconciliation:held"
"""Memo key of the :class:`Held` rows (popped by each write)."""


@dataclass(slots=True)
class Row:
    """A fact row touched since the last write: its memo entry (the final values), when
    the last event that wrote it happened (None: only its items were written), the
    insert-only columns when it was created since (``new``), and its items as the tables
    hold them (orders: SKU -> quantity; contracts: SKU -> quantity's text; None: not
    touched)."""

    entry: Any
    changed_at: datetime | None = None
    new: tuple[Any, ...] | None = None
    items: dict[str, Any] | None = None


@dataclass(slots=True)
class HeldBreak:
    """A break row touched since the last write: as stored (the memo's row) and, when it
    was opened for the first time since, its key's columns (code, object kind and id)."""

    row: Break
    new: tuple[str, str, str] | None


@dataclass(slots=True)
class Held:
    orders: dict[str, Row] = field(default_factory=dict)
    contracts: dict[str, Row] = field(default_factory=dict)
    invoices: dict[str, Row] = field(default_factory=dict)
    payments: dict[str, Row] = field(default_factory=dict)
    breaks: dict[str, HeldBreak] = field(default_factory=dict)


def held(cursor: ViewCursor) -> Held:
    """What is held (asked afresh at each write: a read in between writes it out)."""
    found: Held | None = cursor.memo.get(HELD)
    if found is None:
        found = cursor.memo[HELD] = Held()
    return found


def touched(rows: dict[str, Row], key: str, entry: Any) -> Row:
    """The held row of ``key`` (held from now on if it was not)."""
    found = rows.get(key)
    if found is None:
        found = rows[key] = Row(entry)
    return found


# -- statements: one constant text per table and kind of write ------------------------

ORDER_INSERT = (
    "INSERT INTO {recon_orders} (order_id, customer_id, currency, opportunity_amount, "
    "total, status, placed_at, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
ORDER_UPDATE = (
    "UPDATE {recon_orders} SET total = %s, status = %s, changed_at = %s WHERE order_id = %s"
)
ORDER_ITEM_INSERT = "INSERT INTO {recon_order_items} (order_id, sku, quantity) VALUES (%s, %s, %s)"
ORDER_ITEM_UPDATE = "UPDATE {recon_order_items} SET quantity = %s WHERE order_id = %s AND sku = %s"
ORDER_ITEM_DELETE = "DELETE FROM {recon_order_items} WHERE order_id = %s AND sku = %s"
CONTRACT_INSERT = (
    "INSERT INTO {recon_contracts} (contract_id, order_id, customer_id, status, "
    "activated_at, changed_at) VALUES (%s, %s, %s, %s, %s, %s)"
)
CONTRACT_UPDATE = (
    "UPDATE {recon_contracts} SET status = %s, activated_at = %s, changed_at = %s "
    "WHERE contract_id = %s"
)
CONTRACT_ITEM_INSERT = (
    "INSERT INTO {recon_contract_items} (contract_id, sku, quantity, charge_type) "
    "VALUES (%s, %s, %s, %s)"
)
CONTRACT_ITEM_UPDATE = (
    "UPDATE {recon_contract_items} SET quantity = %s WHERE contract_id = %s AND sku = %s"
)
INVOICE_INSERT = (
    "INSERT INTO {recon_invoices} (invoice_id, customer_id, order_id, contract_id, "
    "currency, total, credited, paid, void, erp_document_number, erp_total, issue_date, "
    "paid_at, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
INVOICE_UPDATE = (
    "UPDATE {recon_invoices} SET customer_id = %s, credited = %s, paid = %s, void = %s, "
    "erp_document_number = %s, erp_total = %s, paid_at = %s, changed_at = %s "
    "WHERE invoice_id = %s"
)
PAYMENT_INSERT = (
    "INSERT INTO {recon_payments} (payment_id, customer_id, currency, amount, unapplied, "
    "status, received_at, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
PAYMENT_UPDATE = (
    "UPDATE {recon_payments} SET customer_id = %s, unapplied = %s, status = %s, "
    "changed_at = %s WHERE payment_id = %s"
)
BREAK_INSERT = (
    "INSERT INTO {recon_breaks} (break_key, code, object_kind, object_id, customer_id, "
    "currency, expected_amount, expected_by, actual_amount, actual_by, detail, opened_at, "
    "closed_at, lineage, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
    "%s, %s, %s)"
)
BREAK_UPDATE = (
    "UPDATE {recon_breaks} SET customer_id = %s, currency = %s, expected_amount = %s, "
    "expected_by = %s, actual_amount = %s, actual_by = %s, detail = %s, opened_at = %s, "
    "closed_at = %s, changed_at = %s WHERE break_key = %s"
)


# -- rows' values ----------------------------------------------------------------------


def order_row(
    order_id: str, entry: Any, placed_at: datetime, changed_at: datetime | None
) -> tuple[Any, ...]:
    return (
        order_id,
        entry.customer_id,
        entry.currency,
        entry.opportunity,
        entry.total,
        entry.status,
        placed_at,
        changed_at,
    )


def contract_row(contract_id: str, entry: Any, changed_at: datetime | None) -> tuple[Any, ...]:
    return (
        contract_id,
        entry.order_id,
        entry.customer_id,
        entry.status,
        entry.activated_at,
        changed_at,
    )


def invoice_row(
    invoice_id: str, entry: Any, issue_date: date, changed_at: datetime | None
) -> tuple[Any, ...]:
    return (
        invoice_id,
        entry.customer_id,
        entry.order_id,
        entry.contract_id,
        entry.currency,
        entry.total,
        entry.credited,
        entry.paid,
        entry.void,
        entry.erp_document_number,
        entry.erp_total,
        issue_date,
        entry.paid_at,
        changed_at,
    )


def payment_row(
    payment_id: str, entry: Any, amount: Decimal, received_at: datetime, changed_at: datetime | None
) -> tuple[Any, ...]:
    return (
        payment_id,
        entry.customer_id,
        entry.currency,
        amount,
        entry.unapplied,
        entry.status,
        received_at,
        changed_at,
    )


def break_row(key: str, row: Break, new: tuple[str, str, str]) -> tuple[Any, ...]:
    code, kind, object_id = new
    return (key, code, kind, object_id, *_found(row), f"/v1/lineage/{object_id}", row.changed_at)


def break_update(key: str, row: Break) -> tuple[Any, ...]:
    return (*_found(row), row.changed_at, key)


def _found(row: Break) -> tuple[Any, ...]:
    """What a break row holds of its finding, in the column order both statements use."""
    f = row.found
    return (
        f.customer_id,
        f.currency,
        f.expected,
        f.expected_by,
        f.actual,
        f.actual_by,
        f.detail,
        row.opened_at,
        None if row.open else row.changed_at,
    )


# -- the write -------------------------------------------------------------------------


def write(cursor: ViewCursor) -> None:
    """Each held row once, in its final state. Updates and deletes first, one text after
    another (each a run), then every insert (runs of plain inserts into different tables
    are held side by side): no row is written twice, so the order of tables is free."""
    found: Held | None = cursor.memo.pop(HELD, None)
    if found is None:
        return
    orders, contracts = found.orders, found.contracts
    for order_id, r in orders.items():
        if r.new is None and r.changed_at is not None:
            e = r.entry
            cursor.execute(ORDER_UPDATE, (e.total, e.status, r.changed_at, order_id))
    for contract_id, r in contracts.items():
        if r.new is None and r.changed_at is not None:
            e = r.entry
            cursor.execute(CONTRACT_UPDATE, (e.status, e.activated_at, r.changed_at, contract_id))
    for invoice_id, r in found.invoices.items():
        if r.new is None:
            e = r.entry
            cursor.execute(
                INVOICE_UPDATE,
                (
                    e.customer_id,
                    e.credited,
                    e.paid,
                    e.void,
                    e.erp_document_number,
                    e.erp_total,
                    e.paid_at,
                    r.changed_at,
                    invoice_id,
                ),
            )
    for payment_id, r in found.payments.items():
        if r.new is None:
            e = r.entry
            cursor.execute(
                PAYMENT_UPDATE, (e.customer_id, e.unapplied, e.status, r.changed_at, payment_id)
            )
    for key, b in found.breaks.items():
        if b.new is None:
            cursor.execute(BREAK_UPDATE, break_update(key, b.row))
    inserts: list[tuple[str, str, Any]] = []
    for order_id, r in orders.items():
        if r.items is None:
            continue
        now: dict[str, Decimal] = r.entry.items
        for sku, quantity in r.items.items():
            if sku not in now:
                cursor.execute(ORDER_ITEM_DELETE, (order_id, sku))
            elif str(quantity) != str(now[sku]):
                cursor.execute(ORDER_ITEM_UPDATE, (now[sku], order_id, sku))
        inserts.extend(
            (order_id, sku, quantity) for sku, quantity in sorted(now.items()) if sku not in r.items
        )
    for contract_id, r in contracts.items():
        if r.new is None and r.items is not None:
            for sku, (quantity, _) in r.entry.items.items():
                written = r.items.get(sku)
                if written is not None and written != str(quantity):
                    cursor.execute(CONTRACT_ITEM_UPDATE, (quantity, contract_id, sku))
    for order_id, r in orders.items():
        if r.new is not None:
            cursor.execute(ORDER_INSERT, order_row(order_id, r.entry, r.new[0], r.changed_at))
    for row in inserts:
        cursor.execute(ORDER_ITEM_INSERT, row)
    for contract_id, r in contracts.items():
        if r.new is not None:
            e = r.entry
            cursor.execute(CONTRACT_INSERT, contract_row(contract_id, e, r.changed_at))
            for sku in r.new:
                cursor.execute(CONTRACT_ITEM_INSERT, (contract_id, sku, *e.items[sku]))
    for invoice_id, r in found.invoices.items():
        if r.new is not None:
            cursor.execute(INVOICE_INSERT, invoice_row(invoice_id, r.entry, r.new[0], r.changed_at))
    for payment_id, r in found.payments.items():
        if r.new is not None:
            cursor.execute(
                PAYMENT_INSERT, payment_row(payment_id, r.entry, r.new[0], r.new[1], r.changed_at)
            )
    for key, b in found.breaks.items():
        if b.new is not None:
            cursor.execute(BREAK_INSERT, break_row(key, b.row, b.new))


def read(cursor: ViewCursor, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    """A read of the tables (every read of this projection goes here): what is held is
    written first, so the read sees it."""
    write(cursor)
    return cursor.fetchone(statement, params)
