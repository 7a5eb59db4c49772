"""Customer: the one canonical account behind a CRM account, an ERP customer and a billing customer.

Lifecycle: registered -> active <-> on_hold -> closed, or merged into a surviving customer.
Names, domain, address and hierarchy come from CRM; customer number, payment terms, tax id
and currency from ERP (see ``adapters/ownership.yaml``). Values are normalised here (domain lower
case without scheme, tax id without spaces) because identity matching compares them.

Design choices, each to keep re-delivered or replayed input harmless:

* A command that would not change anything (same status, same number, the same external id
  linked again, details equal to the current ones, a second erasure) records **no event**:
  sources resend records freely and the log should only hold real changes.
* Linking a *different* external id for a system that is already linked is **refused**
  (``AlreadyExists``): one customer has one record per system; a second one means a duplicate
  in that system, which a person has to resolve (merge there, or merge here), not a silent
  overwrite that would orphan the old id's cross-reference.
* After a merge every command is refused, except erasure: data-protection law applies to the
  merged-away record too.
* Personal data (``PERSONAL_FIELDS``: names, web domain, tax id, billing address; a
  customer may be a sole trader, so its names and tax id identify a person) is declared here
  per event (``personal_fields``) and sealed by the store with this customer's own key.
  Erasure records only *that* it happened; committing it destroys the key, so every older
  event, snapshot, receipt and published message holding those fields reads as ``[erased]``
  (crypto-shredding). Amounts, dates, ids, customer number and payment terms are kept:
  finance records must be.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, ClassVar, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hub.domain.base import Aggregate, CreationEvent, DomainEvent, StaleUpdate, creation_fields
from hub.domain.bounded import (
    AddressLine,
    Code,
    CurrencyCode,
    Domain,
    Name,
    PostalCode,
    RequiredCode,
    ShortCode,
)
from hub.domain.errors import AlreadyExists, InvalidTransition, InvalidValue, MergedAway
from hub.domain.money import exponent
from hub.domain.provenance import Stamp

ERASED = "[erased]"
#: What a personal value reads as once its key is destroyed (any field, any shape).
Erased = Literal["[erased]"]


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    CLOSED = "closed"
    MERGED = "merged"


class LinkedSystem(StrEnum):
    """Systems that keep their own record of a customer (cross-reference keys)."""

    CRM = "crm"
    ERP = "erp"
    BILLING = "billing"


class Address(BaseModel):
    """A postal address; ``country`` is ISO 3166-1 alpha-2 because tax rules key on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line1: AddressLine
    line2: AddressLine | None = None
    city: RequiredCode
    region: Code | None = None
    postal_code: PostalCode | None = None
    country: str = Field(pattern=r"^[A-Z]{2}$", min_length=2, max_length=2)


DetailField = Literal[
    "legal_name",
    "display_name",
    "web_domain",
    "tax_id",
    "billing_address",
    "currency",
    "parent_customer_id",
]
DETAIL_FIELDS: tuple[str, ...] = get_args(DetailField)
PERSONAL_FIELDS: tuple[str, ...] = (
    "legal_name",
    "display_name",
    "web_domain",
    "tax_id",
    "billing_address",
)


class CustomerDetails(BaseModel):
    """A partial change: only the fields *set* (``model_fields_set``) are meant to change.

    ``None`` for a set field clears it (e.g. detach from a parent); names cannot be cleared.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    legal_name: Name | None = None
    display_name: Name | None = None
    web_domain: Domain | None = None
    tax_id: ShortCode | None = None
    billing_address: Address | Erased | None = None
    currency: CurrencyCode | None = None
    parent_customer_id: UUID | None = None


# -- normalisation (guard clauses shared by register and change_details) -----------------

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def normalise_name(value: str | None, field: str) -> str:
    """Names are required and compared trimmed; blank is refused rather than stored."""
    if value is None or not value.strip():
        raise InvalidValue(f"{field} cannot be empty", field=field)
    return " ".join(value.split())


def normalise_domain(value: str | None) -> str | None:
    """``https://www.Example.com/about`` -> ``example.com``: matching compares bare hosts."""
    if value is None:
        return None
    host = value.strip().lower()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host).split("/", 1)[0].split(":", 1)[0]
    host = host.removeprefix("www.")
    if not _DOMAIN.match(host):
        raise InvalidValue(f"{value!r} is not a web domain", field="web_domain")
    return host


