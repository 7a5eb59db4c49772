"""A Chargebee subscription reconciled into a canonical contract.

Why reconcile rather than map each event type to one command: Chargebee sends the whole
subscription with every event, and events of one subscription arrive in any order and
sometimes not at all (a superseded one is skipped). Comparing the subscription with the
contract and emitting only the commands that close the gap (activate, renew, amend,
suspend, resume, cancel) makes the newest event enough on its own, and a re-delivery or an
older event a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.chargebee.money import cents, in_decimal
from adapters.chargebee.schemas import Subscription, SubscriptionItem
from adapters.inbound.convert import business_date, from_epoch_seconds
from adapters.inbound.model import Step, Translation
from adapters.inbound.source import Malformed

#: Chargebee statuses in which billing runs the subscription (the contract is active).
RUNNING = frozenset({"in_trial", "active", "non_renewing"})
#: (billing_period, billing_period_unit) → the contract's billing period.
PERIODS = {
    (1, "month"): "month",
    (3, "month"): "quarter",
    (12, "month"): "year",
    (1, "year"): "year",
}


def _day(value: int, field: str) -> date:
    return business_date(from_epoch_seconds(value, field=field))


def subscribed(sub: Subscription) -> list[SubscriptionItem]:
    """Plans and addons: one-time ``charge`` items are invoiced, not subscribed."""
    return [item for item in sub.subscription_items if item.item_type != "charge"]


def contract_items(
    sub: Subscription, currency: str, where: str, skus: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Plans and addons as contract items; ``skus`` is the catalogue's SKU of each item
    price (the adapter resolved them, holding the event while one is unmapped)."""
    items = []
    for index, item in enumerate(sub.subscription_items):
        if item.item_type == "charge":
            continue
        at = f"{where}.subscription_items.{index}"
        items.append(
            {
                "sku": skus[item.item_price_id],
                "rate_plan": item.item_price_id,
                "quantity": _quantity(item, at),
                "unit_price": _unit_price(item, currency, at),
                "billing_period": _period(item, sub, at),
                "charge_type": "recurring",
            }
        )
    if not items:
        raise Malformed(
            f"subscription {sub.id} has no plan or addon item to subscribe",
            f"{where}.subscription_items",
        )
    return items


def _quantity(item: SubscriptionItem, at: str) -> str:
    if item.quantity_in_decimal:
        value = in_decimal(item.quantity_in_decimal, field=f"{at}.quantity_in_decimal")
    else:
        value = Decimal(item.quantity if item.quantity is not None else 1)
    return format(value.normalize(), "f")


def _unit_price(item: SubscriptionItem, currency: str, at: str) -> str:
    if item.unit_price_in_decimal:
        value = in_decimal(item.unit_price_in_decimal, field=f"{at}.unit_price_in_decimal")
        return format(value.normalize(), "f")
    return cents(item.unit_price or 0, currency, field=f"{at}.unit_price")


def _period(item: SubscriptionItem, sub: Subscription, at: str) -> str:
    count = item.billing_period or sub.billing_period or 1
    unit = item.billing_period_unit or sub.billing_period_unit or "month"
    period = PERIODS.get((count, unit))
    if period is None:
        raise Malformed(
            f"a billing period of {count} {unit} cannot be a Concord contract item "
            "(monthly, quarterly or yearly)",
            f"{at}.billing_period_unit",
        )
    return period


def _term(sub: Subscription, where: str) -> tuple[date, date]:
    start = sub.current_term_start or sub.start_date or sub.started_at
    end = sub.current_term_end or sub.cancelled_at
    if start is None:
        raise Malformed("the subscription has no term start", f"{where}.current_term_start")
    if end is None:
        raise Malformed("the subscription has no term end", f"{where}.current_term_end")
    return _day(start, f"{where}.current_term_start"), _day(end, f"{where}.current_term_end")


def reconcile(
    sub: Subscription,
    currency: str,
    day: date,
    contract_id: UUID,
    state: dict[str, Any] | None,
    where: str,
    skus: Mapping[str, str],
    *,
    create: dict[str, str] | None = None,
) -> Translation:
    """The steps that bring contract ``contract_id`` (``state``; None with ``create``: it is
    created here) to what ``sub`` says. ``day`` is the business date of the change."""
    items = contract_items(sub, currency, where, skus)
    term_start, term_end = _term(sub, where)
    steps: list[Step] = []
    if state is None:
        assert create is not None
        data = create | {
            "items": items,
            "currency": currency,
            "term_start": term_start.isoformat(),
            "term_end": term_end.isoformat(),
        }
        steps.append(Step("contract", "create", data, source_record_id=sub.id))
        state = {"status": "pending", "term_end": term_end.isoformat(), "items": items}

    def step(command: str, data: dict[str, Any]) -> None:
        steps.append(Step("contract", command, data, target=contract_id))

    status = str(state.get("status"))
    if status == "cancelled":
        if sub.status != "cancelled":
            return Translation.ignore(
                f"subscription {sub.id} is {sub.status} again, but its contract is cancelled: "
                "Concord contracts are not reactivated (a new order starts a new contract)"
            )
        return Translation.ignore(f"the contract of subscription {sub.id} is cancelled already")
    if status == "pending" and sub.status != "future":
        step("activate", {"billing_subscription_id": sub.id})
        status = "active"
    if status in ("active", "suspended") and term_end > date.fromisoformat(str(state["term_end"])):
        step("renew", {"new_term_end": term_end.isoformat()})
    changes = _changes(state.get("items") or [], items)
    if changes:
        step("amend", {"changes": changes, "effective_date": day.isoformat()})
    if sub.status == "paused" and status == "active":
        when = _day(sub.pause_date, f"{where}.pause_date") if sub.pause_date else day
        step("suspend", {"effective_date": when.isoformat()})
    elif sub.status in RUNNING and status == "suspended":
        step("resume", {"effective_date": day.isoformat()})
    elif sub.status == "cancelled":
        when = _day(sub.cancelled_at, f"{where}.cancelled_at") if sub.cancelled_at else day
        step("cancel", {"effective_date": when.isoformat(), "reason": sub.cancel_reason})
    if not steps:
        return Translation.ignore(
            f"the contract already matches subscription {sub.id} at resource_version "
            f"{sub.resource_version}"
        )
    return Translation(steps=tuple(steps))


def _changes(current: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quantity and price changes of items the contract has (items added or removed in
    Chargebee have no canonical command: the amendment names existing SKUs only)."""
    held = {str(item["sku"]): item for item in current}
    changes = []
    for item in wanted:
        before = held.get(item["sku"])
        if before is None:
            continue
        change: dict[str, Any] = {"sku": item["sku"]}
        for name in ("quantity", "unit_price"):
            if Decimal(str(before[name])) != Decimal(item[name]):
                change[name] = item[name]
        if len(change) > 1:
            changes.append(change)
    return changes
