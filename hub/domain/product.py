"""Product mappings: one canonical SKU and every system's id for it.

A CRM line names a Product2 and a PricebookEntry, the ERP an item, billing a price (or an
item price): translators need the canonical SKU, its charge type, billing period and
currency. A product is an aggregate like the others so that every change of a mapping is
an event (who changed what, when, and the history an auditor replays), and its ids land in
the cross-reference: a translator finds the SKU by any system's id, and an id that two
products claim is refused (a mapping must not be ambiguous).
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from hub.domain.base import Aggregate, CreationEvent, DomainEvent, creation_fields
from hub.domain.bounded import RequiredReference
from hub.domain.contract import BillingPeriod
from hub.domain.errors import InvalidTransition, InvalidValue
from hub.domain.order import ChargeType
from hub.domain.provenance import Stamp

PRODUCT_NAMESPACE = UUID("7d0f6a52-3b1e-4c9a-9f0e-2a6b8c4d1e37")
MAX_IDS = 50


def product_id(sku: str) -> UUID:
    """The product's id follows from its SKU: a mapping file loaded twice hits one product."""
    return uuid5(PRODUCT_NAMESPACE, sku)


class ProductStatus(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class ProductIds(BaseModel):
    """Every system's ids of one product (lists: a product has several prices)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    crm_product_ids: list[RequiredReference] = Field(default_factory=list, max_length=MAX_IDS)
    crm_pricebook_entry_ids: list[RequiredReference] = Field(
        default_factory=list, max_length=MAX_IDS
    )
    erp_item_ids: list[RequiredReference] = Field(default_factory=list, max_length=MAX_IDS)
    billing_price_ids: list[RequiredReference] = Field(default_factory=list, max_length=MAX_IDS)

    def refs(self) -> list[tuple[str, str]]:
        return (
            [("crm", i) for i in self.crm_product_ids]
            + [("crm", i) for i in self.crm_pricebook_entry_ids]
            + [("erp", i) for i in self.erp_item_ids]
            + [("billing", i) for i in self.billing_price_ids]
        )

    def added_to(self, before: ProductIds) -> ProductIds:
        """The ids here that ``before`` does not have (what a change links anew)."""
        return ProductIds(
            crm_product_ids=[i for i in self.crm_product_ids if i not in before.crm_product_ids],
            crm_pricebook_entry_ids=[
                i for i in self.crm_pricebook_entry_ids if i not in before.crm_pricebook_entry_ids
            ],
            erp_item_ids=[i for i in self.erp_item_ids if i not in before.erp_item_ids],
            billing_price_ids=[
                i for i in self.billing_price_ids if i not in before.billing_price_ids
            ],
        )


#: Fields a mapping change may set (ids are merged, never removed: a stored event may
#: still name an old id, and the cross-reference must keep finding the product by it).
MAPPING_FIELDS = ("name", "charge_type", "billing_period", "currency")


class Product(Aggregate):
    entity = "product"

    sku: str
    name: str | None = None
    charge_type: ChargeType
    billing_period: BillingPeriod | None = None
    currency: str | None = None
    ids: ProductIds = Field(default_factory=ProductIds)
    status: ProductStatus = ProductStatus.ACTIVE

    @classmethod
    def define(
        cls,
        stamp: Stamp,
        aggregate_id: UUID,
        *,
        sku: str,
        charge_type: ChargeType,
        name: str | None = None,
        billing_period: BillingPeriod | None = None,
        currency: str | None = None,
        ids: ProductIds | None = None,
    ) -> Product:
        if aggregate_id != product_id(sku):
            raise InvalidValue("a product's id follows from its SKU", field="id")
        _check_period(charge_type, billing_period)
        return cls._start(
            ProductDefined(
                **creation_fields(stamp, aggregate_id),
                sku=sku,
                name=name,
                charge_type=charge_type,
                billing_period=billing_period,
                currency=currency,
                ids=ids or ProductIds(),
            )
        )

    def change(
        self,
        stamp: Stamp,
        *,
        values: dict[str, object],
        ids: ProductIds | None = None,
    ) -> None:
        """Change the given mapping fields and link more ids; nothing changed records
        nothing (loading the same mapping file again is a no-op)."""
        if self.status is ProductStatus.RETIRED:
            raise InvalidTransition(f"product {self.sku} is retired", field="sku")
        changed = {k: v for k, v in values.items() if getattr(self, k) != v}
        added = (ids or ProductIds()).added_to(self.ids)
        if not changed and not added.refs():
            return
        merged = {**{k: getattr(self, k) for k in MAPPING_FIELDS}, **changed}
        event = ProductMappingChanged.model_validate(
            {
                "originator_id": self.id,
                "originator_version": self.version + 1,
                "timestamp": stamp.recorded_at,
                "provenance": stamp.provenance,
                "changed": sorted(changed),
                **merged,
                "added_ids": added,
            }
        )
        _check_period(event.charge_type, event.billing_period)
        self._record(
            ProductMappingChanged,
            stamp,
            **event.model_dump(include={"changed", *MAPPING_FIELDS, "added_ids"}),
        )

    def retire(self, stamp: Stamp) -> None:
        if self.status is ProductStatus.RETIRED:
            return
        self._record(ProductRetired, stamp)


def _check_period(charge_type: ChargeType, period: BillingPeriod | None) -> None:
    if charge_type is ChargeType.ONE_TIME and period is not None:
        raise InvalidValue("a one-time product has no billing period", field="billing_period")
    if charge_type is ChargeType.RECURRING and period is None:
        raise InvalidValue("a recurring product needs a billing period", field="billing_period")


class ProductDefined(CreationEvent):
    sku: str
    name: str | None
    charge_type: ChargeType
    billing_period: BillingPeriod | None
    currency: str | None
    ids: ProductIds

    def external_refs(self) -> list[tuple[str, str]]:
        return self.ids.refs()

    def create(self) -> Product:
        return Product(
            id=self.originator_id,
            version=1,
            created_on=self.timestamp,
            modified_on=self.timestamp,
            sku=self.sku,
            name=self.name,
            charge_type=self.charge_type,
            billing_period=self.billing_period,
            currency=self.currency,
            ids=self.ids,
        )


class ProductMappingChanged(DomainEvent):
    """``changed`` names the mapping fields that changed; the others repeat the values in
    force, so the event alone says the whole mapping."""

    changed: list[str]
    name: str | None
    charge_type: ChargeType
    billing_period: BillingPeriod | None
    currency: str | None
    added_ids: ProductIds

    def external_refs(self) -> list[tuple[str, str]]:
        return self.added_ids.refs()

    def apply(self, aggregate: Product) -> None:
        for name in self.changed:
            setattr(aggregate, name, getattr(self, name))
        old = aggregate.ids
        aggregate.ids = ProductIds(
            crm_product_ids=old.crm_product_ids + self.added_ids.crm_product_ids,
            crm_pricebook_entry_ids=old.crm_pricebook_entry_ids
            + self.added_ids.crm_pricebook_entry_ids,
            erp_item_ids=old.erp_item_ids + self.added_ids.erp_item_ids,
            billing_price_ids=old.billing_price_ids + self.added_ids.billing_price_ids,
        )


class ProductRetired(DomainEvent):
    def apply(self, aggregate: Product) -> None:
        aggregate.status = ProductStatus.RETIRED
