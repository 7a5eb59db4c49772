"""The parts of Stripe's event and object shapes (API ``2025-03-31.basil``) Concord reads.

Extra fields are allowed everywhere: Stripe adds fields without a new API version, and a
delivery must not be refused for carrying more than Concord needs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class EventData(_Open):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class StripeEvent(_Open):
    id: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=255)
    created: int
    api_version: str | None = None
    data: EventData


class Customer(_Open):
    id: str = Field(min_length=1, max_length=255)
    name: str | None = Field(None, max_length=500)
    metadata: dict[str, str] = Field(default_factory=dict)
    deleted: bool = False


class Period(_Open):
    start: int
    end: int


class SubscriptionItemDetails(_Open):
    proration: bool = False
    subscription_item: str | None = None
    subscription: str | None = None


class LineParent(_Open):
    type: str | None = None
    subscription_item_details: SubscriptionItemDetails | None = None


class PriceDetails(_Open):
    price: str | None = None
    product: str | None = None


class Pricing(_Open):
    price_details: PriceDetails | None = None
    unit_amount_decimal: str | None = None


class InvoiceLine(_Open):
    id: str
    amount: int
    currency: str
    description: str | None = None
    quantity: int | None = None
    period: Period | None = None
    pricing: Pricing | None = None
    parent: LineParent | None = None


class Lines(_Open):
    data: list[InvoiceLine] = Field(max_length=1000)


class TaxAmount(_Open):
    amount: int


class SubscriptionDetails(_Open):
    subscription: str | None = None


class InvoiceParent(_Open):
    type: str | None = None
    subscription_details: SubscriptionDetails | None = None


class StatusTransitions(_Open):
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    marked_uncollectible_at: int | None = None


class Invoice(_Open):
    id: str = Field(min_length=1, max_length=255)
    customer: str = Field(min_length=1, max_length=255)
    currency: str
    number: str | None = None
    status: str | None = None
    subtotal: int
    total: int
    total_taxes: list[TaxAmount] | None = None
    amount_paid: int = 0
    created: int
    effective_at: int | None = None
    due_date: int | None = None
    lines: Lines
    parent: InvoiceParent | None = None
    status_transitions: StatusTransitions = Field(default_factory=StatusTransitions)
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def subscription(self) -> str | None:
        details = self.parent.subscription_details if self.parent else None
        return details.subscription if details else None
