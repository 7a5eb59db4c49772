"""Contract use cases: input models and the command specs the API and batch ingest expose.

A contract is created from an order: the command loads the order so a subscription cannot
point at an order that does not exist, belongs to another customer or is in another
currency. An order that was rejected or cancelled refuses the hub's request to subscribe it
(an intention), but not billing's report of a subscription it already set up (a fact: it
started before billing heard of the cancellation; the projections show the break). It does
not wait for the ERP's acceptance: billing may set up the subscription while the ERP is
still booking the order, and holding records that wait on a dependency is the
orchestration's job, not a domain rule. A merged customer's subscription is recorded on the
survivor (see merges.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from uuid import UUID

from pydantic import Field

from hub.application.commands import CommandInput, CommandSpec, Handler, InputT, on
from hub.application.merges import same_customer, survivor
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.bounded import (
    MAX_LINES,
    CurrencyCode,
    Quantity,
    Reason,
    RequiredCode,
    RequiredReference,
)
from hub.domain.contract import Contract, ContractItem, ItemChange
from hub.domain.errors import CurrencyMismatch, InvalidTransition, InvalidValue
from hub.domain.order import Order, OrderStatus
from hub.domain.provenance import Stamp, System


class CreateContract(CommandInput):
    order_id: UUID
    customer_id: UUID
    items: list[ContractItem] = Field(min_length=1, max_length=MAX_LINES)
    currency: CurrencyCode
    term_start: date
    term_end: date


class ActivateContract(CommandInput):
    billing_subscription_id: RequiredReference


class AmendContract(CommandInput):
    changes: list[ItemChange] = Field(min_length=1, max_length=MAX_LINES)
    effective_date: date


class RenewContract(CommandInput):
    new_term_end: date


class SuspendContract(CommandInput):
    effective_date: date


class ResumeContract(CommandInput):
    effective_date: date


class CancelContract(CommandInput):
    effective_date: date
    reason: Reason | None = None


class RecordUsage(CommandInput):
    sku: RequiredCode
    quantity: Quantity
    period_start: date
    period_end: date
    usage_record_id: RequiredReference | None = Field(
        default=None,
        description="Billing's id of the usage record: counted once (a re-delivery changes "
        "nothing; the id with other values is refused with 409).",
    )


def _create(stamp: Stamp, contract_id: UUID, data: CreateContract, unit: Unit) -> Aggregate:
    """A fact from billing: a merged customer's subscription is recorded on the survivor."""
    order = unit.get(Order, data.order_id, field="order_id")
    customer = survivor(unit, data.customer_id, field="customer_id")
    reports_its_own = stamp.provenance.source_system is System.BILLING
    if order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED) and not reports_its_own:
        raise InvalidTransition(
            f"the order is {order.status.value}; nothing is left to subscribe", field="order_id"
        )
    if not same_customer(unit, order.customer_id, customer.id, field="customer_id"):
        raise InvalidValue(
            f"the order belongs to customer {order.customer_id}", field="customer_id"
        )
    if order.currency != data.currency:
        raise CurrencyMismatch(f"the order is in {order.currency}", field="currency")
    return Contract.create(stamp, contract_id, **(dict(data) | {"customer_id": customer.id}))


def _contract(handler: Callable[[Contract, Stamp, InputT], None]) -> Handler[InputT]:
    """Adapt ``handler(contract, stamp, data)`` to the generic handler signature."""
    return on(Contract, lambda aggregate, stamp, data, unit: handler(aggregate, stamp, data))


SPECS = [
    CommandSpec(
        "contract",
        "create",
        CreateContract,
        "Create a subscription from an order",
        create=_create,
        writes=("order_id", "customer_id", "items", "currency", "term_start", "term_end"),
    ),
    CommandSpec(
        "contract",
        "activate",
        ActivateContract,
        "Record the billing system's subscription id and activate",
        handle=_contract(lambda c, s, d: c.activate(s, d.billing_subscription_id)),
        writes=("status", "billing_subscription_id"),
    ),
    CommandSpec(
        "contract",
        "amend",
        AmendContract,
        "Change quantity, price or rate plan of items from an effective date",
        handle=_contract(lambda c, s, d: c.amend(s, d.changes, d.effective_date)),
        writes=("items",),
    ),
    CommandSpec(
        "contract",
        "renew",
        RenewContract,
        "Extend the term to a new end date",
        handle=_contract(lambda c, s, d: c.renew(s, d.new_term_end)),
        writes=("term_end",),
    ),
    CommandSpec(
        "contract",
        "suspend",
        SuspendContract,
        "Suspend the subscription",
        handle=_contract(lambda c, s, d: c.suspend(s, d.effective_date)),
        writes=("status",),
    ),
    CommandSpec(
        "contract",
        "resume",
        ResumeContract,
        "Resume a suspended subscription",
        handle=_contract(lambda c, s, d: c.resume(s, d.effective_date)),
        writes=("status",),
    ),
    CommandSpec(
        "contract",
        "cancel",
        CancelContract,
        "Cancel the subscription from an effective date",
        handle=_contract(lambda c, s, d: c.cancel(s, d.effective_date, d.reason)),
        writes=("status", "cancellation_date"),
    ),
    CommandSpec(
        "contract",
        "record_usage",
        RecordUsage,
        "Record usage of a usage item",
        handle=_contract(
            lambda c, s, d: c.record_usage(
                s,
                sku=d.sku,
                quantity=d.quantity,
                period_start=d.period_start,
                period_end=d.period_end,
                usage_record_id=d.usage_record_id,
            )
        ),
        writes=("usage_totals",),
    ),
]
