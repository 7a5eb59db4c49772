"""``GET /v1/processes/{id}``: where a deal's quote-to-cash process stands.

``id`` is any id of the deal: the order (process) id, the contract id, the CRM opportunity
id, the ERP order number or billing's subscription id — or a customer id when the customer
has one deal (several: 409 listing them). The answer has the steps with their status and
SLA, the milestones, what the process waits for, the commands it decided and what became of
each (attempts, next retry), its own event log, and the deliveries to the target systems
that are being retried or were dead-lettered.

No ``from __future__ import annotations``: signatures use the builder's key dependency.
"""

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.responses import Response

from adapters.process.reads import find_processes, process_view
from adapters.process.tables import PROCESSES
from adapters.projections.schema import exists
from api.errors import ProblemError
from api.errors import problem_responses as problems
from api.responses import JSONBytes
from api.routes import any_id
from hub.application.service import Caller

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime


class StepModel(BaseModel):
    step: str = Field(
        description="validate, erp_order, contract, billing_subscription, first_invoice or payment."
    )
    status: str = Field(description="pending, started, waiting, sent, done, failed, skipped.")
    detail: str | None
    started_at: datetime | None
    done_at: datetime | None
    deadline_at: datetime | None = Field(description="The step's SLA.")
    overdue: bool | None = Field(description="Not done and past its deadline.")


class CommandModel(BaseModel):
    command_id: str
    entity: str
    name: str
    aggregate_id: str
    decided_at: datetime
    status: str = Field(description="pending, done, refused (with error) or retrying.")
    attempts: int
    error: str | None
    next_retry_at: datetime | None


class ProcessEventModel(BaseModel):
    seq: int
    type: str
    step: str | None
    detail: dict[str, Any]
    cause_event_id: str
    at: datetime


class DeliveryModel(BaseModel):
    target: str = Field(description="The subscriber (target system): erp, crm, billing ...")
    aggregate: str
    aggregate_id: str
    state: str = Field(description="retrying, dead_letter, draining ...")
    attempts: int
    error: str | None = Field(description="The target's last error (admin keys only).")
    since: datetime
    updated_at: datetime


class ProcessModel(BaseModel):
    process_id: str
    opportunity_id: str | None
    customer_id: str
    status: str = Field(description="running, waiting, rejected, on_hold, cancelled, done.")
    step: str | None
    waiting_for: list[str]
    reason: str | None
    currency: str
    erp_order_number: str | None
    contract_id: str | None
    billing_subscription_id: str | None
    ordered_at: datetime | None
    accepted_at: datetime | None
    activated_at: datetime | None
    first_invoice_at: datetime | None
    paid_at: datetime | None
    started_at: datetime
    changed_at: datetime
    steps: list[StepModel]
    commands: list[CommandModel]
    events: list[ProcessEventModel] = Field(description="The process's own history, oldest first.")
    deliveries: list[DeliveryModel] = Field(
        description="Deliveries of the deal's order, contract and customer not through yet."
    )


def build(runtime: "Runtime", require: Callable[[str], Callable[..., Any]]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["processes"])
    reader = require("read")
    schema = runtime.settings.schema_name

    @router.get(
        "/processes/{id}",
        response_model=ProcessModel,
        response_class=JSONBytes,
        operation_id="process_get",
        responses=problems(401, 403, 404, 409, 422),
        summary="A deal's quote-to-cash process: steps, status, attempts, what it waits for",
    )
    def process(
        caller: Annotated[Caller, Depends(reader)],
        id: Annotated[
            str,
            any_id(
                "Any id of the deal (order, contract, opportunity, ERP order "
                "number, subscription, or a customer with one deal)."
            ),
        ],
    ) -> Response:
        with runtime.connection() as conn:
            found = find_processes(conn, schema, id) if exists(conn, schema, PROCESSES.name) else []
            if not found:
                raise ProblemError(404, "not-found", f"no deal's process has the id {id!r} (yet)")
            if len(found) > 1:
                errors = [
                    {"field": "path.id", "message": f"process {p}", "type": "ambiguous-id"}
                    for p in found
                ]
                raise ProblemError(
                    409,
                    "ambiguous-id",
                    f"the id {id!r} names {len(found)} deals; ask by one of their process ids",
                    errors=errors,
                )
            view = process_view(conn, schema, found[0])
        if view is None:  # pragma: no cover - found a moment ago
            raise ProblemError(404, "not-found", f"no deal's process has the id {id!r}")
        if "admin" not in caller.scopes:
            # A target's error text is an operator's (admin-only at the dead letters, as
            # the payload it may quote): other readers see that a delivery is stuck.
            for delivery in view["deliveries"]:
                delivery["error"] = None
        return JSONBytes(view)

    return router
