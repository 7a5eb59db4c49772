"""Product mapping use cases: define a product, change its mapping, retire it.

The catalogue is loaded from ``ops/mappings/products.yaml`` (``concord mappings load``) or
edited over ``/v1/mappings``; both come down to these commands, so each change is an event.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from hub.application.commands import CommandInput, CommandSpec, NoInput, on
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.bounded import CurrencyCode, Description, RequiredCode, RequiredReference
from hub.domain.contract import BillingPeriod
from hub.domain.order import ChargeType
from hub.domain.product import MAPPING_FIELDS, MAX_IDS, Product, ProductIds, product_id
from hub.domain.provenance import Stamp

#: What the schema states of the period rule (``Product.define`` enforces it): a recurring
#: product names its period, a one-time product none.
PERIOD_RULE: JsonDict = {
    "allOf": [
        {
            "if": {
                "properties": {"charge_type": {"const": "recurring"}},
                "required": ["charge_type"],
            },
            "then": {
                "required": ["billing_period"],
                "properties": {"billing_period": {"type": "string"}},
            },
        },
        {
            "if": {
                "properties": {"charge_type": {"const": "one_time"}},
                "required": ["charge_type"],
            },
            "then": {"properties": {"billing_period": {"type": "null"}}},
        },
    ]
}


ID_LISTS = ("crm_product_ids", "crm_pricebook_entry_ids", "erp_item_ids", "billing_price_ids")
"""Each system's ids of a product, one input field per list so the ownership policy gives
each system its own (the CRM cannot claim a billing price id, nor billing a CRM product)."""

IdList = Annotated[list[RequiredReference], Field(max_length=MAX_IDS)]


class DefineProduct(CommandInput):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=PERIOD_RULE)

    sku: RequiredCode
    name: Description | None = None
    charge_type: ChargeType
    billing_period: BillingPeriod | None = None
    currency: CurrencyCode | None = None
    crm_product_ids: IdList = []
    crm_pricebook_entry_ids: IdList = []
    erp_item_ids: IdList = []
    billing_price_ids: IdList = []


class ChangeProduct(CommandInput):
    name: Description | None = None
    charge_type: ChargeType | None = None
    billing_period: BillingPeriod | None = None
    currency: CurrencyCode | None = None
    crm_product_ids: IdList | None = None
    crm_pricebook_entry_ids: IdList | None = None
    erp_item_ids: IdList | None = None
    billing_price_ids: IdList | None = None


def ids_of(data: CommandInput) -> ProductIds:
    """The id lists an input names (absent ones empty)."""
    return ProductIds(**{name: getattr(data, name) or [] for name in ID_LISTS})


def _define(stamp: Stamp, aggregate_id: UUID, data: DefineProduct, unit: Unit) -> Aggregate:
    values = data.model_dump(include={"sku", *MAPPING_FIELDS})
    return Product.define(stamp, aggregate_id, **values, ids=ids_of(data))


def _change(product: Product, stamp: Stamp, data: ChangeProduct, unit: Unit) -> None:
    given = {k: getattr(data, k) for k in MAPPING_FIELDS if k in data.model_fields_set}
    product.change(stamp, values=given, ids=ids_of(data))


def _retire(product: Product, stamp: Stamp, data: NoInput, unit: Unit) -> None:
    product.retire(stamp)


SPECS = [
    CommandSpec(
        "product",
        "define",
        DefineProduct,
        "Define a product: its SKU and every system's id for it",
        create=_define,
        identify=lambda data: product_id(data.sku),
        writes=("sku", "charge_type"),
        writes_from_input=True,
        description="The id follows from the SKU (`POST` it once; `change` it afterwards).",
    ),
    CommandSpec(
        "product",
        "change",
        ChangeProduct,
        "Change a product's mapping (ids are added, never removed)",
        handle=on(Product, _change),
        writes_from_input=True,
    ),
    CommandSpec(
        "product",
        "retire",
        NoInput,
        "Retire a product (its ids keep finding it)",
        handle=on(Product, _retire),
        writes=("status",),
    ),
]