def normalise_tax_id(value: str | None) -> str | None:
    """Tax ids are compared without spaces, dots and dashes, upper case."""
    if value is None:
        return None
    cleaned = re.sub(r"[\s.\-]", "", value).upper()
    if not cleaned:
        raise InvalidValue("tax_id cannot be blank; send null to clear it", field="tax_id")
    return cleaned


def check_currency(value: str | None) -> str | None:
    if value is not None:
        exponent(value)
    return value


def check_parent(customer_id: UUID, parent_id: UUID | None) -> UUID | None:
    if parent_id is not None and parent_id == customer_id:
        raise InvalidValue("a customer cannot be its own parent", field="parent_customer_id")
    return parent_id


def normalise(customer_id: UUID, name: str, value: Any) -> Any:
    """Normalise one detail field's value (or refuse it)."""
    if name in ("legal_name", "display_name"):
        return normalise_name(value, name)
    if name == "web_domain":
        return normalise_domain(value)
    if name == "tax_id":
        return normalise_tax_id(value)
    if name == "currency":
        return check_currency(value)
    if name == "parent_customer_id":
        return check_parent(customer_id, value)
    return value


class Customer(Aggregate):
    entity = "customer"

    legal_name: str
    display_name: str
    web_domain: str | None = None
    tax_id: str | None = None
    billing_address: Address | Erased | None = None
    currency: str | None = None
    parent_customer_id: UUID | None = None
    status: CustomerStatus = CustomerStatus.ACTIVE
    external_ids: dict[LinkedSystem, str] = Field(default_factory=dict)
    merged_into: UUID | None = None
    customer_number: str | None = None
    payment_terms: str | None = None
    erased: bool = False
    status_reason: str | None = None

    personal_fields: ClassVar[tuple[str, ...]] = PERSONAL_FIELDS

    # -- commands -------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        stamp: Stamp,
        customer_id: UUID,
        *,
        legal_name: str,
        display_name: str | None = None,
        web_domain: str | None = None,
        tax_id: str | None = None,
        billing_address: Address | None = None,
        currency: str | None = None,
        parent_customer_id: UUID | None = None,
    ) -> Customer:
        legal = normalise_name(legal_name, "legal_name")
        display = legal if display_name is None else normalise_name(display_name, "display_name")
        return cls._start(
            CustomerRegistered(
                **creation_fields(stamp, customer_id),
                legal_name=legal,
                display_name=display,
                web_domain=normalise_domain(web_domain),
                tax_id=normalise_tax_id(tax_id),
                billing_address=billing_address,
                currency=check_currency(currency),
                parent_customer_id=check_parent(customer_id, parent_customer_id),
            )
        )

    def change_details(self, stamp: Stamp, changes: CustomerDetails) -> None:
        """Change only the fields set in ``changes``; equal values are not recorded."""
        self._require_not_merged("change the details of")
        given = [name for name in DETAIL_FIELDS if name in changes.model_fields_set]
        if not given:
            raise InvalidValue("name at least one field to change", field=None)
        if self.erased:
            for name in given:
                if name in PERSONAL_FIELDS:
                    raise InvalidTransition(
                        "this customer's personal data was erased; it cannot be set again",
                        field=name,
                    )
        values = {name: normalise(self.id, name, getattr(changes, name)) for name in given}
        changed = self._fresh(stamp, [n for n in given if values[n] != getattr(self, n)])
        if not changed:
            return
        self._record(
            CustomerDetailsChanged,
            stamp,
            details=CustomerDetails(**{name: values[name] for name in changed}),
            changed=changed,
        )

    def link(self, stamp: Stamp, system: LinkedSystem, external_id: str) -> None:
        """Cross-reference this customer with ``system``'s record ``external_id``."""
        self._require_not_merged("link")
        if not external_id.strip():
            raise InvalidValue("external_id cannot be empty", field="external_id")
        current = self.external_ids.get(system)
        if current == external_id:
            return
        if current is not None:
            raise AlreadyExists(
                f"customer is already linked to {system.value} record {current!r}; "
                f"resolve the duplicate {external_id!r} by merging",
                field="external_id",
            )
        self._record(CustomerLinked, stamp, system=system, external_id=external_id)

    def merge_into(self, stamp: Stamp, target_customer_id: UUID) -> None:
        """Mark this customer as a duplicate of ``target_customer_id`` (which survives)."""
        self._require_not_merged("merge")
        if target_customer_id == self.id:
            raise InvalidValue(
                "a customer cannot be merged into itself", field="target_customer_id"
            )
        self._record(CustomerMerged, stamp, target_customer_id=target_customer_id)

    def absorb(self, stamp: Stamp, merged_customer_id: UUID) -> None:
        """Record, on the survivor, that ``merged_customer_id`` was merged into it.

        Why the survivor is written too: a merge checks that its target is not merged
        itself, and two merges deciding at once (A into B, B into A) would each pass that
        check and commit a loop. Writing the survivor in the merge's transaction makes the
        second one a concurrency conflict on the survivor's version."""
        self._require_not_merged("merge a customer into")
        self._record(CustomerAbsorbed, stamp, merged_customer_id=merged_customer_id)

    def change_status(
        self, stamp: Stamp, status: CustomerStatus, reason: str | None = None
    ) -> None:
        """active <-> on_hold, either -> closed; closed is final (reopening is refused)."""
        self._require_not_merged("change the status of")
        if status is CustomerStatus.MERGED:
            raise InvalidValue("use the merge command to merge a customer", field="status")
        if status == self.status:
            return
        if self.status is CustomerStatus.CLOSED:
            raise InvalidTransition(
                f"a closed customer cannot become {status.value}; register a new one",
                field="status",
            )
        if not self._fresh(stamp, ["status"]):
            return
        self._record(CustomerStatusChanged, stamp, status=status, reason=reason)

    def erase(self, stamp: Stamp) -> None:
        """Blank personal data (GDPR art. 17); allowed after a merge, a no-op if repeated."""
        if self.erased:
            return
        self._record(CustomerPersonalDataErased, stamp)

    def assign_number(self, stamp: Stamp, customer_number: str) -> None:
        """The ERP's customer number; the ERP may renumber, so a new number replaces the old."""
        self._require_not_merged("number")
        if not customer_number.strip():
            raise InvalidValue("customer_number cannot be empty", field="customer_number")
        if customer_number == self.customer_number or not self._fresh(stamp, ["customer_number"]):
            return
        self._record(CustomerNumberAssigned, stamp, customer_number=customer_number)

    def set_payment_terms(self, stamp: Stamp, payment_terms: str) -> None:
        """The ERP's payment terms code (e.g. ``NET30``); invoices' due dates follow it."""
        self._require_not_merged("set payment terms of")
        if not payment_terms.strip():
            raise InvalidValue("payment_terms cannot be empty", field="payment_terms")
        if payment_terms == self.payment_terms or not self._fresh(stamp, ["payment_terms"]):
            return
        self._record(CustomerPaymentTermsSet, stamp, payment_terms=payment_terms)

    def _require_not_merged(self, action: str) -> None:
        if self.status is CustomerStatus.MERGED:
            assert self.merged_into is not None
            raise MergedAway(
                f"cannot {action} a customer merged into {self.merged_into}; send it to "
                f"{self.merged_into}",
                field="status",
                survivor_id=self.merged_into,
            )


