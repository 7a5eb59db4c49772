"""One whole deal for the lineage tests: opportunity, order, contract, invoice, payment,
credit note and refund, each with the ids the source systems give them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from adapters.bootstrap import Runtime
from hub.application.service import Origin
from tests.integration.commands import item, new_contract, new_customer, run

EUR = "EUR"


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": EUR}


@dataclass(frozen=True)
class Deal:
    customer: UUID
    order: UUID
    contract: UUID
    invoice: UUID
    payment: UUID
    before_payment: datetime
    """An instant after the invoice was recorded and before the payment was."""
    opportunity: str = "006OPP0001"
    erp_order: str = "SO-1001"
    subscription: str = "sub_1001"
    invoice_number: str = "INV-1001"
    erp_invoice: str = "ERP-INV-1001"
    payment_reference: str = "pi_1001"
    credit_note: str = "CN-1001"
    refund_reference: str = "re_1001"


def _id(runtime: Runtime, entity: str, name: str, body: dict[str, object], **kw: object) -> UUID:
    return UUID(run(runtime, entity, name, body, **kw).body["id"])


def whole_deal(runtime: Runtime, delivery: int = 41) -> Deal:
    """The deal; the order is placed by inbound delivery ``delivery`` and its acceptance is
    caused by the OrderPlaced event (as a process manager's command is)."""
    d = Deal(UUID(int=0), UUID(int=0), UUID(int=0), UUID(int=0), UUID(int=0), datetime.now(UTC))
    customer = new_customer(runtime, "Lineage Corp")
    order_body = {
        "customer_id": str(customer),
        "opportunity_id": d.opportunity,
        "lines": [
            {"sku": "PLAN-PRO", "quantity": "1", "unit_price": "100.00", "charge_type": "recurring"}
        ],
        "currency": EUR,
        "term_months": 12,
        "start_date": "2026-12-01",
        "booking_date": "2026-11-29",
    }
    placed = Origin(source_record_id=d.opportunity, causation_id=f"inbound:{delivery}")
    order = _id(runtime, "order", "place", order_body, origin=placed)
    cause = str(runtime.hub.history("order", order)[0]["event_id"])
    run(
        runtime,
        "order",
        "accept",
        {"erp_order_number": d.erp_order},
        aggregate_id=order,
        origin=Origin(causation_id=cause, correlation_id=d.opportunity),
    )
    contract = new_contract(
        runtime, customer, order, [item("PLAN-PRO", "PRO-M", "1", "100.00", "recurring")]
    )
    activate = {"billing_subscription_id": d.subscription}
    run(runtime, "contract", "activate", activate, aggregate_id=contract)
    invoice_body = {
        "customer_id": str(customer),
        "order_id": str(order),
        "contract_id": str(contract),
        "lines": [{"sku": "PLAN-PRO", "quantity": "1", "unit_price": "100.00", "amount": "100.00"}],
        "currency": EUR,
        "subtotal": "100.00",
        "tax": "0.00",
        "total": "100.00",
        "issue_date": "2026-12-01",
        "due_date": "2026-12-31",
        "source_number": d.invoice_number,
    }
    invoice = _id(runtime, "invoice", "issue", invoice_body)
    run(runtime, "invoice", "post", {"erp_document_number": d.erp_invoice}, aggregate_id=invoice)
    time.sleep(0.01)
    before_payment = datetime.now(UTC)
    time.sleep(0.01)
    payment_body = {
        "customer_id": str(customer),
        "amount": money("100.00"),
        "method": "card",
        "received_at": "2026-12-05T10:00:00+00:00",
        "reference": d.payment_reference,
    }
    payment = _id(runtime, "payment", "receive", payment_body)
    apply = {"invoice_id": str(invoice), "amount": money("100.00")}
    run(runtime, "payment", "apply", apply, aggregate_id=payment)
    credit = {
        "amount": money("10.00"),
        "credit_note_number": d.credit_note,
        "lines": [{"line": 0, "amount": "10.00"}],
        "issue_date": "2026-12-10",
    }
    run(runtime, "invoice", "credit", credit, aggregate_id=invoice)
    refund = {
        "amount": money("10.00"),
        "reference": d.refund_reference,
        "credit_note_number": d.credit_note,
        "refunded_at": "2026-12-12T10:00:00+00:00",
    }
    run(runtime, "payment", "refund", refund, aggregate_id=payment)
    return Deal(customer, order, contract, invoice, payment, before_payment)
