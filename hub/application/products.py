"""Product mapping use cases: define a product, change its mapping, retire it.

The catalogue is loaded from ``ops/mappings/products.yaml`` (``concord mappings load``) or
edited over ``/v1/mappings``; both come down to these commands, so each change is an event.
"""

from __future__ import annotations

from uuid import UUID

from pydantic import ConfigDict
from pydantic.config import JsonDict

from hub.application.commands import CommandInput, CommandSpec, NoInput, on
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.bounded import CurrencyCode, Description, RequiredCode
from hub.domain.contract import BillingPeriod
from hub.domain.order import ChargeType
from hub.domain.product import MAPPING_FIELDS, Product, ProductIds, product_id
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


class DefineProduct(CommandInput):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=PERIOD_RULE)

    sku: RequiredCode
    name: Description | None = None
    charge_type: ChargeType
    billing_period: BillingPeriod | None = None
    currency: CurrencyCode | None = None
    ids: ProductIds = ProductIds()


class ChangeProduct(CommandInput):
    name: Description | None = None
    charge_type: ChargeType | None = None
    billing_period: BillingPeriod | None = None
    currency: CurrencyCode | None = None
    ids: ProductIds | None = None


def _define(stamp: Stamp, aggregate_id: UUID, data: DefineProduct, unit: Unit) -> Aggregate:
    return Product.define(stamp, aggregate_id, **dict(data))


def _change(product: Product, stamp: Stamp, data: ChangeProduct, unit: Unit) -> None:
    given = {k: getattr(data, k) for k in MAPPING_FIELDS if k in data.model_fields_set}
    product.change(stamp, values=given, ids=data.ids)


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
        writes=("sku", "name", "charge_type", "billing_period", "currency", "ids"),
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
