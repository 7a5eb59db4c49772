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

from datetime import date
from decimal import Decimal
from typing import Any

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

_UPSERT = (
    "INSERT INTO {{crm_opportunities}} (order_id, {columns}) VALUES (%s, {marks}) "
    "ON CONFLICT (order_id) DO UPDATE SET {sets}"
)


def _money(value: dict[str, Any] | None) -> Decimal | None:
    return None if value is None else Decimal(str(value["amount"]))


def upsert(cursor: ViewCursor, order: str, values: dict[str, Any]) -> None:
    """Write ``values`` on the order's row, creating it if a contract came first."""
    statement = _UPSERT.format(
        columns=", ".join(values),
        marks=", ".join(["%s"] * len(values)),
        sets=", ".join(f"{column} = EXCLUDED.{column}" for column in values),
    )
    cursor.execute(statement, (order, *values.values()))


def apply_order(event: Envelope, cursor: ViewCursor) -> None:
    data = event["data"]
    kind = event["type"]
    order = event["aggregate_id"]
    if kind == "OrderPlaced":
        upsert(
            cursor,
            order,
            {
                "opportunity_id": data.get("opportunity_id"),
                "customer_id": data["customer_id"],
                "order_status": "placed",
                "currency": data["currency"],
                "opportunity_amount": _money(data.get("opportunity_amount")),
                "order_total": _money(data["totals"]["total"]),
                "close_date": date.fromisoformat(data["close_date"])
                if data.get("close_date")
                else None,
                "ordered_at": business_time(event),
            },
        )
    elif kind == "OrderAcceptedByErp":
        cursor.execute(
            "UPDATE {crm_opportunities} SET order_status = 'accepted', erp_order_number = %s, "
            "accepted_by_erp_at = LEAST(accepted_by_erp_at, %s) WHERE order_id = %s",
            (data["erp_order_number"], business_time(event), order),
        )
    elif kind == "OrderAmended":
        status = ", order_status = 'placed'" if data.get("reopened") else ""
        cursor.execute(
            f"UPDATE {{crm_opportunities}} SET order_total = %s{status} WHERE order_id = %s",
            (_money(data["totals"]["total"]), order),
        )
    elif kind in _STATUS:
        cursor.execute(
            "UPDATE {crm_opportunities} SET order_status = %s WHERE order_id = %s",
            (_STATUS[kind], order),
        )


def apply_contract(event: Envelope, cursor: ViewCursor) -> None:
    """A contract's creation and activation. Why the memo: an activation needs its
    contract's order, which its creation wrote; reading it back was a round trip per
    activation, so the memo keeps it (the row is read only on a miss)."""
    data = event["data"]
    contract = event["aggregate_id"]
    if event["type"] == "ContractCreated":
        cursor.execute(
            "INSERT INTO {crm_contract_orders} (contract_id, order_id) VALUES (%s, %s)",
            (contract, data["order_id"]),
        )
        cursor.memo[("crm", "contract", contract)] = data["order_id"]
    elif event["type"] == "ContractActivated":
        order = cursor.memo.get(("crm", "contract", contract))
        if order is None:
            found = cursor.fetchone(
                "SELECT order_id FROM {crm_contract_orders} WHERE contract_id = %s", (contract,)
            )
            if found is None:
                raise LookupError(f"contract {contract} activated before its creation")
            order = cursor.memo[("crm", "contract", contract)] = found[0]
        at = business_time(event)
        # The subscription id follows the earliest activation: set it only when this one wins.
        cursor.execute(
            "INSERT INTO {crm_opportunities} (order_id, activated_at, billing_subscription_id) "
            "VALUES (%s, %s, %s) ON CONFLICT (order_id) DO UPDATE SET "
            "billing_subscription_id = CASE WHEN {crm_opportunities}.activated_at IS NULL "
            "OR EXCLUDED.activated_at < {crm_opportunities}.activated_at "
            "THEN EXCLUDED.billing_subscription_id "
            "ELSE {crm_opportunities}.billing_subscription_id END, "
            "activated_at = LEAST({crm_opportunities}.activated_at, EXCLUDED.activated_at)",
            (order, at, data["billing_subscription_id"]),
        )
