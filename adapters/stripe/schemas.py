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
    payments: InvoicePayments | None = None

    @property
    def payment_intent(self) -> str | None:
        """The PaymentIntent that paid it (basil lists invoice payments; older versions
        had ``payment_intent`` on the invoice)."""
        for item in self.payments.data if self.payments else []:
            if item.payment is not None and item.payment.payment_intent:
                return item.payment.payment_intent
        legacy = (self.model_extra or {}).get("payment_intent")
        return legacy if isinstance(legacy, str) else None

    @property
    def subscription(self) -> str | None:
        details = self.parent.subscription_details if self.parent else None
        return details.subscription if details else None


class Recurring(_Open):
    interval: str
    interval_count: int = 1
    usage_type: str = "licensed"


class Price(_Open):
    id: str = Field(min_length=1, max_length=255)
    product: str | dict[str, Any]
    unit_amount: int | None = None
    unit_amount_decimal: str | None = None
    currency: str
    recurring: Recurring | None = None
    lookup_key: str | None = None

    @property
    def product_id(self) -> str:
        return self.product if isinstance(self.product, str) else str(self.product.get("id"))


class SubscriptionItem(_Open):
    id: str
    price: Price
    quantity: int | None = None
    current_period_start: int | None = None
    current_period_end: int | None = None


class SubscriptionItems(_Open):
    data: list[SubscriptionItem] = Field(min_length=1, max_length=1000)


class Subscription(_Open):
    id: str = Field(min_length=1, max_length=255)
    customer: str = Field(min_length=1, max_length=255)
    status: str
    currency: str
    items: SubscriptionItems
    start_date: int
    cancel_at: int | None = None
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    pause_collection: dict[str, Any] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    cancellation_details: dict[str, Any] | None = None


class Refund(_Open):
    id: str = Field(min_length=1, max_length=255)
    amount: int
    currency: str
    status: str
    payment_intent: str | None = None
    charge: str | None = None
    reason: str | None = None


class CreditNote(_Open):
    id: str = Field(min_length=1, max_length=255)
    number: str | None = None
    invoice: str = Field(min_length=1, max_length=255)
    total: int
    currency: str
    reason: str | None = None
    status: str = "issued"


class InvoicePaymentRef(_Open):
    type: str | None = None
    payment_intent: str | None = None


class InvoicePayment(_Open):
    payment: InvoicePaymentRef | None = None
    status: str | None = None


class InvoicePayments(_Open):
    data: list[InvoicePayment] = Field(default_factory=list, max_length=100)


Invoice.model_rebuild()  # its ``payments`` field names a model defined after it
