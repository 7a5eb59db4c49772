"""The product catalogue over HTTP: ``/v1/mappings``.

``GET`` lists every product mapping; ``PUT /v1/mappings/{sku}`` defines or changes one (the
caller's system may write only what it owns: the ERP the item master, each system its own
ids; admin everything); ``POST /v1/mappings/load`` applies a whole catalogue file's content
(admin), as ``concord mappings load`` does. Every change is a product event; after one,
deliveries held for a missing mapping are released.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from adapters.mappings import (
    MappingEntry,
    MappingFile,
    MissingChargeType,
    apply_mappings,
    upsert_request,
)
from adapters.postgres.index import ListQuery
from api.errors import input_problem
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.products import PERIOD_RULE
from hub.application.service import Caller
from hub.domain.bounded import CurrencyCode, Description
from hub.domain.contract import BillingPeriod
from hub.domain.order import ChargeType
from hub.domain.product import ProductIds

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

SKU = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[^\x00/]+$")]


class MappingBody(BaseModel):
    """A product's mapping (the SKU is in the path). ``charge_type`` is needed for a new
    SKU; a change sends only what changes (each system its own ids)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=PERIOD_RULE)

    name: Description | None = None
    charge_type: ChargeType | None = None
    billing_period: BillingPeriod | None = None
    currency: CurrencyCode | None = None
    ids: ProductIds | None = None


class MappingList(BaseModel):
    items: list[dict[str, Any]] = Field(description="Each product's state, id and version.")


class LoadResult(BaseModel):
    defined: list[str]
    changed: list[str]
    unchanged: list[str]
    refused: list[dict[str, str]]


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["mappings"])
    reader, writer, admin = require("read"), require("write"), require("admin")
    hub = runtime.hub

    async def released() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(runtime.executor, runtime.inbound.release)

    @router.get(
        "/mappings",
        response_model=MappingList,
        response_class=JSONBytes,
        operation_id="mappings_list",
        responses=problems(401, 403),
        summary="Every product mapping: SKU, charge type, period, currency, each system's ids",
    )
    def list_mappings(caller: Annotated[Caller, Depends(reader)]) -> Response:
        rows = runtime.committer.list_aggregates(ListQuery(entity="product", limit=10_000))
        items = [hub.get("product", row.id) for row in rows]
        return JSONBytes({"items": items})

    @router.put(
        "/mappings/{sku}",
        response_model=dict[str, Any],
        response_class=JSONBytes,
        operation_id="mappings_put",
        responses={
            201: {"description": "Defined (a new SKU)", "model": dict[str, Any]},
            **problems(401, 403, 409, 422),
        },
        summary="Define or change one product's mapping (ids are added, never removed)",
        description=(
            "A new SKU needs its `charge_type` (else 422 `charge-type-required`); a change "
            "sends only what changes. Each system may write what the ownership policy gives "
            "it: the ERP the item master, each system its own id list."
        ),
    )
    async def put_mapping(
        caller: Annotated[Caller, Depends(writer)], sku: SKU, body: MappingBody
    ) -> Response:
        given = body.model_dump(include=body.model_fields_set)
        if body.ids is not None:
            given["ids"] = body.ids
        try:
            request = upsert_request(hub, caller, MappingEntry(sku=sku, **given))
        except MissingChargeType as missing:
            raise input_problem(
                422, "charge-type-required", str(missing), "body.charge_type"
            ) from None
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(runtime.executor, hub.execute, request)
        await released()
        return JSONBytes(result.body, status_code=201 if result.created else 200)

    @router.post(
        "/mappings/load",
        response_model=LoadResult,
        response_class=JSONBytes,
        operation_id="mappings_load",
        responses=problems(401, 403, 422),
        summary="Apply a whole catalogue (the content of ops/mappings/products.yaml) (admin)",
    )
    async def load(caller: Annotated[Caller, Depends(admin)], body: MappingFile) -> Response:
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(
            runtime.executor, apply_mappings, hub, caller, body.products
        )
        await released()
        return JSONBytes(report.view())

    return router
