"""The product catalogue file (``ops/mappings/products.yaml``) and applying it to the hub.

Loading turns each entry into a ``product define`` (new SKU) or ``product change`` (known
SKU) command run by the caller, so every change is an event with provenance and an
unchanged entry records nothing. Ids are added, never removed: a stored event may name an
old id, and the cross-reference must keep finding the product by it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.application.commands import CommandInput
from hub.application.products import PERIOD_RULE, ChangeProduct, DefineProduct
from hub.application.service import Caller, CommandRequest, Hub
from hub.domain.bounded import CurrencyCode, Description, RequiredCode
from hub.domain.contract import BillingPeriod
from hub.domain.errors import DomainError
from hub.domain.order import ChargeType
from hub.domain.product import ProductIds, product_id

MAX_PRODUCTS = 10_000


class MappingEntry(BaseModel):
    """One product as the file (and ``/v1/mappings``) writes it: the ids grouped under
    ``ids``. ``charge_type`` may be left out when changing a product that exists."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=PERIOD_RULE)

    sku: RequiredCode
    name: Description | None = None
    charge_type: ChargeType | None = None
    billing_period: BillingPeriod | None = None
    currency: CurrencyCode | None = None
    ids: ProductIds | None = None

    def command_fields(self) -> dict[str, Any]:
        """The flat command input: the given fields, each id list on its own."""
        given = self.model_dump(include=self.model_fields_set - {"ids", "sku"})
        if given.get("charge_type", "") is None:  # a product always has one: null keeps it
            del given["charge_type"]
        if self.ids is not None:
            given.update(self.ids.model_dump(exclude_defaults=True))
        return given


class MappingFile(BaseModel):
    """The file's shape: a version and the products."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    products: list[MappingEntry] = Field(max_length=MAX_PRODUCTS)

    @field_validator("products")
    @classmethod
    def _unique(cls, products: list[MappingEntry]) -> list[MappingEntry]:
        skus = [p.sku for p in products]
        twice = sorted({s for s in skus if skus.count(s) > 1})
        if twice:
            raise ValueError(f"SKU listed twice: {', '.join(twice)}")
        return products


class MappingFileError(ValueError):
    """The file cannot be read or does not have the catalogue's shape (names the entry)."""


def read_mapping_file(path: Path) -> MappingFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingFileError(f"{path} not found") from None
    except yaml.YAMLError as bad:
        raise MappingFileError(f"{path} is not YAML: {bad}") from None
    return parse_mappings(raw, str(path))


def parse_mappings(raw: Any, where: str = "the mappings") -> MappingFile:
    try:
        parsed = MappingFile.model_validate(raw)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        raise MappingFileError(f"{where}: {path}: {first.get('msg')}") from None
    return parsed


@dataclass
class LoadReport:
    defined: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "defined": self.defined,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "refused": self.refused,
        }


class MissingChargeType(DomainError):
    """A new SKU must say how it is charged."""

    code = "validation-failed"


def upsert_request(hub: Hub, caller: Caller, entry: MappingEntry) -> CommandRequest:
    """``define`` for a new SKU, ``change`` (only the fields given) for a known one."""
    aggregate_id = product_id(entry.sku)
    fields = entry.command_fields()
    if hub.store.load("product", aggregate_id) is None:
        if entry.charge_type is None:
            raise MissingChargeType(
                f"product {entry.sku} is new: give its charge_type", field="charge_type"
            )
        payload: CommandInput = DefineProduct(sku=entry.sku, **fields)
        name = "define"
    else:
        payload, name = ChangeProduct(**fields), "change"
    return CommandRequest(
        entity="product", name=name, payload=payload, caller=caller, aggregate_id=aggregate_id
    )


def apply_mappings(hub: Hub, caller: Caller, products: Iterable[MappingEntry]) -> LoadReport:
    report = LoadReport()
    for product in products:
        try:
            request = upsert_request(hub, caller, product)
            result = hub.execute(request)
        except DomainError as refused:
            report.refused.append(
                {"sku": product.sku, "code": refused.code, "detail": str(refused)}
            )
            continue
        if request.name == "define":
            report.defined.append(product.sku)
        elif result.body.get("events"):
            report.changed.append(product.sku)
        else:
            report.unchanged.append(product.sku)
    return report
