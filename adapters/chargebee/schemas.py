"""The parts of Chargebee's v2 event and resource shapes (Product Catalog 2.0) Concord reads.

Extra fields are allowed everywhere: Chargebee adds attributes, and custom fields arrive as
top-level ``cf_*`` attributes of the resource, which is where the CRM/ERP references live.
Money is integer "cents" (see :mod:`adapters.chargebee.money`), times unix seconds, and
``resource_version`` milliseconds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def reference(self, key: str) -> str | None:
        """A custom field (``cf_sf_account_id`` at the top level) or the same key in
        ``meta_data`` (with or without the ``cf_`` prefix): where Chargebee sites keep ids of
        the other systems."""
        extra = self.model_extra or {}
        value = extra.get(key)
        meta = extra.get("meta_data")
        if not value and isinstance(meta, dict):
            value = meta.get(key) or meta.get(key.removeprefix("cf_"))
        return str(value) if value not in (None, "") else None


class ChargebeeEvent(_Open):
    id: str = Field(min_length=1, max_length=255)
    occurred_at: int
    event_type: str = Field(min_length=1, max_length=255)
    api_version: str | None = None
    source: str | None = None
    webhook_status: str | None = None
    content: dict[str, Any]


class Customer(_Open):
    id: str = Field(min_length=1, max_length=255)
    resource_version: int | None = None
    deleted: bool = False
    company: str | None = Field(default=None, max_length=500)
    first_name: str | None = Field(default=None, max_length=250)
    last_name: str | None = Field(default=None, max_length=250)
    vat_number: str | None = Field(default=None, max_length=255)

    def legal_name(self) -> str | None:
        """The name to match by: the company, else the person's name."""
        person = " ".join(n.strip() for n in (self.first_name, self.last_name) if n and n.strip())
        return (self.company or "").strip() or person or None


class SubscriptionItem(_Open):
    item_price_id: str = Field(min_length=1, max_length=100)
    item_type: str
    quantity: int | None = None
    quantity_in_decimal: str | None = None
    unit_price: int | None = None
    unit_price_in_decimal: str | None = None
    billing_period: int | None = None
    billing_period_unit: str | None = None


class Subscription(_Open):
    id: str = Field(min_length=1, max_length=255)
    customer_id: str = Field(min_length=1, max_length=255)
    currency_code: str
    status: str
    billing_period: int | None = None
    billing_period_unit: str | None = None
    start_date: int | None = None
    started_at: int | None = None
    activated_at: int | None = None
    current_term_start: int | None = None
    current_term_end: int | None = None
    cancelled_at: int | None = None
    cancel_reason: str | None = None
    pause_date: int | None = None
    resume_date: int | None = None
    subscription_items: list[SubscriptionItem] = Field(default_factory=list, max_length=500)
    resource_version: int
    deleted: bool = False


class InvoiceLineItem(_Open):
    id: str | None = None
    date_from: int | None = None
    date_to: int | None = None
    unit_amount: int
    unit_amount_in_decimal: str | None = None
    quantity: int | None = None
    quantity_in_decimal: str | None = None
    amount: int
    amount_in_decimal: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    description: str | None = None
    tax_amount: int = 0


class Invoice(_Open):
    id: str = Field(min_length=1, max_length=100)
    customer_id: str = Field(min_length=1, max_length=255)
    subscription_id: str | None = None
    status: str
    date: int
    due_date: int | None = None
    currency_code: str
    sub_total: int
    tax: int = 0
    total: int
    amount_paid: int = 0
    line_items: list[InvoiceLineItem] = Field(max_length=1000)
    resource_version: int
    deleted: bool = False


class LinkedInvoice(_Open):
    invoice_id: str = Field(min_length=1, max_length=100)
    applied_amount: int


class Transaction(_Open):
    id: str = Field(min_length=1, max_length=255)
    customer_id: str | None = None
    type: str
    status: str
    date: int
    amount: int
    currency_code: str
    payment_method: str | None = None
    reference_number: str | None = None
    id_at_gateway: str | None = None
    error_code: str | None = None
    error_text: str | None = None
    refunded_txn_id: str | None = None
    linked_invoices: list[LinkedInvoice] = Field(default_factory=list, max_length=1000)
    resource_version: int | None = None


class CreditNote(_Open):
    id: str = Field(min_length=1, max_length=100)
    customer_id: str | None = None
    reference_invoice_id: str = Field(min_length=1, max_length=100)
    type: str | None = None
    reason_code: str | None = None
    create_reason_code: str | None = None
    status: str | None = None
    date: int
    total: int
    currency_code: str
    resource_version: int | None = None