# -- events ------------------------------------------------------------------------------


class CustomerRegistered(CreationEvent):
    """v2: ``legal_name`` + ``display_name`` (v1 had a single ``name``)."""

    legal_name: str
    display_name: str
    web_domain: str | None
    tax_id: str | None
    billing_address: Address | Erased | None
    currency: str | None
    parent_customer_id: UUID | None

    class_version: ClassVar[int] = 2
    personal_fields: ClassVar[tuple[str, ...]] = PERSONAL_FIELDS

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """v1 stored one ``name``; it was both the legal and the display name."""
        name = state.pop("name")
        state["legal_name"] = name
        state.setdefault("display_name", name)

    def create(self) -> Customer:
        return Customer(
            id=self.originator_id,
            version=1,
            created_on=self.timestamp,
            modified_on=self.timestamp,
            **self.model_dump(include=set(DETAIL_FIELDS)),
        )

    def source_fields(self) -> list[str]:
        return [name for name in DETAIL_FIELDS if getattr(self, name) is not None]


class CustomerDetailsChanged(DomainEvent):
    """Only the fields named in ``changed`` changed; the rest of ``details`` is unused."""

    details: CustomerDetails
    changed: list[DetailField]

    personal_fields: ClassVar[tuple[str, ...]] = tuple(f"details.{f}" for f in PERSONAL_FIELDS)

    def apply(self, aggregate: Customer) -> None:
        for name in self.changed:
            setattr(aggregate, name, getattr(self.details, name))

    def source_fields(self) -> list[str]:
        return list(self.changed)


