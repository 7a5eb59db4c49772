"""``GET /v1/metrics``: finance metrics per month, currency and customer (projection
``metrics``, view ``metrics_monthly``).

Amounts are exact decimal strings at the currency's exponent (the view keeps minor units);
there is no FX, so every row is one currency. The range is bounded (``MAX_MONTHS``) and the
answer too (``MAX_ROWS``, ``truncated`` says when it was cut), so no call can read the whole
history of every customer at once.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from psycopg import sql
from pydantic import BaseModel, Field
from starlette.responses import Response

from adapters.projections.schema import exists
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from hub.application.service import Caller
from hub.domain.money import EXPONENTS

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

MAX_MONTHS = 120
MAX_ROWS = 5000
MONTH = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"
AMOUNTS = ("bookings", "acv", "billings", "cash", "recognised", "deferred", "receivables")


class MetricsRow(BaseModel):
    month: str = Field(description="YYYY-MM.")
    currency: str
    customer_id: UUID
    bookings: str = Field(description="Exact decimal string at the currency's exponent.")
    acv: str
    billings: str = Field(description="Invoiced less credited, tax excluded.")
    cash: str = Field(description="Received less refunded and charged back.")
    recognised: str
    deferred: str = Field(description="At month end: billed to date less recognised.")
    receivables: str = Field(description="At month end: billed to date less cash applied.")


class MetricsReport(BaseModel):
    items: list[MetricsRow]
    truncated: bool = Field(description=f"True when more than {MAX_ROWS} rows matched.")


def _month(text: str) -> date:
    return date(int(text[:4]), int(text[5:7]), 1)


def _decimal(minor: int, currency: str) -> str:
    places = EXPONENTS[currency]
    return f"{Decimal(minor).scaleb(-places):.{places}f}"


def _bad(field: str, detail: str, code: str = "invalid-range") -> ProblemError:
    errors = [{"field": f"query.{field}", "message": detail, "type": code}]
    return ProblemError(422, code, detail, errors=errors)


def _range(start: str, end: str) -> tuple[date, date]:
    first, last = _month(start), _month(end)
    if last < first:
        raise _bad("to", "to is before from")
    if (last.year - first.year) * 12 + last.month - first.month >= MAX_MONTHS:
        raise _bad("to", f"at most {MAX_MONTHS} months per call")
    return first, last


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reconciliation"])
    reader = require("read")
    schema = runtime.settings.schema_name

    @router.get(
        "/metrics",
        response_model=MetricsReport,
        response_class=JSONBytes,
        operation_id="metrics_monthly",
        responses=problems(401, 403, 422),
        summary="Finance metrics per month, currency and customer (no FX)",
    )
    def metrics(
        caller: Annotated[Caller, Depends(reader)],
        start: Annotated[str, Query(alias="from", pattern=MONTH, description="YYYY-MM.")],
        end: Annotated[
            str,
            Query(
                alias="to",
                pattern=MONTH,
                description=f"YYYY-MM, inclusive: not before from and at most {MAX_MONTHS} "
                "months from it (else 422 invalid-range naming query.to).",
            ),
        ],
        currency: Annotated[
            str | None,
            Query(
                pattern=r"^[A-Z]{3}$",
                json_schema_extra={"enum": sorted(EXPONENTS)},
                description="Only this currency (ISO 4217).",
            ),
        ] = None,
        customer: Annotated[UUID | None, Query(description="Only this customer's.")] = None,
    ) -> Response:
        first, last = _range(start, end)
        if currency is not None and currency not in EXPONENTS:
            raise _bad("currency", f"unknown currency {currency}", "unknown-currency")
        where = [sql.SQL("month BETWEEN %s AND %s")]
        params: list[Any] = [first, last]
        for column, value in (("currency", currency), ("customer_id", customer)):
            if value is not None:
                where.append(sql.SQL(f"{column} = %s"))
                params.append(value)
        with runtime.connection() as conn:
            if not exists(conn, schema, "metrics_monthly"):
                return JSONBytes({"items": [], "truncated": False})
            query = sql.SQL(
                "SELECT month, currency, customer_id, {} FROM {} WHERE {} "
                "ORDER BY currency, customer_id, month LIMIT %s"
            ).format(
                sql.SQL(", ").join(sql.Identifier(a) for a in AMOUNTS),
                sql.Identifier(schema, "metrics_monthly"),
                sql.SQL(" AND ").join(where),
            )
            rows = conn.execute(query, (*params, MAX_ROWS + 1)).fetchall()
        items = [
            {"month": row[0].strftime("%Y-%m"), "currency": row[1], "customer_id": row[2]}
            | {name: _decimal(v, row[1]) for name, v in zip(AMOUNTS, row[3:], strict=True)}
            for row in rows[:MAX_ROWS]
        ]
        return JSONBytes({"items": items, "truncated": len(rows) > MAX_ROWS})

    return router
