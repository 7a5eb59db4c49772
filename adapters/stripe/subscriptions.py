"""Stripe subscriptions, refunds and credit notes → contracts, payment refunds, credits.

A subscription is the contract billing runs for an order: Concord finds the order by the
subscription's ``metadata.sf_opportunity_id`` (the CRM's opportunity, which placed it) or
``metadata.netsuite_sales_order_id`` (the ERP's sales order). Its items become contract
items (SKU = the product catalogue's for the item's price id, ``billing_price_ids``; an
unmapped price holds the subscription event until it is mapped; price = rate plan,
``unit_amount`` at the currency's exponent, interval month / 3 months / year, metered
prices as usage items). Status changes follow Stripe's lifecycle; a cancellation at period
end (``cancel_at_period_end`` / ``cancel_at``) is a **scheduled** change: the contract
shows it in force from that date only.

A subscription Concord's Stripe connector created names its contract in
``metadata.concord_contract_id``: it is **linked** to that contract (activated with the
subscription id once billing runs it), never made a second contract. Collection paused
(``pause_collection``) suspends the contract; unpaused, it resumes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

from adapters.inbound.convert import (
    business_date,
    currency_code,
    from_epoch_seconds,
    from_minor_units,
)
from adapters.inbound.model import Known, Ref, Step, Translation
from adapters.inbound.products import sku_or_wait
from adapters.inbound.source import Malformed, parse_model
from adapters.stripe.schemas import (
    CreditNote,
    Price,
    Refund,
    StripeEvent,
    Subscription,
    SubscriptionItem,
)
from hub.domain.identity import external_id
from hub.domain.money import exponent

BILLING = "billing"
OBJECT = "body.data.object"
#: Stripe statuses in which the subscription runs (billing has set it up).
RUNNING = frozenset({"active", "trialing", "past_due", "unpaid"})
#: The subscription metadata key naming the Concord contract it was created for.
CONTRACT_KEY = "concord_contract_id"


def _day(value: int, field: str) -> str:
    return business_date(from_epoch_seconds(value, field=field)).isoformat()


def _order_ref(metadata: dict[str, str]) -> Ref | None:
    if metadata.get("netsuite_sales_order_id"):
        return Ref("erp", "order", metadata["netsuite_sales_order_id"])
    if metadata.get("sf_opportunity_id"):
        return Ref("crm", "order", metadata["sf_opportunity_id"])
    return None


def _period(price: Price, where: str) -> str:
    recurring = price.recurring
    if recurring is None:
        raise Malformed("a subscription item needs a recurring price", f"{where}.recurring")
    months = {"month": 1, "year": 12}.get(recurring.interval, 0) * recurring.interval_count
    period = {1: "month", 3: "quarter", 12: "year"}.get(months)
    if period is None:
        raise Malformed(
            f"Concord bills monthly, quarterly or yearly; this price recurs every "
            f"{recurring.interval_count} {recurring.interval}",
            f"{where}.recurring.interval",
        )
    return period


def _unit_price(price: Price, currency: str, where: str) -> str:
    if price.unit_amount is not None:
        return from_minor_units(price.unit_amount, currency, field=f"{where}.unit_amount")
    if price.unit_amount_decimal is not None:  # sub-minor-unit prices ("0.5" cents)
        value = Decimal(price.unit_amount_decimal).scaleb(-exponent(currency))
        return format(value.quantize(Decimal("0.000001")).normalize(), "f")
    raise Malformed("the price has no unit amount (tiered prices are not supported)", where)


def _item(
    item: SubscriptionItem, currency: str, where: str, known: Known
) -> dict[str, Any] | Translation:
    """A contract item; its SKU is the catalogue's for the item's price (held until the
    price is mapped: a contract needs the SKU its order and invoices use)."""
    sku = sku_or_wait(known, BILLING, item.price.id)
    if isinstance(sku, Translation):
        return sku
    metered = item.price.recurring is not None and item.price.recurring.usage_type == "metered"
    return {
        "sku": sku,
        "rate_plan": item.price.id,
        "quantity": "0" if metered else str(item.quantity or 1),
        "unit_price": _unit_price(item.price, currency, f"{where}.price"),
        "billing_period": _period(item.price, f"{where}.price"),
        "charge_type": "usage" if metered else "recurring",
    }


def _items(sub: Subscription, currency: str, known: Known) -> list[dict[str, Any]] | Translation:
    """Every item of the subscription, or the wait for the first unmapped price."""
    items = []
    for n, item in enumerate(sub.items.data):
        found = _item(item, currency, f"{OBJECT}.items.data.{n}", known)
        if isinstance(found, Translation):
            return found
        items.append(found)
    return items


def _term_end(sub: Subscription) -> int:
    ends = [i.current_period_end for i in sub.items.data if i.current_period_end]
    if sub.cancel_at:
        return sub.cancel_at
    if not ends:
        raise Malformed(
            "no item has current_period_end (API 2025-03-31.basil puts periods on items)",
            f"{OBJECT}.items.data.0.current_period_end",
        )
    return max(ends)


def _named_contract(sub: Subscription, known: Known) -> tuple[UUID, dict[str, Any]] | None:
    """The contract Concord made the subscription for (``metadata.concord_contract_id``,
    set by Concord's Stripe connector): the contract and its state, or None when the
    metadata names none. A name Concord does not hold is refused (it is no Concord id)."""
    named = sub.metadata.get(CONTRACT_KEY)
    if not named:
        return None
    where = f"{OBJECT}.metadata.{CONTRACT_KEY}"
    try:
        contract = UUID(named)
    except ValueError:
        raise Malformed(f"{CONTRACT_KEY} {named!r} is not a Concord contract id", where) from None
    state = known.state("contract", contract)
    if state is None:
        raise Malformed(f"{CONTRACT_KEY} {named} names no contract Concord holds", where)
    return contract, state


def _link(sub: Subscription, contract: UUID, state: dict[str, Any]) -> Translation:
    """Link the subscription to the contract it was made for: activate it with the
    subscription's id once billing runs it (never a second contract)."""
    linked = state.get("billing_subscription_id")
    if linked and linked != sub.id:
        return Translation.ignore(
            f"subscription {sub.id}: contract {contract} is billed by {linked} already"
        )
    steps: list[Step] = []
    if state.get("status") == "pending" and sub.status in RUNNING:
        steps.append(
            Step("contract", "activate", {"billing_subscription_id": sub.id}, target=contract)
        )
    steps += _cancellation(sub, state, contract)
    if not steps:
        return Translation.ignore(
            f"subscription {sub.id} is {sub.status}: contract {contract} is activated once "
            "billing runs it"
        )
    return Translation(steps=tuple(steps))


def subscription_created(event: StripeEvent, known: Known) -> Translation:
    sub = parse_model(Subscription, event.data.object, OBJECT)
    if known.lookup(Ref(BILLING, "contract", sub.id)) is not None:
        return subscription_changed(event, known)
    named = _named_contract(sub, known)
    if named is not None:
        return _link(sub, *named)
    ref = _order_ref(sub.metadata)
    if ref is None:
        raise Malformed(
            f"subscription {sub.id} names no order: set metadata.sf_opportunity_id or "
            "metadata.netsuite_sales_order_id",
            f"{OBJECT}.metadata",
        )
    order = known.lookup(ref)
    if order is None:
        return Translation.wait(ref)
    customer = known.lookup(Ref(BILLING, "customer", sub.customer))
    if customer is None:
        return Translation.wait(Ref(BILLING, "customer", sub.customer))
    currency = currency_code(sub.currency, field=f"{OBJECT}.currency")
    items = _items(sub, currency, known)
    if isinstance(items, Translation):
        return items
    create = Step(
        "contract",
        "create",
        {
            "order_id": str(order),
            "customer_id": str(customer),
            "items": items,
            "currency": currency,
            "term_start": _day(sub.start_date, f"{OBJECT}.start_date"),
            "term_end": _day(_term_end(sub), f"{OBJECT}.items.data.0.current_period_end"),
        },
        source_record_id=sub.id,
    )
    steps = [create]
    contract_id = external_id(BILLING, "contract", sub.id)
    if sub.status in RUNNING:
        steps.append(
            Step("contract", "activate", {"billing_subscription_id": sub.id}, target=contract_id)
        )
    steps += _cancellation(sub, None, contract_id)
    return Translation(steps=tuple(steps))


def _cancellation(sub: Subscription, state: dict[str, Any] | None, target: UUID) -> list[Step]:
    """A cancellation now (``canceled``) or at a date (``cancel_at``): once."""
    if state is not None and state.get("status") == "cancelled":
        return []
    if state is not None and state.get("cancellation_date"):
        return []
    when = None
    if sub.status in ("canceled", "incomplete_expired"):
        when = sub.ended_at or sub.canceled_at
    elif sub.cancel_at:
        when = sub.cancel_at
    if when is None:
        return []
    reason = (sub.cancellation_details or {}).get("reason")
    return [
        Step(
            "contract",
            "cancel",
            {"effective_date": _day(when, f"{OBJECT}.cancel_at"), "reason": reason},
            target=target,
        )
    ]


def subscription_changed(event: StripeEvent, known: Known) -> Translation:
    sub = parse_model(Subscription, event.data.object, OBJECT)
    ref = Ref(BILLING, "contract", sub.id)
    contract = known.lookup(ref)
    if contract is None:
        named = _named_contract(sub, known)
        if named is None:
            return Translation.wait(ref)
        return _link(sub, *named)  # not yet active: an incomplete first payment went through
    state = known.state("contract", contract) or {}
    steps: list[Step] = []
    status = state.get("status")
    changed = _day(event.created, "body.created")
    # Collection paused (``pause_collection``) is how billing suspends a running subscription.
    paused = sub.status == "paused" or sub.pause_collection is not None
    if status == "pending" and sub.status in RUNNING:
        steps.append(
            Step("contract", "activate", {"billing_subscription_id": sub.id}, target=contract)
        )
    elif status == "active" and paused:
        steps.append(Step("contract", "suspend", {"effective_date": changed}, target=contract))
    elif status == "suspended" and sub.status in RUNNING and not paused:
        steps.append(Step("contract", "resume", {"effective_date": changed}, target=contract))
    amendments = _amendments(sub, state, contract, changed, known)
    if isinstance(amendments, Translation):
        return amendments
    steps += amendments
    steps += _renewal(sub, state, contract)
    steps += _cancellation(sub, state, contract)
    if not steps:
        return Translation.ignore(f"subscription {sub.id}: nothing Concord keeps changed")
    return Translation(steps=tuple(steps))


def _amendments(
    sub: Subscription, state: dict[str, Any], contract: UUID, changed: str, known: Known
) -> list[Step] | Translation:
    currency = currency_code(sub.currency, field=f"{OBJECT}.currency")
    current = {item["sku"]: item for item in state.get("items", [])}
    items = _items(sub, currency, known)
    if isinstance(items, Translation):
        return items
    changes = []
    for wanted in items:
        held = current.get(wanted["sku"])
        if held is None:
            continue  # a new product on the subscription: an amendment order's job
        change: dict[str, Any] = {"sku": wanted["sku"]}
        if Decimal(str(held["quantity"])) != Decimal(wanted["quantity"]):
            change["quantity"] = wanted["quantity"]
        if Decimal(str(held["unit_price"])) != Decimal(wanted["unit_price"]):
            change["unit_price"] = wanted["unit_price"]
        if held.get("rate_plan") != wanted["rate_plan"]:
            change["rate_plan"] = wanted["rate_plan"]
        if len(change) > 1:
            changes.append(change)
    if not changes:
        return []
    return [
        Step("contract", "amend", {"changes": changes, "effective_date": changed}, target=contract)
    ]


def _renewal(sub: Subscription, state: dict[str, Any], contract: UUID) -> list[Step]:
    if sub.status not in RUNNING or sub.cancel_at:
        return []
    end = _day(_term_end(sub), f"{OBJECT}.items.data.0.current_period_end")
    if state.get("term_end") and end > str(state["term_end"]):
        return [Step("contract", "renew", {"new_term_end": end}, target=contract)]
    return []


def subscription_deleted(event: StripeEvent, known: Known) -> Translation:
    return subscription_changed(event, known)


def refund(event: StripeEvent, known: Known) -> Translation:
    """A refund that succeeded, once: on ``refund.created`` already succeeded, or on the
    ``refund.updated`` that moves it to succeeded (``charge.refunded`` is not followed:
    it reports the same refund again)."""
    refunded = parse_model(Refund, event.data.object, OBJECT)
    previous = (event.data.previous_attributes or {}).get("status")
    now_succeeded = refunded.status == "succeeded"
    if event.type == "refund.updated" and not (
        now_succeeded and previous not in (None, "succeeded")
    ):
        return Translation.ignore(f"refund {refunded.id}: no move to succeeded")
    if event.type == "refund.created" and not now_succeeded:
        return Translation.ignore(
            f"refund {refunded.id} is {refunded.status}; applied once it succeeds"
        )
    if not refunded.payment_intent:
        raise Malformed("the refund names no payment_intent", f"{OBJECT}.payment_intent")
    ref = Ref(BILLING, "payment", refunded.payment_intent)
    payment = known.lookup(ref)
    if payment is None:
        return Translation.wait(ref)
    currency = currency_code(refunded.currency, field=f"{OBJECT}.currency")
    amount = {
        "currency": currency,
        "amount": from_minor_units(refunded.amount, currency, field=f"{OBJECT}.amount"),
    }
    return Translation(
        steps=(
            Step("payment", "refund", {"amount": amount, "reference": refunded.id}, target=payment),
        )
    )


def credit_note(event: StripeEvent, known: Known) -> Translation:
    note = parse_model(CreditNote, event.data.object, OBJECT)
    ref = Ref(BILLING, "invoice", note.invoice)
    invoice = known.lookup(ref)
    if invoice is None:
        return Translation.wait(ref)
    currency = currency_code(note.currency, field=f"{OBJECT}.currency")
    amount = {
        "currency": currency,
        "amount": from_minor_units(note.total, currency, field=f"{OBJECT}.total"),
    }
    return Translation(
        steps=(
            Step(
                "invoice",
                "credit",
                {
                    "amount": amount,
                    "credit_note_number": note.number or note.id,
                    "reason": note.reason,
                },
                target=invoice,
            ),
        )
    )