class CustomerLinked(DomainEvent):
    system: LinkedSystem
    external_id: str

    def external_refs(self) -> list[tuple[str, str]]:
        return [(str(self.system), self.external_id)]

    def apply(self, aggregate: Customer) -> None:
        aggregate.external_ids = {**aggregate.external_ids, self.system: self.external_id}


class CustomerMerged(DomainEvent):
    target_customer_id: UUID

    def apply(self, aggregate: Customer) -> None:
        aggregate.status = CustomerStatus.MERGED
        aggregate.merged_into = self.target_customer_id


class CustomerAbsorbed(DomainEvent):
    """Another customer was merged into this one (the survivor); its state is unchanged."""

    merged_customer_id: UUID

    def apply(self, aggregate: Customer) -> None:
        return None


class CustomerStatusChanged(DomainEvent):
    status: CustomerStatus
    reason: str | None = None

    def apply(self, aggregate: Customer) -> None:
        aggregate.status = self.status
        aggregate.status_reason = self.reason

    def source_fields(self) -> list[str]:
        return ["status"]


class CustomerPersonalDataErased(DomainEvent):
    """Records only *that* personal data was erased, never the data itself."""

    erases_personal_data: ClassVar[bool] = True

    def apply(self, aggregate: Customer) -> None:
        aggregate.legal_name = ERASED
        aggregate.display_name = ERASED
        aggregate.web_domain = None
        aggregate.tax_id = None
        aggregate.billing_address = None
        aggregate.erased = True


class CustomerNumberAssigned(DomainEvent):
    customer_number: str

    def external_refs(self) -> list[tuple[str, str]]:
        return [("erp", self.customer_number)]  # the ERP's customer number finds it too

    def apply(self, aggregate: Customer) -> None:
        aggregate.customer_number = self.customer_number

    def source_fields(self) -> list[str]:
        return ["customer_number"]


class CustomerPaymentTermsSet(DomainEvent):
    payment_terms: str

    def apply(self, aggregate: Customer) -> None:
        aggregate.payment_terms = self.payment_terms

    def source_fields(self) -> list[str]:
        return ["payment_terms"]


class CustomerUpdateStale(StaleUpdate):
    """A source update of the customer older than the values it holds (nothing changed)."""


Customer.stale_event = CustomerUpdateStale
