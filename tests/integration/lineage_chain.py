"""One deal from opportunity to refund, built through the hub's commands: the chain the
lineage tests (projection and API) look up from every end."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from adapters.bootstrap import Runtime
from hub.application.service import Origin
from tests.integration.commands import item, new_contract, new_customer, run

OPPORTUNITY = "006OPP0001"
ERP_ORDER = "SO-7001"
SUBSCRIPTION = "sub_lin_1"
INVOICE_NUMBER = "INV-7001"
ERP_DOCUMENT = "ERPDOC-7001"
PAYMENT_REFERENCE = "PAY-REF-7001"
REFUND_REFERENCE = "RF-7001"
CREDIT_NOTE = "CN-7001"
INVOICE_CREDIT = "CN-7002"


@dataclass(frozen=True)
class Chain:
    customer: UUID
    order: UUID
    contract: UUID
    invoice: UUID
    payment: UUID


def build_chain(runtime: Runtime, delivery: str = "delivery-7001") -> Chain:
    """opportunity -> order -> contract -> invoice -> payment -> refund (paying out a credit
    note), and a credit note on the invoice; the order was caused by the inbound
    ``delivery``."""
    customer = new_customer(runtime)
    body = {
        "customer_id": str(customer),
        "opportunity_id": OPPORTUNITY,
        "lines": [
            {"sku": "PLAN-PRO", "quantity": "1", "unit_price": "100.00", "charge_type": "recurring"}
        ],
        "currency": "EUR",
        "term_months": 12,
        "start_date": "2026-12-01",
        "booking_date": "2026-11-29",
    }
    origin = Origin(  # as the CRM adapters place it: the opportunity is the source record
        source_record_id=OPPORTUNITY,
        correlation_id=OPPORTUNITY,
        causation_id=delivery,
        source_event_id=delivery,
    )
    order = UUID(run(runtime, "order", "place", body, origin=origin).body["id"])
    run(runtime, "order", "validate", {}, aggregate_id=order)
    run(runtime, "order", "accept", {"erp_order_number": ERP_ORDER}, aggregate_id=order)
    items = [item("PLAN-PRO", "PRO-M", "1", "100.00", "recurring")]
    contract = new_contract(runtime, customer, order, items)
    run(
        runtime,
        "contract",
        "activate",
        {"billing_subscription_id": SUBSCRIPTION},
        aggregate_id=contract,
    )
    invoice_body = {
        "customer_id": str(customer),
        "contract_id": str(contract),
        "order_id": str(order),
        "source_number": INVOICE_NUMBER,
        "lines": [{"sku": "PLAN-PRO", "quantity": "1", "unit_price": "100.00", "amount": "100.00"}],
        "currency": "EUR",
        "subtotal": "100.00",
        "tax": "0.00",
        "total": "100.00",
        "issue_date": "2026-12-01",
        "due_date": "2026-12-31",
    }
    invoice = UUID(run(runtime, "invoice", "issue", invoice_body).body["id"])
    run(runtime, "invoice", "post", {"erp_document_number": ERP_DOCUMENT}, aggregate_id=invoice)
    money = {"amount": "100.00", "currency": "EUR"}
    received = {
        "customer_id": str(customer),
        "amount": money,
        "method": "wire",
        "received_at": "2026-12-05T10:00:00Z",
        "reference": PAYMENT_REFERENCE,
    }
    payment = UUID(run(runtime, "payment", "receive", received).body["id"])
    run(
        runtime,
        "payment",
        "apply",
        {"invoice_id": str(invoice), "amount": money},
        aggregate_id=payment,
    )
    run(
        runtime,
        "payment",
        "refund",
        {
            "amount": {"amount": "20.00", "currency": "EUR"},
            "reference": REFUND_REFERENCE,
            "credit_note_number": CREDIT_NOTE,
        },
        aggregate_id=payment,
    )
    credit = {
        "amount": {"amount": "10.00", "currency": "EUR"},
        "credit_note_number": INVOICE_CREDIT,
    }
    run(runtime, "invoice", "credit", credit, aggregate_id=invoice)
    return Chain(customer, order, contract, invoice, payment)
