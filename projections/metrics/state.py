"""What the metrics projection remembers of its own rows (``ViewCursor.memo``).

Why: every cross-store link of the metrics facts (the smallest contract of an order, the
invoices that bill a contract, an invoice's lines for the credit notes that follow, a
payment's currency and receipt day) used to be read back, or joined in SQL, at each event:
a round trip per event (the runner must flush its pipeline to read), and for the
activation schedule a statement whose cost grew with the tables. The projection is the
only writer of its tables, so what it wrote is what it may remember: each entry below is
read from the tables on a miss (one statement, negative results kept too), then kept true
by the handlers, which update it with every write they make.

Why "complete": a memo that began while every metrics table was empty (a rebuild's shadow,
a first build) has seen every row since, so a miss there means "no such row" without
asking. The runner empties the memo whenever it may stop being true (failed batch, new
session, size bound); the flag goes with it, and the next event asks the tables again.

Every id here is the canonical text of a uuid; amounts are integers of minor units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from projections.definition import ViewCursor

_TABLES = (
    "metrics_orders",
    "metrics_bookings",
    "metrics_contracts",
    "metrics_invoices",
    "metrics_billings",
    "metrics_revenue",
    "metrics_revenue_entries",
    "metrics_payments",
    "metrics_cash",
)
_EMPTY = "SELECT " + " AND ".join(f"NOT EXISTS (SELECT FROM {{{t}}})" for t in _TABLES)
_COMPLETE = ("metrics", "complete")

_ORDER = (
    "SELECT o.customer_id::text, o.currency, o.booked, o.booked_acv, "
    "(SELECT c.contract_id::text FROM {metrics_contracts} c WHERE c.order_id = %s "
    "ORDER BY c.contract_id LIMIT 1), "
    "ARRAY(SELECT i.invoice_id::text FROM {metrics_invoices} i WHERE i.order_id = %s "
    "AND NOT i.contract_named) "
    "FROM (VALUES (1)) AS one (x) LEFT JOIN {metrics_orders} o ON o.order_id = %s"
)
_CONTRACT = (
    "SELECT c.order_id::text, c.customer_id::text, c.activated_on, "
    "ARRAY(SELECT i.invoice_id::text FROM {metrics_invoices} i WHERE i.contract_id = %s) "
    "FROM (VALUES (1)) AS one (x) LEFT JOIN {metrics_contracts} c ON c.contract_id = %s"
)
_INVOICE = (
    "SELECT i.order_id::text, i.contract_id::text, i.contract_named, i.lines, "
    "(SELECT coalesce(jsonb_agg(jsonb_build_array(e.entry, e.amount, e.not_before)), "
    "'[]'::jsonb) FROM {metrics_revenue_entries} e WHERE e.invoice_id = i.invoice_id "
    "AND e.rule = 'activation' AND e.amount <> 0), "
    "(SELECT coalesce(jsonb_agg(jsonb_build_array(r.entry, r.month)), '[]'::jsonb) "
    "FROM {metrics_revenue} r JOIN {metrics_revenue_entries} e USING (invoice_id, entry) "
    "WHERE r.invoice_id = i.invoice_id AND e.rule = 'activation') "
    "FROM {metrics_invoices} i WHERE i.invoice_id = %s"
)
_PAYMENT = "SELECT currency, amount, received_on FROM {metrics_payments} WHERE payment_id = %s"


def canonical(value: Any) -> str:
    """A uuid named in an event's data as the text the tables give back (memo keys must
    match whichever way the id was spelt: the tables compare uuids, not strings)."""
    return str(UUID(str(value)))


def before(one: str, other: str) -> bool:
    """``one`` sorts before ``other`` as PostgreSQL orders uuids (bytewise)."""
    return UUID(one).int < UUID(other).int


@dataclass(slots=True)
class OrderHeader:
    """The metrics_orders row of an order, as written."""

    customer_id: str
    currency: str
    booked: int
    booked_acv: int


@dataclass(slots=True)
class OrderLinks:
    """What one order id links, whichever store arrived first: its header (None until
    OrderPlaced), the smallest contract created from it (the contract of the order row and
    of its invoices that name none) and those invoices."""

    header: OrderHeader | None = None
    contract: str | None = None
    unnamed: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ContractHeader:
    """The metrics_contracts row of a contract, as written."""

    order_id: str
    customer_id: str
    activated_on: date | None


@dataclass(slots=True)
class ContractLinks:
    """A contract id's header (None until ContractCreated) and the invoices whose
    metrics_invoices.contract_id it is (an invoice may name a contract not yet created)."""

    header: ContractHeader | None = None
    invoices: set[str] = field(default_factory=set)


@dataclass(slots=True)
class InvoiceState:
    """What the events after an invoice's issue need of it: its links, its lines (for the
    credit notes) and its activation entries with the schedule rows written for them."""

    order_id: str | None
    contract_id: str | None
    contract_named: bool
    lines: list[dict[str, Any]]
    activation: list[tuple[str, int, date | None]]
    """(entry, amount, not_before) of its entries recognised on activation (amount not 0)."""
    scheduled: set[tuple[str, date]]
    """(entry, month) of the metrics_revenue rows written for those entries."""


@dataclass(slots=True, frozen=True)
class PaymentState:
    currency: str
    amount: int
    received_on: date


def complete(cursor: ViewCursor) -> bool:
    """Whether the memo holds every row of the tables (it began with all of them empty)."""
    known: bool | None = cursor.memo.get(_COMPLETE)
    if known is None:
        row = cursor.fetchone(_EMPTY)
        known = cursor.memo[_COMPLETE] = bool(row and row[0])
    return known


def order_links(cursor: ViewCursor, order_id: str) -> OrderLinks:
    key = ("metrics.order", order_id)
    links: OrderLinks | None = cursor.memo.get(key)
    if links is None:
        links = OrderLinks()
        if not complete(cursor):
            row = cursor.fetchone(_ORDER, (order_id, order_id, order_id))
            assert row is not None  # one row, whether the order exists or not
            customer, currency, booked, booked_acv, contract, unnamed = row
            if customer is not None:
                links.header = OrderHeader(customer, currency, int(booked), int(booked_acv))
            links.contract, links.unnamed = contract, set(unnamed)
        cursor.memo[key] = links
    return links


def contract_links(cursor: ViewCursor, contract_id: str) -> ContractLinks:
    key = ("metrics.contract", contract_id)
    links: ContractLinks | None = cursor.memo.get(key)
    if links is None:
        links = ContractLinks()
        if not complete(cursor):
            row = cursor.fetchone(_CONTRACT, (contract_id, contract_id))
            assert row is not None
            order_id, customer, activated_on, invoices = row
            if order_id is not None:
                links.header = ContractHeader(order_id, customer, activated_on)
            links.invoices = set(invoices)
        cursor.memo[key] = links
    return links


def known_contract_links(cursor: ViewCursor, contract_id: str) -> ContractLinks | None:
    """The entry if the memo has it (a write that changes it must then update it; if the
    memo has none, the next miss reads the tables, which hold the write)."""
    links: ContractLinks | None = cursor.memo.get(("metrics.contract", contract_id))
    return links


def invoice(cursor: ViewCursor, invoice_id: str) -> InvoiceState | None:
    key = ("metrics.invoice", invoice_id)
    if key in cursor.memo:
        state: InvoiceState | None = cursor.memo[key]
        return state
    if complete(cursor):
        return None
    row = cursor.fetchone(_INVOICE, (invoice_id,))
    state = None
    if row is not None:
        order_id, contract_id, named, lines, activation, scheduled = row
        state = InvoiceState(
            order_id,
            contract_id,
            bool(named),
            lines,
            [(e, int(a), _day(n)) for e, a, n in activation],
            {(e, date.fromisoformat(m)) for e, m in scheduled},
        )
    cursor.memo[key] = state
    return state


def remember_invoice(cursor: ViewCursor, invoice_id: str, state: InvoiceState) -> None:
    cursor.memo[("metrics.invoice", invoice_id)] = state


def payment(cursor: ViewCursor, payment_id: str) -> PaymentState | None:
    key = ("metrics.payment", payment_id)
    if key in cursor.memo:
        state: PaymentState | None = cursor.memo[key]
        return state
    if complete(cursor):
        return None
    row = cursor.fetchone(_PAYMENT, (payment_id,))
    state = None if row is None else PaymentState(row[0], int(row[1]), row[2])
    cursor.memo[key] = state
    return state


def remember_payment(cursor: ViewCursor, payment_id: str, state: PaymentState) -> None:
    cursor.memo[("metrics.payment", payment_id)] = state


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


#: The headers touched since the last :meth:`Metrics.write_held`, id -> whether the row is
#: new since then (an insert) or already written (an update); their state is the memo's.
_HELD_ORDERS = ("metrics", "held orders")
_HELD_CONTRACTS = ("metrics", "held contracts")


def hold_order(cursor: ViewCursor, order_id: str, new: bool = False) -> None:
    """Mark the order's header to be written once, in its final state, at the run's end."""
    held: dict[str, bool] = cursor.memo.setdefault(_HELD_ORDERS, {})
    held[order_id] = new or held.get(order_id, False)


def hold_contract(cursor: ViewCursor, contract_id: str, new: bool = False) -> None:
    held: dict[str, bool] = cursor.memo.setdefault(_HELD_CONTRACTS, {})
    held[contract_id] = new or held.get(contract_id, False)


def take_held(cursor: ViewCursor) -> tuple[dict[str, bool], dict[str, bool]]:
    """The held orders and contracts (emptied: they are being written)."""
    orders: dict[str, bool] = cursor.memo.pop(_HELD_ORDERS, None) or {}
    contracts: dict[str, bool] = cursor.memo.pop(_HELD_CONTRACTS, None) or {}
    return orders, contracts
