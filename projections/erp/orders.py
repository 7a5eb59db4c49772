"""``erp_sales_orders`` and ``erp_sales_order_lines``: every canonical order as the ERP
books it, one row per order and one row per line, with ``erp_items`` mapping SKUs to the
ERP's item ids.

Why the projection follows the ``products`` store too: a line names its product by SKU, and
the ERP posts it under its item id (the product's first ERP item id). Stores are applied
each in its own order, so an order may be applied before or after its products; the item id
is therefore written from both sides (a new line looks its SKU up in ``erp_items``, a
product gaining its first ERP item id fills the lines already there), and the view comes out
the same whichever arrives first, as a rebuild must.

Money is exact: totals, prices and amounts are PostgreSQL ``numeric`` built from the events'
decimal strings, never floats.

Why the projection remembers (``cursor.memo``) which orders have a row and each SKU's item
id, and holds an order's writes until the end of the run (``write_held``): an order's events
come one after the other (placed, accepted, amended, accepted again), and written one by one
they alternate inserts, updates and deletes, so no two neighbours share a statement and each
costs a statement of its own. Held, each order is written once in its final state, and the
orders of a batch go as a few runs of one statement text each (multi-row inserts). What this
projection wrote and committed stays true, so a remembered order is updated with a plain
write, and a line is a plain insert whose item id comes from the memo (read from
``erp_items`` on a miss).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from projections.definition import Column, Envelope, Position, Projection, Table, ViewCursor
from projections.rows import missing_row

ORDERS = Table(
    name="erp_sales_orders",
    comment=(
        "Concord ERP view: one row per canonical order (sales order) with its status, the "
        "ERP's order number and its total. Built by the erp_orders projection."
    ),
    primary_key=("order_id",),
    columns=(
        Column("order_id", "uuid", "Canonical order id (Concord).", not_null=True),
        Column("customer_id", "uuid", "Canonical id of the ordering customer.", not_null=True),
        Column("opportunity_id", "text", "CRM opportunity the order was placed from; may be NULL."),
        Column(
            "status",
            "text",
            "placed, validated, rejected, accepted, fulfilled or cancelled (an amendment "
            "after acceptance sets it back to placed).",
            not_null=True,
        ),
        Column("currency", "text", "ISO 4217 currency of every amount on the order.", True),
        Column(
            "erp_order_number",
            "text",
            "The ERP's sales order number; NULL until the ERP accepted the order (kept "
            "when an amendment reopens it).",
        ),
        Column("booking_date", "date", "Day the order was booked.", not_null=True),
        Column("start_date", "date", "First day of service.", not_null=True),
        Column("term_months", "integer", "Term of the order in months.", not_null=True),
        Column(
            "total",
            "numeric",
            "Total of the current lines in the order's currency, exact (computed by Concord).",
            not_null=True,
        ),
        Column("version", "bigint", "Version of the order aggregate (its last event).", True),
        Column("changed_at", "timestamptz", "When Concord recorded the order's last event.", True),
        Column(
            "position",
            "bigint",
            "Position of that event in the orders store's log (orders_events.notification_id).",
            not_null=True,
        ),
    ),
)

LINES = Table(
    name="erp_sales_order_lines",
    comment="Concord ERP view: the current lines of each order (replaced on each amendment).",
    primary_key=("order_id", "line_number"),
    columns=(
        Column("order_id", "uuid", "The order (erp_sales_orders.order_id).", not_null=True),
        Column("line_number", "integer", "Position of the line in the order, from 1.", True),
        Column("sku", "text", "The line's SKU.", not_null=True),
        Column(
            "erp_item_id",
            "text",
            "The ERP's item id of the SKU's product (its first one); NULL while the product "
            "is unknown or has no ERP item id.",
        ),
        Column("quantity", "numeric", "Quantity ordered, exact.", not_null=True),
        Column("unit_price", "numeric", "Price per unit in the order's currency, exact.", True),
        Column("charge_type", "text", "one_time, recurring or usage.", not_null=True),
        Column(
            "amount",
            "numeric",
            "quantity x unit_price rounded to the currency (half-even), exact.",
            not_null=True,
        ),
    ),
)

ITEMS = Table(
    name="erp_items",
    comment="Concord ERP view: each product's SKU and the ERP item id its order lines carry.",
    primary_key=("sku",),
    columns=(
        Column("sku", "text", "The product's SKU.", not_null=True),
        Column("product_id", "uuid", "Canonical product id (Concord).", not_null=True),
        Column("erp_item_id", "text", "The product's first ERP item id; NULL if none yet."),
    ),
)

_INSERT = (
    "INSERT INTO {erp_sales_orders} (order_id, customer_id, opportunity_id, currency, "
    "booking_date, start_date, term_months, status, erp_order_number, total, version, "
    "changed_at, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_INSERT_LINE = (
    "INSERT INTO {erp_sales_order_lines} (order_id, line_number, sku, erp_item_id, quantity, "
    "unit_price, charge_type, amount) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
#: Every later order event as one statement text (a NULL parameter keeps the column): no
#: event sets a status, number or total to NULL, and one text lets runs of them go as one
#: ``executemany``.
_UPDATE = (
    "UPDATE {erp_sales_orders} SET status = coalesce(%s, status), "
    "erp_order_number = coalesce(%s, erp_order_number), total = coalesce(%s, total), "
    "version = %s, changed_at = %s, position = %s WHERE order_id = %s"
)
#: Memo keys: an order whose row exists (``(_ORDER, order_id)``), the SKU -> item id map
#: read so far (``None``: no product or no item id yet), and the orders held for
#: :meth:`ErpOrders.write_held`.
_ORDER = "erp_orders.order"
_ITEMS = "erp_orders.items"
_HELD = "erp_orders.held"

#: One erp_sales_order_lines row, as _INSERT_LINE takes it.
Line = tuple[str, int, str, str | None, Decimal, Decimal, str, Decimal]


@dataclass
class _Held:
    """What an order's events since the last write change: for an order placed since, its
    whole row (``new``: the columns that never change); for an older one, the columns to
    set (``None``: kept as they are) and whether the memo proved its row exists."""

    new: tuple[Any, ...] | None = None
    checked: bool = False
    missing: str = ""
    status: str | None = None
    number: str | None = None
    total: Decimal | None = None
    version: int = 0
    changed_at: datetime | None = None
    position: int = 0
    lines: list[Line] | None = None
    """The order's lines (replacing the stored ones), or None when unchanged."""


