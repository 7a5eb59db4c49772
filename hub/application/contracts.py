"""Contract use cases: input models and the command specs the API and batch ingest expose.

A contract is created from an order: the command loads the order so a subscription cannot
point at an order that does not exist, belongs to another customer, is in another currency,
or was rejected or cancelled. It does not wait for the ERP's acceptance: billing may set up
the subscription while the ERP is still booking the order, and holding records that wait on
a dependency is the orchestration's job, not a domain rule.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from pydantic import Field

from hub.application.commands import CommandInput, CommandSpec
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
from hub.domain.customer import Customer
from hub.domain.errors import CurrencyMismatch, InvalidTransition, InvalidValue
from hub.domain.order import Order, OrderStatus
from hub.domain.provenance import Stamp


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


def _create(stamp: Stamp, contract_id: UUID, data: CreateContract, unit: Unit) -> Aggregate:
    order = unit.get(Order, data.order_id, field="order_id")
    unit.get(Customer, data.customer_id, field="customer_id")
    if order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
        raise InvalidTransition(
            f"the order is {order.status.value}; nothing is left to subscribe", field="order_id"
        )
    if order.customer_id != data.customer_id:
        raise InvalidValue(
            f"the order belongs to customer {order.customer_id}", field="customer_id"
        )
    if order.currency != data.currency:
        raise CurrencyMismatch(f"the order is in {order.currency}", field="currency")
    return Contract.create(stamp, contract_id, **dict(data))


def _contract(handler: Any) -> Any:
    """Adapt ``handler(contract, stamp, data)`` to the generic handler signature."""

    def run(aggregate: Aggregate, stamp: Stamp, data: Any, unit: Unit) -> None:
        assert isinstance(aggregate, Contract)
        handler(aggregate, stamp, data)

    return run


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
            )
        ),
        writes=("usage_totals",),
    ),
]
