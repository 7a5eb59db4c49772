"""``GET /v1/slas``: order-to-activation and invoice-to-cash, per month and breaching now.

The projection stores timings without a clock (views ``sla_monthly``,
``sla_order_activation``, ``sla_invoice_cash``); "now" is read here, at query time, to list
what breaches the thresholds of the settings (CONCORD_SLA_ORDER_TO_ACTIVATION_HOURS,
CONCORD_SLA_INVOICE_TO_CASH_DAYS): items done too slowly, and items still open for longer.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from psycopg import sql
from pydantic import BaseModel, Field
from starlette.responses import Response

from adapters.projections.schema import exists
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.windows import require_forward
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

MAX_MONTHS = 240  # months per call (p50/p90 rows per SLA); a wider range is cut at the start
MAX_BREACHING = 100


class MonthModel(BaseModel):
    sla: Literal["order_to_activation", "invoice_to_cash"]
    month: date = Field(description="First day of the month (of placing / of issue).")
    unit: Literal["seconds", "days"]
    items: int = Field(description="Completed items of that month.")
    p50: int
    p90: int


class BreachModel(BaseModel):
    sla: Literal["order_to_activation", "invoice_to_cash"]
    object_id: UUID = Field(description="The contract (activation) or invoice (cash).")
    customer_id: UUID
    started: str = Field(description="placed_at (activation) or issue_date (cash).")
    done: datetime | None = Field(description="Activated / paid in full; null while open.")
    duration: int = Field(description="In the SLA's unit; for an open item, its age now.")
    unit: Literal["seconds", "days"]


class SlaReport(BaseModel):
    thresholds: dict[str, int] = Field(
        description="order_to_activation_hours and invoice_to_cash_days from the settings."
    )
    months: list[MonthModel] = Field(description=f"At most the {MAX_MONTHS} latest months.")
    breaching: list[BreachModel] = Field(description=f"At most {MAX_BREACHING} per SLA.")


_ACTIVATION = (
    "SELECT 'order_to_activation', contract_id, customer_id, placed_at::text, activated_at, "
    "coalesce(duration_seconds, EXTRACT(epoch FROM %(now)s - placed_at)::bigint), 'seconds' "
    "FROM {} WHERE month BETWEEN %(start)s AND %(end)s AND coalesce(duration_seconds, "
    "EXTRACT(epoch FROM %(now)s - placed_at)::bigint) > %(hours)s * 3600 "
    "ORDER BY placed_at, contract_id LIMIT %(limit)s"
)
_CASH = (
    "SELECT 'invoice_to_cash', invoice_id, customer_id, issue_date::text, paid_at, "
    "coalesce(duration_days, %(today)s - issue_date), 'days' FROM {} "
    "WHERE month BETWEEN %(start)s AND %(end)s "
    "AND coalesce(duration_days, %(today)s - issue_date) > %(days)s "
    "ORDER BY issue_date, invoice_id LIMIT %(limit)s"
)
_BREACH_FIELDS = ("sla", "object_id", "customer_id", "started", "done", "duration", "unit")


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["reconciliation"])
    reader = require("read")
    schema = runtime.settings.schema_name
    hours = runtime.settings.sla_order_to_activation_hours
    days = runtime.settings.sla_invoice_to_cash_days

    @router.get(
        "/slas",
        response_model=SlaReport,
        response_class=JSONBytes,
        operation_id="slas_report",
        responses=problems(401, 403, 422),
        summary="SLA timings: p50/p90 per month and the items breaching now",
    )
    def slas(
        caller: Annotated[Caller, Depends(reader)],
        start: Annotated[
            date | None,
            Query(
                alias="from",
                description="First month (its day is ignored); default: to's. A from after "
                "to is 422 invalid-window (query.from).",
            ),
        ] = None,
        end: Annotated[
            date | None, Query(alias="to", description="Last month (inclusive); default: now.")
        ] = None,
    ) -> Response:
        now = datetime.now(UTC)  # at query time: the views hold no clock
        last = (end or now.date()).replace(day=1)
        first = (start or last).replace(day=1)
        require_forward(first, last, first.isoformat()[:7], last.isoformat()[:7])
        report: dict[str, Any] = {
            "thresholds": {"order_to_activation_hours": hours, "invoice_to_cash_days": days},
            "months": [],
            "breaching": [],
        }
        params: dict[str, Any] = {"now": now, "today": now.date(), "start": first, "end": last}
        params |= {"hours": hours, "days": days, "limit": MAX_BREACHING}
        with runtime.connection() as conn:
            if not exists(conn, schema, "sla_monthly"):
                return JSONBytes(report)
            months = conn.execute(
                sql.SQL(
                    "SELECT sla, month, unit, items, p50, p90 FROM {} "
                    "WHERE month BETWEEN %s AND %s ORDER BY month DESC, sla LIMIT %s"
                ).format(sql.Identifier(schema, "sla_monthly")),
                (first, last, 2 * MAX_MONTHS),
            ).fetchall()
            names = ("sla", "month", "unit", "items", "p50", "p90")
            found_months = [dict(zip(names, row, strict=True)) for row in months]
            report["months"] = sorted(found_months, key=lambda m: (m["sla"], m["month"]))
            for statement, view in (
                (_ACTIVATION, "sla_order_activation"),
                (_CASH, "sla_invoice_cash"),
            ):
                found = conn.execute(
                    sql.SQL(statement).format(sql.Identifier(schema, view)), params
                ).fetchall()
                report["breaching"] += [dict(zip(_BREACH_FIELDS, r, strict=True)) for r in found]
        return JSONBytes(report)

    return router
