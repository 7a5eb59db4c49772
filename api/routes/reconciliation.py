"""``GET /v1/reconciliation``: the reconciliation breaks (projection ``reconciliation``).

Read from the live ``recon_breaks`` table, so the API shows exactly what BI tools see;
before the projection's runner first created its tables the list is simply empty. Paged by
the break key (stable: code and object), filtered by status, code and customer.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from psycopg import sql
from pydantic import BaseModel, Field
from starlette.responses import Response

from adapters.projections.schema import exists
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

Code = Literal[
    "OPP_AMOUNT_MISMATCH",
    "ORDER_CONTRACT_MISMATCH",
    "INVOICE_MISMATCH",
    "PAYMENT_OVERAPPLIED",
    "PAYMENT_UNAPPLIED",
    "INVOICE_WITHOUT_ORDER",
]
_COLUMNS = (
    "break_key",
    "code",
    "object_kind",
    "object_id",
    "customer_id",
    "currency",
    "expected_amount",
    "expected_by",
    "actual_amount",
    "actual_by",
    "detail",
    "opened_at",
    "closed_at",
    "lineage",
)
MAX_LIMIT = 500


class BreakModel(BaseModel):
    break_key: str = Field(description="code:object_id, stable.")
    code: Code
    object_kind: Literal["order", "contract", "invoice", "payment"]
    object_id: UUID
    customer_id: UUID
    currency: str | None = Field(description="NULL when the amounts are quantities.")
    expected_amount: str | None = Field(description="Exact decimal string; what expected_by says.")
    expected_by: str
    actual_amount: str | None = Field(description="Exact decimal string; what actual_by says.")
    actual_by: str
    detail: str
    opened_at: datetime
    closed_at: datetime | None = Field(description="NULL while open.")
    lineage: str = Field(description="Lineage link of the object.")


class BreakList(BaseModel):
    items: list[BreakModel]
    next: str | None = Field(description="Link to the next page; null on the last.")


def _cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if ":" not in key:
        detail = "the cursor is not one this API returned; start again without it"
        raise ProblemError(
            422,
            "invalid-cursor",
            detail,
            errors=[{"field": "query.cursor", "message": detail, "type": "invalid-cursor"}],
        )
    return key


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reconciliation"])
    reader = require("read")
    schema = runtime.settings.schema_name

    @router.get(
        "/reconciliation",
        response_model=BreakList,
        response_class=JSONBytes,
        operation_id="reconciliation_list",
        responses=problems(401, 403, 422),
        summary="Reconciliation breaks: disagreements between systems, open or closed",
    )
    def breaks(
        request: Request,
        caller: Annotated[Caller, Depends(reader)],
        status: Annotated[
            Literal["open", "closed", "all"], Query(description="Open, closed or all breaks.")
        ] = "open",
        code: Annotated[Code | None, Query(description="Only this reason code.")] = None,
        customer: Annotated[UUID | None, Query(description="Only this customer's.")] = None,
        cursor: Annotated[
            str | None,
            Query(
                max_length=200,
                pattern=r"^[A-Za-z0-9_-]+$",
                description="Opaque: the `next` link of the previous page carries it.",
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 100,
    ) -> Response:
        after = None if cursor is None else _after(cursor)
        where: list[sql.Composable] = []
        params: list[Any] = []
        if status != "all":
            where.append(sql.SQL(f"closed_at IS {'NULL' if status == 'open' else 'NOT NULL'}"))
        for column, value in (("code", code), ("customer_id", customer), ("break_key", after)):
            if value is not None:
                op = ">" if column == "break_key" else "="
                where.append(sql.SQL(f"{column} {op} %s"))
                params.append(value)
        with runtime.connection() as conn:
            if not exists(conn, schema, "recon_breaks"):
                return JSONBytes({"items": [], "next": None})
            query = sql.SQL("SELECT {} FROM {} {} ORDER BY break_key LIMIT %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in _COLUMNS),
                sql.Identifier(schema, "recon_breaks"),
                sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
            )
            rows = conn.execute(query, (*params, limit)).fetchall()
        items = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
        following = None
        if len(rows) == limit:
            url = request.url.include_query_params(cursor=_cursor(rows[-1][0]))
            following = f"{url.path}?{url.query}"
        return JSONBytes({"items": items, "next": following})

    return router
