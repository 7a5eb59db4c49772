"""``GET /v1/metrics``: bookings, ACV, billings, cash, recognised and deferred revenue and
receivables per month and currency (never converted), optionally per customer or contract.

Read from the ``metrics_monthly`` view (see projections/metrics/views.py): the view is dense
per group, so the month-end balances (deferred, receivables) of several groups add up. The
view holds minor units; this route turns them into exact decimal strings at the currency's
exponent (``"1234.50"`` USD, ``"360000"`` JPY).

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from psycopg import sql
from pydantic import BaseModel, Field
from starlette.responses import Response

from adapters.projections.period_close import closed_months
from adapters.projections.schema import exists
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.windows import require_forward
from hub.application.service import Caller
from hub.domain.money import EXPONENTS

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

MAX_MONTHS = 120
MAX_ITEMS = 10_000
MONTH = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$"
#: Only currencies Concord knows (an unknown code is refused by the schema, so by name).
CURRENCIES = f"^({'|'.join(sorted(EXPONENTS))})$"
MEASURES = ("bookings", "acv", "billings", "cash", "recognised", "deferred", "receivables")


class MetricsRow(BaseModel):
    month: str = Field(description="YYYY-MM.")
    currency: str
    customer_id: UUID | None = Field(None, description="With group=customer or contract.")
    contract_id: UUID | None = Field(
        None, description="With group=contract; null for cash not applied to an invoice."
    )
    bookings: str = Field(description="Exact decimal string at the currency's exponent.")
    acv: str
    billings: str = Field(description="Tax excluded, net of credit notes.")
    cash: str
    recognised: str
    deferred: str = Field(description="At the month end.")
    receivables: str = Field(description="At the month end.")
    closed: bool = Field(
        False, description="The month is closed (`concord close`): the figures are frozen."
    )
    adjustments: dict[str, str] = Field(
        default_factory=dict,
        description="Closed months only: what events recorded after the close changed, per "
        "measure (live - frozen, exact decimal strings); absent measures did not change.",
    )


class MetricsReport(BaseModel):
    start: str = Field(alias="from")
    to: str
    group: Literal["currency", "customer", "contract"]
    items: list[MetricsRow] = Field(description=f"At most {MAX_ITEMS}, by month then group.")
    truncated: bool = Field(description="More rows matched than were returned.")


def decimal_text(minor: Any, currency: str) -> str:
    """Minor units as an exact decimal string with exactly the currency's decimals."""
    places = EXPONENTS[currency]
    return str(Decimal(int(minor)).scaleb(-places).quantize(Decimal(1).scaleb(-places)))


def _month(text: str) -> date:
    return date(int(text[:4]), int(text[5:7]), 1)


def _shift(month: date, months: int) -> date:
    index = month.year * 12 + month.month - 1 + months
    return date(index // 12, index % 12 + 1, 1) if index >= 12 else date(1, 1, 1)


def _text(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["metrics"])
    reader = require("read")
    schema = runtime.settings.schema_name

    @router.get(
        "/metrics",
        response_model=MetricsReport,
        response_class=JSONBytes,
        operation_id="metrics_report",
        responses=problems(401, 403, 422),
        summary="Finance metrics per month and currency (optionally per customer/contract)",
        description=f"A window of at most {MAX_MONTHS} months (a wider one is cut to the "
        f"{MAX_MONTHS} months ending at `to`; `from` in the answer says where it starts; a "
        "`from` after `to` is 422 `invalid-window`). Amounts are never converted between "
        "currencies. Empty before the metrics projection first ran.",
    )
    def metrics(
        caller: Annotated[Caller, Depends(reader)],
        start: Annotated[str, Query(alias="from", pattern=MONTH, description="YYYY-MM.")],
        end: Annotated[str, Query(alias="to", pattern=MONTH, description="YYYY-MM, inclusive.")],
        currency: Annotated[
            str | None, Query(pattern=CURRENCIES, description="Only this ISO 4217 currency.")
        ] = None,
        customer: Annotated[UUID | None, Query(description="Only this customer's.")] = None,
        group: Annotated[
            Literal["currency", "customer", "contract"],
            Query(description="Rows per month and currency, and customer or contract."),
        ] = "currency",
    ) -> Response:
        last = _month(end)
        require_forward(_month(start), last, start, end)
        first = max(_month(start), _shift(last, 1 - MAX_MONTHS))
        keys = {
            "currency": [],
            "customer": ["customer_id"],
            "contract": ["customer_id", "contract_id"],
        }[group]
        report: dict[str, Any] = {"from": _text(first), "to": end, "group": group, "items": []}
        report["truncated"] = False
        where = [sql.SQL("month BETWEEN %s AND %s")]
        params: list[Any] = [first, last]
        for column, value in (("currency", currency), ("customer_id", customer)):
            if value is not None:
                where.append(sql.SQL(f"{column} = %s"))
                params.append(value)
        by = sql.SQL(", ").join(sql.Identifier(c) for c in ["month", "currency", *keys])

        def sums(conn: Any, relation: str) -> list[tuple[Any, ...]]:
            query = sql.SQL(
                "SELECT {}, {} FROM {} WHERE {} GROUP BY {} ORDER BY {} LIMIT %s"
            ).format(
                by,
                sql.SQL(", ").join(sql.SQL("sum({})").format(sql.Identifier(m)) for m in MEASURES),
                sql.Identifier(schema, relation),
                sql.SQL(" AND ").join(where),
                by,
                by,
            )
            rows: list[tuple[Any, ...]] = conn.execute(query, (*params, MAX_ITEMS + 1)).fetchall()
            return rows

        with runtime.connection() as conn:
            if not exists(conn, schema, "metrics_monthly"):
                return JSONBytes(report)
            found = sums(conn, "metrics_monthly")
            closed = closed_months(conn, schema, first, last)
            frozen = sums(conn, "concord_period_close_figures") if closed else []
        width = 2 + len(keys)
        live = {tuple(r[:width]): r[width:] for r in found}
        kept = {tuple(r[:width]): r[width:] for r in frozen if r[0] in closed}
        merged = sorted(
            set(live) | set(kept),
            key=lambda k: tuple("" if v is None else str(v) for v in k),
        )
        report["truncated"] = len(found) > MAX_ITEMS or len(merged) > MAX_ITEMS
        zero = (0,) * len(MEASURES)
        for key in merged[:MAX_ITEMS]:
            month, code, *rest = key
            item: dict[str, Any] = {"month": _text(month), "currency": code}
            item |= dict(zip(keys, rest, strict=True))
            shown = kept.get(key, zero) if month in closed else live[key]
            item |= {m: decimal_text(v, code) for m, v in zip(MEASURES, shown, strict=True)}
            item["closed"], item["adjustments"] = month in closed, {}
            if month in closed:
                now = live.get(key, zero)
                item["adjustments"] = {
                    m: decimal_text(int(n) - int(f), code)
                    for m, n, f in zip(MEASURES, now, shown, strict=True)
                    if int(n) != int(f)
                }
            report["items"].append(item)
        return JSONBytes(report)

    return router
