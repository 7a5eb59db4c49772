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

from hub.application.products import ChangeProduct, DefineProduct
from hub.application.service import Caller, CommandRequest, Hub
from hub.domain.errors import DomainError
from hub.domain.product import product_id

MAX_PRODUCTS = 10_000


class MappingFile(BaseModel):
    """The file's shape: a version and the products."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    products: list[DefineProduct] = Field(max_length=MAX_PRODUCTS)

    @field_validator("products")
    @classmethod
    def _unique(cls, products: list[DefineProduct]) -> list[DefineProduct]:
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


def upsert_request(hub: Hub, caller: Caller, product: DefineProduct) -> CommandRequest:
    """``define`` for a new SKU, ``change`` (every field, merged ids) for a known one."""
    aggregate_id = product_id(product.sku)
    if hub.store.load("product", aggregate_id) is None:
        return CommandRequest(
            entity="product", name="define", payload=product, caller=caller,
            aggregate_id=aggregate_id,
        )  # fmt: skip
    change = ChangeProduct.model_validate(product.model_dump(exclude={"sku"}))
    return CommandRequest(
        entity="product", name="change", payload=change, caller=caller, aggregate_id=aggregate_id
    )


def apply_mappings(hub: Hub, caller: Caller, products: Iterable[DefineProduct]) -> LoadReport:
    report = LoadReport()
    for product in products:
        request = upsert_request(hub, caller, product)
        try:
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