#: Order events that only move the status, and the status they move it to.
STATUS_OF_EVENT = {
    "OrderValidated": "validated",
    "OrderRejected": "rejected",
    "OrderFulfilled": "fulfilled",
    "OrderCancelled": "cancelled",
}


def total(data: dict[str, Any]) -> Decimal:
    return Decimal(str(data["totals"]["total"]["amount"]))


class ErpOrders(Projection):
    name: ClassVar[str] = "erp_orders"
    title: ClassVar[str] = "ERP sales orders"
    version: ClassVar[int] = 2
    stores: ClassVar[tuple[str, ...]] = ("orders", "products")
    tables: ClassVar[tuple[Table, ...]] = (ORDERS, LINES, ITEMS)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["aggregate"] == "product":
            self._product(event, cursor)
        elif event["aggregate"] == "order":
            self._order(event, at, cursor)

    def _order(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        data = event["data"]
        kind = event["type"]
        order = event["aggregate_id"]
        held: dict[str, _Held] = cursor.memo.setdefault(_HELD, {})
        changed_at = datetime.fromisoformat(event["recorded_at"])
        if kind == "OrderPlaced":
            if order in held or (_ORDER, order) in cursor.memo:
                raise ValueError(f"erp_sales_orders already has order {order}: placed twice")
            held[order] = _Held(
                new=(
                    order,
                    data["customer_id"],
                    data.get("opportunity_id"),
                    data["currency"],
                    date.fromisoformat(data["booking_date"]),
                    date.fromisoformat(data["start_date"]),
                    data["term_months"],
                ),
                checked=True,
                status="placed",
                total=total(data),
                version=event["version"],
                changed_at=changed_at,
                position=at.position,
                lines=self._lines(cursor, order, data["lines"]),
            )
            return
        entry = held.get(order)
        if entry is None:
            entry = held[order] = _Held(checked=(_ORDER, order) in cursor.memo)
            if not entry.checked:
                entry.missing = str(missing_row("erp_sales_orders", "order_id", event))
        if kind in STATUS_OF_EVENT:
            entry.status = STATUS_OF_EVENT[kind]
        elif kind == "OrderAcceptedByErp":
            entry.status, entry.number = "accepted", data["erp_order_number"]
        elif kind == "OrderAmended":
            entry.total = total(data)
            if data.get("reopened"):
                entry.status = "placed"
            entry.lines = self._lines(cursor, order, data["lines"])
        entry.version, entry.changed_at, entry.position = event["version"], changed_at, at.position

    def write_held(self, cursor: ViewCursor) -> None:
        """Each order touched since the last call, written once in its final state: an order
        placed since as one insert (and its lines), an older one as one update (its lines
        replaced when amended). Updates first, then deletes, then inserts: each kind is one
        run of one statement text."""
        held: dict[str, _Held] | None = cursor.memo.pop(_HELD, None)
        if not held:
            return
        for order, entry in held.items():
            if entry.new is None:
                params = (
                    entry.status,
                    entry.number,
                    entry.total,
                    entry.version,
                    entry.changed_at,
                    entry.position,
                    order,
                )
                if entry.checked:
                    cursor.execute(_UPDATE, params)
                else:
                    cursor.execute_one(_UPDATE, params, entry.missing)
        for order, entry in held.items():
            if entry.new is None and entry.lines is not None:
                cursor.execute("DELETE FROM {erp_sales_order_lines} WHERE order_id = %s", (order,))
        for entry in held.values():
            if entry.new is not None:
                cursor.execute(
                    _INSERT,
                    (
                        *entry.new,
                        entry.status,
                        entry.number,
                        entry.total,
                        entry.version,
                        entry.changed_at,
                        entry.position,
                    ),
                )
        for order, entry in held.items():
            for line in entry.lines or ():
                cursor.execute(_INSERT_LINE, line)
            cursor.memo[(_ORDER, order)] = True

    @staticmethod
    def _lines(cursor: ViewCursor, order: str, lines: list[dict[str, Any]]) -> list[Line]:
        """The rows of ``lines``, each with its SKU's item id (from the memo, read on a miss;
        product events come in their own store's run, after this one's are written)."""
        items: dict[str, str | None] = cursor.memo.setdefault(_ITEMS, {})
        rows: list[Line] = []
        for number, line in enumerate(lines, start=1):
            sku = line["sku"]
            if sku not in items:
                row = cursor.fetchone("SELECT erp_item_id FROM {erp_items} WHERE sku = %s", (sku,))
                items[sku] = None if row is None else row[0]
            rows.append(
                (
                    order,
                    number,
                    sku,
                    items[sku],
                    Decimal(str(line["quantity"])),
                    Decimal(str(line["unit_price"])),
                    line["charge_type"],
                    Decimal(str(line["amount"])),
                )
            )
        return rows

    @staticmethod
    def _product(event: Envelope, cursor: ViewCursor) -> None:
        """Record the SKU's first ERP item id and give it to the lines already there."""
        data = event["data"]
        if event["type"] == "ProductDefined":
            first = next(iter(data["ids"]["erp_item_ids"]), None)
            cursor.execute(
                "INSERT INTO {erp_items} (sku, product_id, erp_item_id) VALUES (%s, %s, %s)",
                (data["sku"], event["aggregate_id"], first),
            )
            cursor.memo.setdefault(_ITEMS, {})[data["sku"]] = first
        elif event["type"] == "ProductMappingChanged" and data["added_ids"]["erp_item_ids"]:
            cursor.execute(
                "UPDATE {erp_items} SET erp_item_id = %s "
                "WHERE product_id = %s AND erp_item_id IS NULL",
                (data["added_ids"]["erp_item_ids"][0], event["aggregate_id"]),
            )
            # Which SKU it is, is in the row: read the map again when next needed (rare).
            cursor.memo.pop(_ITEMS, None)
        else:
            return
        cursor.execute(
            "UPDATE {erp_sales_order_lines} l SET erp_item_id = i.erp_item_id FROM {erp_items} i "
            "WHERE i.product_id = %s AND l.sku = i.sku AND l.erp_item_id IS DISTINCT FROM "
            "i.erp_item_id",
            (event["aggregate_id"],),
        )
