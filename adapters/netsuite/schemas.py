"""Concord's NetSuite envelope and the parts of NetSuite REST records Concord reads.

NetSuite has no signed webhooks of its own, so Concord defines the contract: a SuiteScript
user-event script posts ``{"eventId", "recordType", "action", "occurredAt", "record"}``
where ``record`` is the record as SuiteTalk REST renders it (camelCase fields, references
as ``{"id", "refName"}``, sublists as ``{"items": […]}``, dates ``"2026-01-15"``, money as
JSON numbers in major units). Money fields are ``Decimal``: the body is parsed with
``parse_float=Decimal`` so ``0.1`` stays ``0.1`` (a float parse would not).

Fields are snake_case here and camelCase on the wire (the alias), so a validation error
names the field as NetSuite spells it (``body.record.orderStatus``). Extra fields are
allowed everywhere: accounts carry custom fields (``custentity_*``, ``custbody_*``) and
NetSuite adds fields between releases.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Open(BaseModel):
    model_config = ConfigDict(
        extra="allow", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


class Reference(_Open):
    """A reference to another record: ``{"links": […], "id": "1", "refName": "Net 30"}``."""

    id: str = Field(min_length=1, max_length=255)
    ref_name: str | None = Field(default=None, max_length=500)


class Envelope(_Open):
    """What the user-event script posts for one record save."""

    event_id: str = Field(min_length=1, max_length=255)
    record_type: str = Field(min_length=1, max_length=100)
    action: str = Field(min_length=1, max_length=50)
    occurred_at: AwareDatetime
    record: dict[str, object]


class Record(_Open):
    """Fields every record Concord reads has."""

    id: str = Field(min_length=1, max_length=255)
    external_id: str | None = Field(default=None, max_length=255)


class Customer(Record):
    entity_id: str | None = Field(default=None, max_length=255)
    company_name: str | None = None
    parent: Reference | None = None
    terms: Reference | None = None
    currency: Reference | None = None
    vat_reg_number: str | None = Field(default=None, max_length=255)
    credit_hold_override: Reference | None = None  # AUTO / ON / OFF


class Line(_Open):
    line: int | None = None
    item: Reference | None = None
    quantity: Decimal | None = None
    rate: Decimal | None = None
    amount: Decimal | None = None
    description: str | None = None


class Lines(_Open):
    """An expanded sublist (``?expandSubResources=true``)."""

    items: list[Line] = Field(default_factory=list, max_length=10_000)


class Transaction(Record):
    tran_id: str | None = Field(default=None, max_length=255)
    tran_date: date | None = None
    entity: Reference | None = None
    currency: Reference | None = None
    subtotal: Decimal | None = None
    tax_total: Decimal | None = None
    total: Decimal | None = None
    item: Lines | None = None

    @property
    def number(self) -> str:
        """The document number people see (``SO1234``), else the internal id."""
        return self.tran_id or self.id


class SalesOrder(Transaction):
    order_status: Reference  # {"id": "B", "refName": "Pending Fulfillment"}


class Invoice(Transaction):
    created_from: Reference | None = None  # the sales order
    due_date: date | None = None
    status: Reference | None = None


class Application(_Open):
    """One row of a customer payment's ``apply`` sublist."""

    doc: Reference
    apply: bool = False
    amount: Decimal | None = None
    ref_num: str | None = None
    type: str | None = None


class Applications(_Open):
    items: list[Application] = Field(default_factory=list, max_length=10_000)


class CustomerPayment(Transaction):
    customer: Reference | None = None
    payment: Decimal
    apply: Applications = Field(default_factory=Applications)


class CreditMemo(Transaction):
    created_from: Reference | None = None  # the invoice credited


class Item(Record):
    item_id: str | None = None  # name / SKU
    display_name: str | None = None
