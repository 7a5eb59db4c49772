"""``crm_opportunities``: each order with its CRM opportunity and its milestones' times.

Keyed by order (not opportunity): an opportunity may be won as several orders, and an order
placed without one is still listed (``opportunity_id`` NULL), so BI filters rather than
loses rows. Milestones come from two stores, each applied in its own order: the orders
store (placed, accepted by the ERP) and the contracts store (activated in billing). A row is
therefore upserted from whichever side arrives first and each milestone keeps the earliest
time reported, so every interleaving of the stores converges to the same row.

Times are the source's business time: the event's ``occurred_at`` (from its provenance)
when the source gave one, else when Concord recorded it (``recorded_at``); a view never
reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from projections.definition import Column, Envelope, Table, ViewCursor
from projections.erp.orders import STATUS_OF_EVENT as _STATUS
from projections.rows import business_time

OPPORTUNITIES = Table(
    name="crm_opportunities",
    comment=(
        "Concord CRM view: one row per canonical order with its CRM opportunity, amounts, "
        "status and milestone times (ordered, accepted by ERP, activated in billing). "
        "Built by the crm projection."
    ),
    primary_key=("order_id",),
    columns=(
        Column("order_id", "uuid", "Canonical order id (Concord).", not_null=True),
        Column("opportunity_id", "text", "CRM opportunity the order was won from; may be NULL."),
        Column(
            "customer_id",
            "uuid",
            "Canonical id of the ordering customer; NULL while only a contract of the order "
            "was applied.",
        ),
        Column(
            "order_status",
            "text",
            "placed, validated, rejected, accepted, fulfilled or cancelled; NULL until the "
            "order's placement was applied.",
        ),
        Column("currency", "text", "ISO 4217 currency of the amounts."),
        Column("opportunity_amount", "numeric", "CRM opportunity amount, exact; may be NULL."),
        Column("order_total", "numeric", "Total of the order's current lines, exact."),
        Column("close_date", "date", "CRM opportunity close date; may be NULL."),
        Column(
            "ordered_at",
            "timestamptz",
            "Order placed (OrderPlaced): occurred_at, else recorded_at.",
        ),
        Column(
            "accepted_by_erp_at",
            "timestamptz",
            "First acceptance by the ERP (OrderAcceptedByErp): occurred_at, else recorded_at.",
        ),
        Column("erp_order_number", "text", "The ERP's sales order number; NULL until accepted."),
        Column(
            "activated_at",
            "timestamptz",
            "Earliest activation in billing of a contract of this order (ContractActivated): "
            "occurred_at, else recorded_at.",
        ),
        Column(
            "billing_subscription_id",
            "text",
            "Billing's subscription id of the earliest activated contract of this order.",
        ),
    ),
)

CONTRACTS = Table(
    name="crm_contract_orders",
    comment="Concord CRM view: which order each contract was created from (for milestones).",
    primary_key=("contract_id",),
    columns=(
        Column("contract_id", "uuid", "Canonical contract id (Concord).", not_null=True),
        Column("order_id", "uuid", "The order the contract was created from.", not_null=True),
    ),
)

#: An order placed since the last write, in its state at the write. Its row may be there
#: already (a contract's activation came first): the placement's columns are then set, the
#: acceptance keeps the earliest time, and the ERP number the last one (NULL: none since).
_PLACE = (
    "INSERT INTO {crm_opportunities} (order_id, opportunity_id, customer_id, currency, "
    "opportunity_amount, close_date, ordered_at, order_status, order_total, "
    "erp_order_number, accepted_by_erp_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (order_id) DO UPDATE SET opportunity_id = EXCLUDED.opportunity_id, "
    "customer_id = EXCLUDED.customer_id, currency = EXCLUDED.currency, "
    "opportunity_amount = EXCLUDED.opportunity_amount, close_date = EXCLUDED.close_date, "
    "ordered_at = EXCLUDED.ordered_at, order_status = EXCLUDED.order_status, "
    "order_total = EXCLUDED.order_total, "
    "erp_order_number = coalesce(EXCLUDED.erp_order_number, "
    "{crm_opportunities}.erp_order_number), "
    "accepted_by_erp_at = LEAST({crm_opportunities}.accepted_by_erp_at, "
    "EXCLUDED.accepted_by_erp_at)"
)
#: An order placed before the last write: what its events since changed (NULL, or false
#: for the total: unchanged; the acceptance keeps the earliest time). No row: no change.
_CHANGE = (
    "UPDATE {crm_opportunities} SET order_status = coalesce(%s, order_status), "
    "order_total = CASE WHEN %s THEN %s ELSE order_total END, "
    "erp_order_number = coalesce(%s, erp_order_number), "
    "accepted_by_erp_at = LEAST(accepted_by_erp_at, %s) WHERE order_id = %s"
)
#: The earliest activation since the last write of each order whose row is there (the memo
#: knows), all in one statement: the subscription id follows the earliest activation, so
#: it is set only where this one is earlier than the row's. Why arrays, not a run of
#: one-row updates: a rebuild activates about one contract per order, mostly in a later
#: run than the order's placement, and each update was a statement the server ran alone.
_ACTIVATE = (
    "UPDATE {crm_opportunities} o SET billing_subscription_id = CASE WHEN o.activated_at IS "
    "NULL OR a.at < o.activated_at THEN a.subscription ELSE o.billing_subscription_id END, "
    "activated_at = LEAST(o.activated_at, a.at) FROM unnest(%s::uuid[], %s::timestamptz[], "
    "%s::text[]) AS a(order_id, at, subscription) WHERE o.order_id = a.order_id"
)
#: A placement or activation of an order with no row yet (the memo knows): plain inserts,
#: folded.
_PLACE_NEW = (
    "INSERT INTO {crm_opportunities} (order_id, opportunity_id, customer_id, currency, "
    "opportunity_amount, close_date, ordered_at, order_status, order_total, "
    "erp_order_number, accepted_by_erp_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_ACTIVATE_NEW = (
    "INSERT INTO {crm_opportunities} (order_id, activated_at, billing_subscription_id) "
    "VALUES (%s, %s, %s)"
)
_ROWS = "SELECT array_agg(order_id::text) FROM {crm_opportunities}"
_CONTRACT = "INSERT INTO {crm_contract_orders} (contract_id, order_id) VALUES (%s, %s)"
#: Memo keys of what is held for :func:`write_orders` and :func:`write_contracts`.
_HELD_ORDERS = ("crm", "orders.held")
_ORDER_EVENTS = frozenset({"OrderPlaced", "OrderAcceptedByErp", "OrderAmended"})
_HELD_CONTRACTS = ("crm", "contracts.held")
#: The orders that have a row in ``crm_opportunities`` (written or held).
_ROWS_KEY = ("crm", "opportunities")


@dataclass
class _Order:
    """What an order's events since the last write leave to write: the placement's
    columns when placed since (else None), the status, the total (``total_set``: changed),
    the last ERP number and the earliest acceptance (None: none since)."""

    placed: tuple[Any, ...] | None = None
    new: bool = False
    """Placed with no row before: its row is inserted, no upsert needed."""
    status: str | None = None
    total_set: bool = False
    total: Decimal | None = None
    number: str | None = None
    accepted: datetime | None = None

    def change(self, order: str) -> tuple[Any, ...]:
        return (self.status, self.total_set, self.total, self.number, self.accepted, order)


@dataclass
class _Contracts:
    """The contracts created since the last write (in order) and, per order, its earliest
    activation since (time, subscription id: the first of equal times wins, as the row's
    own time wins over an equal one)."""

    created: list[tuple[str, str]] = field(default_factory=list)
    activated: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    new: set[str] = field(default_factory=set)
    """The orders of ``activated`` that had no row: inserted, no upsert needed."""


def _rows(cursor: ViewCursor) -> set[str]:
    """The orders with a row (canonical text), the table's keys read on a memo miss. Why:
    a row is created by whichever of the placement and the activation comes first, and
    knowing it is not there yet lets that one be a plain insert (folded with the others)
    instead of an upsert sent row by row."""
    known: set[str] | None = cursor.memo.get(_ROWS_KEY)
    if known is None:
        row = cursor.fetchone(_ROWS)
        known = cursor.memo[_ROWS_KEY] = set() if row is None or row[0] is None else set(row[0])
    return known


def _canonical(order: str) -> str:
    return str(UUID(str(order)))


def _money(value: dict[str, Any] | None) -> Decimal | None:
    return None if value is None else Decimal(str(value["amount"]))


def apply_order(event: Envelope, cursor: ViewCursor) -> None:
    """An order's event, held for :func:`write_orders`. Why hold: an order's events
    (placed, accepted, amended, fulfilled) mostly follow one another in a run, and each was
    a statement of its own; held, each order is written once per run. What each event did
    to the row composes: the placement sets its columns (and status and total), a later
    status or total replaces the earlier, the ERP number is the last and the acceptance
    time the earliest (LEAST ignores NULL, as the row's own time)."""
    data = event["data"]
    kind = event["type"]
    order = event["aggregate_id"]
    if kind not in _ORDER_EVENTS and kind not in _STATUS:
        return
    held: dict[str, _Order] = cursor.memo.setdefault(_HELD_ORDERS, {})
    entry = held.get(order)
    if kind == "OrderPlaced":
        if entry is not None and entry.placed is None:
            # Events before its placement changed the row as it was (or no row): write
            # them first, exactly as they came.
            cursor.execute(_CHANGE, entry.change(order))
            entry = None
        if entry is None:
            entry = held[order] = _Order()
            rows = _rows(cursor)
            key = _canonical(order)
            entry.new = key not in rows
            rows.add(key)
        entry.placed = (
            order,
            data.get("opportunity_id"),
            data["customer_id"],
            data["currency"],
            _money(data.get("opportunity_amount")),
            date.fromisoformat(data["close_date"]) if data.get("close_date") else None,
            business_time(event),
        )
        entry.status, entry.total_set, entry.total = "placed", True, _money(data["totals"]["total"])
        return
    if entry is None:
        entry = held[order] = _Order()
    if kind == "OrderAcceptedByErp":
        at = business_time(event)
        entry.status, entry.number = "accepted", data["erp_order_number"]
        entry.accepted = at if entry.accepted is None else min(entry.accepted, at)
    elif kind == "OrderAmended":
        entry.total_set, entry.total = True, _money(data["totals"]["total"])
        if data.get("reopened"):
            entry.status = "placed"
    else:
        entry.status = _STATUS[kind]


def write_orders(cursor: ViewCursor) -> None:
    """Each order touched since the last call, written once: the older ones as one run of
    one update text, then the placed ones: those with a row already as one run of one
    upsert text, the others as one run of plain inserts."""
    held: dict[str, _Order] | None = cursor.memo.pop(_HELD_ORDERS, None)
    if not held:
        return
    for order, entry in held.items():
        if entry.placed is None:
            cursor.execute(_CHANGE, entry.change(order))
    for new in (False, True):
        for entry in held.values():
            if entry.placed is not None and entry.new is new:
                cursor.execute(
                    _PLACE_NEW if new else _PLACE,
                    (*entry.placed, entry.status, entry.total, entry.number, entry.accepted),
                )


def apply_contract(event: Envelope, cursor: ViewCursor) -> None:
    """A contract's creation and activation, held for :func:`write_contracts`. Why the
    memo: an activation needs its contract's order, which its creation wrote; reading it
    back was a round trip per activation, so the memo keeps it (the row is read only on a
    miss)."""
    data = event["data"]
    contract = event["aggregate_id"]
    if event["type"] == "ContractCreated":
        held: _Contracts = cursor.memo.setdefault(_HELD_CONTRACTS, _Contracts())
        held.created.append((contract, data["order_id"]))
        cursor.memo[("crm", "contract", contract)] = data["order_id"]
    elif event["type"] == "ContractActivated":
        order = cursor.memo.get(("crm", "contract", contract))
        if order is None:
            found = cursor.fetchone(
                "SELECT order_id FROM {crm_contract_orders} WHERE contract_id = %s", (contract,)
            )
            if found is None:
                raise LookupError(f"contract {contract} activated before its creation")
            order = cursor.memo[("crm", "contract", contract)] = str(found[0])
        held = cursor.memo.setdefault(_HELD_CONTRACTS, _Contracts())
        at = business_time(event)
        order = _canonical(order)
        earliest = held.activated.get(order)
        if earliest is None:
            rows = _rows(cursor)
            if order not in rows:
                held.new.add(order)
                rows.add(order)
        if earliest is None or at < earliest[0]:
            held.activated[order] = (at, data["billing_subscription_id"])


def write_contracts(cursor: ViewCursor) -> None:
    """The earliest activation per order since the last call (those on an existing row as
    one update, the others as plain inserts), then the contracts created since (plain
    inserts, beside those)."""
    held: _Contracts | None = cursor.memo.pop(_HELD_CONTRACTS, None)
    if held is None:
        return
    older = [(o, a) for o, a in held.activated.items() if o not in held.new]
    if older:
        cursor.execute(
            _ACTIVATE,
            ([o for o, _ in older], [a[0] for _, a in older], [a[1] for _, a in older]),
        )
    for order, (at, subscription) in held.activated.items():
        if order in held.new:
            cursor.execute(_ACTIVATE_NEW, (order, at, subscription))
    for row in held.created:
        cursor.execute(_CONTRACT, row)
