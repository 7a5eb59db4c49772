"""Small builders for command requests used by integration tests."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from adapters.bootstrap import Runtime
from hub.application.service import Caller, CommandRequest, CommandResult, Hub, Origin

ADMIN = Caller("ops", "admin", frozenset({"read", "write", "admin"}))
CRM = Caller("crm-sync", "crm")
ERP = Caller("erp-sync", "erp")
BILLING = Caller("billing-sync", "billing")


def request(
    runtime: Runtime, entity: str, name: str, data: dict[str, Any], **kw: Any
) -> CommandRequest:
    return hub_request(runtime.hub, entity, name, data, **kw)


def hub_request(
    hub: Hub,
    entity: str,
    name: str,
    data: dict[str, Any],
    *,
    caller: Caller = ADMIN,
    aggregate_id: UUID | None = None,
    key: str | None = None,
    expected_version: int | None = None,
    origin: Origin | None = None,
) -> CommandRequest:
    spec = hub.spec(entity, name)
    return CommandRequest(
        entity=entity,
        name=name,
        payload=spec.input_model.model_validate(data),
        caller=caller,
        aggregate_id=aggregate_id,
        idempotency_key=key,
        expected_version=expected_version,
        origin=origin or Origin(),
    )


def run(runtime: Runtime, entity: str, name: str, data: dict[str, Any], **kw: Any) -> CommandResult:
    return runtime.hub.execute(request(runtime, entity, name, data, **kw))


def new_customer(runtime: Runtime, name: str = "Acme GmbH", **kw: Any) -> UUID:
    result = run(runtime, "customer", "register", {"legal_name": name, "currency": "EUR"}, **kw)
    return UUID(result.body["id"])


def new_order(runtime: Runtime, customer: UUID) -> UUID:
    result = run(
        runtime,
        "order",
        "place",
        {
            "customer_id": str(customer),
            "lines": [
                {
                    "sku": "PLAN-PRO",
                    "quantity": "2",
                    "unit_price": "99.50",
                    "charge_type": "recurring",
                },
            ],
            "currency": "EUR",
            "term_months": 12,
            "start_date": "2026-12-01",
            "booking_date": "2026-11-29",
        },
    )
    return UUID(result.body["id"])


def new_invoice(
    runtime: Runtime, customer: UUID, total: str = "100.00", order: UUID | None = None
) -> UUID:
    order = order or new_order(runtime, customer)
    result = run(
        runtime,
        "invoice",
        "issue",
        {
            "customer_id": str(customer),
            "order_id": str(order),
            "lines": [
                {
                    "sku": "PLAN-PRO",
                    "description": "Pro plan",
                    "quantity": "1",
                    "unit_price": total,
                    "amount": total,
                    "service_period_start": "2026-12-01",
                    "service_period_end": "2026-12-31",
                }
            ],
            "currency": "EUR",
            "subtotal": total,
            "tax": "0.00",
            "total": total,
            "issue_date": "2026-12-01",
            "due_date": "2026-12-31",
        },
    )
    return UUID(result.body["id"])


def new_payment(runtime: Runtime, customer: UUID, amount: str = "150.00") -> UUID:
    result = run(
        runtime,
        "payment",
        "receive",
        {
            "customer_id": str(customer),
            "amount": {"amount": amount, "currency": "EUR"},
            "method": "wire",
            "received_at": "2026-12-05T10:00:00Z",
        },
    )
    return UUID(result.body["id"])


def item(sku: str, rate_plan: str, quantity: str, price: str, charge_type: str) -> dict[str, str]:
    """A monthly contract item."""
    return {
        "sku": sku,
        "rate_plan": rate_plan,
        "quantity": quantity,
        "unit_price": price,
        "billing_period": "month",
        "charge_type": charge_type,
    }


def new_contract(
    runtime: Runtime,
    customer: UUID,
    order: UUID,
    items: list[dict[str, str]],
    term: tuple[str, str] = ("2026-12-01", "2027-11-30"),
    currency: str = "EUR",
) -> UUID:
    """A pending contract (EUR unless said) with ``items`` for the term (first, last day)."""
    body = {
        "order_id": str(order),
        "customer_id": str(customer),
        "currency": currency,
        "items": items,
        "term_start": term[0],
        "term_end": term[1],
    }
    return UUID(run(runtime, "contract", "create", body).body["id"])
