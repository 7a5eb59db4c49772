"""Invoice use cases: input models and the command specs the API and batch ingest expose.

Issuing loads the customer, and the contract and order it bills, so an invoice cannot point
at records that do not exist or belong to another customer (the lineage projection follows
these ids from opportunity to cash). Payments are applied through the payment commands
(payments.py), which change the invoice in the same unit of work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from uuid import UUID

from pydantic import AwareDatetime, Field

from hub.application.commands import CommandInput, CommandSpec, Handler, InputT, on
from hub.application.merges import same_customer, survivor
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.bounded import MAX_INVOICE_LINES, Amount, Code, CurrencyCode, Reason, RequiredCode
from hub.domain.contract import Contract
from hub.domain.errors import InvalidValue
from hub.domain.invoice import (
    CreditNoteLine,
    ErpAmounts,
    Invoice,
    InvoiceLine,
    PaymentAttempt,
    TaxStatus,
)
from hub.domain.money import Money
from hub.domain.order import Order
from hub.domain.provenance import Stamp


class IssueInvoice(CommandInput):
    customer_id: UUID
    contract_id: UUID | None = None
    order_id: UUID | None = None
    lines: list[InvoiceLine] = Field(min_length=1, max_length=MAX_INVOICE_LINES)
    currency: CurrencyCode
    subtotal: Amount
    tax: Amount
    total: Amount
    issue_date: date
    due_date: date
    source_number: Code | None = None
    tax_status: TaxStatus | None = None


class PostInvoice(CommandInput):
    """The ERP's posting; its amounts when it sends them (``total``, optionally ``subtotal``
    and ``tax``), recorded beside billing's, a later save with others as a revision."""

    erp_document_number: RequiredCode
    total: Money | None = None
    subtotal: Money | None = None
    tax: Money | None = None

    def erp_amounts(self) -> ErpAmounts | None:
        if self.total is None:
            if self.subtotal is not None or self.tax is not None:
                raise InvalidValue("subtotal and tax come with the ERP's total", field="total")
            return None
        return ErpAmounts(total=self.total, subtotal=self.subtotal, tax=self.tax)


class VoidInvoice(CommandInput):
    reason: Reason | None = None


class CreditInvoice(CommandInput):
    amount: Money
    credit_note_number: Code | None = None
    reason: Reason | None = None
    lines: list[CreditNoteLine] = Field(default_factory=list, max_length=MAX_INVOICE_LINES)
    issue_date: date | None = None


class RecordTax(CommandInput):
    status: TaxStatus
    reason: Reason | None = None


class RecordPaymentFailure(CommandInput):
    attempted_at: AwareDatetime
    amount: Money
    reason: Reason | None = None
    attempt: int | None = Field(default=None, ge=1, le=1000)


class MarkUncollectible(CommandInput):
    reason: Reason | None = None


def _issue(stamp: Stamp, invoice_id: UUID, data: IssueInvoice, unit: Unit) -> Aggregate:
    """A fact from billing: a merged customer's invoice is recorded on the survivor."""
    customer = survivor(unit, data.customer_id, field="customer_id")
    if data.contract_id is not None:
        contract = unit.get(Contract, data.contract_id, field="contract_id")
        if not same_customer(unit, contract.customer_id, customer.id, field="contract_id"):
            raise InvalidValue(
                f"the contract belongs to customer {contract.customer_id}", field="contract_id"
            )
    order_lines = 0
    if data.order_id is not None:
        order = unit.get(Order, data.order_id, field="order_id")
        if not same_customer(unit, order.customer_id, customer.id, field="order_id"):
            raise InvalidValue(
                f"the order belongs to customer {order.customer_id}", field="order_id"
            )
        order_lines = len(order.lines)
    _check_billed(data, order_lines)
    return Invoice.issue(stamp, invoice_id, **(dict(data) | {"customer_id": customer.id}))


def _check_billed(data: IssueInvoice, order_lines: int) -> None:
    """A line names an order line of the invoice's order, or an item of its contract."""
    for index, line in enumerate(data.lines):
        if line.order_line is not None and line.order_line >= order_lines:
            raise InvalidValue(
                f"the order has {order_lines} lines; there is no line {line.order_line}"
                if data.order_id is not None
                else "an order line needs the invoice's order_id",
                field=f"lines.{index}.order_line",
            )
        if line.contract_item_sku is not None and data.contract_id is None:
            raise InvalidValue(
                "a contract item needs the invoice's contract_id",
                field=f"lines.{index}.contract_item_sku",
            )


def _invoice(handler: Callable[[Invoice, Stamp, InputT], None]) -> Handler[InputT]:
    """Adapt ``handler(invoice, stamp, data)`` to the generic handler signature."""
    return on(Invoice, lambda aggregate, stamp, data, unit: handler(aggregate, stamp, data))


SPECS = [
    CommandSpec(
        "invoice",
        "issue",
        IssueInvoice,
        "Record an invoice the billing system issued",
        create=_issue,
        writes=(
            "customer_id",
            "contract_id",
            "order_id",
            "lines",
            "currency",
            "subtotal",
            "tax",
            "total",
            "issue_date",
            "due_date",
            "source_number",
            "tax_status",
        ),
    ),
    CommandSpec(
        "invoice",
        "post",
        PostInvoice,
        "Record the ERP document the invoice was posted as",
        handle=_invoice(lambda i, s, d: i.post(s, d.erp_document_number, d.erp_amounts())),
        writes=("erp_document_number", "erp_amounts"),
        description="The ERP's amounts (total, optionally subtotal and tax) are recorded as "
        "its copy even when they differ from billing's (a reconciliation break); the same "
        "document saved again with other amounts records InvoiceErpRevised.",
    ),
    CommandSpec(
        "invoice",
        "void",
        VoidInvoice,
        "Void an invoice nothing was paid or credited on",
        handle=_invoice(lambda i, s, d: i.void(s, d.reason)),
        writes=("status",),
    ),
    CommandSpec(
        "invoice",
        "credit",
        CreditInvoice,
        "Record a credit note (optionally naming the lines it credits)",
        handle=_invoice(
            lambda i, s, d: i.credit(
                s,
                d.amount,
                credit_note_number=d.credit_note_number,
                reason=d.reason,
                lines=d.lines,
                issue_date=d.issue_date,
            )
        ),
        writes=("amount_credited", "balance"),
        description="Up to the invoice's total less earlier notes; beyond the open balance "
        "(a note after payment) the excess is owed to the customer as credit_balance.",
    ),
    CommandSpec(
        "invoice",
        "record_tax",
        RecordTax,
        "Record the tax calculation's outcome (failed holds the invoice)",
        handle=_invoice(lambda i, s, d: i.record_tax(s, d.status, d.reason)),
        # "tax_calculation", not "tax_status": the ERP reports it, billing states it on issue.
        writes=("tax_calculation",),
        description="failed: the invoice is held and post is refused (409) until a later "
        "calculated or not_applicable report clears the hold.",
    ),
    CommandSpec(
        "invoice",
        "record_payment_failure",
        RecordPaymentFailure,
        "Record a failed attempt to collect the invoice",
        handle=_invoice(lambda i, s, d: i.record_payment_failure(s, PaymentAttempt(**dict(d)))),
        writes=("payment_failures",),
        description="A fact from billing's dunning; the balance does not change.",
    ),
    CommandSpec(
        "invoice",
        "mark_uncollectible",
        MarkUncollectible,
        "Write off the open balance",
        handle=_invoice(lambda i, s, d: i.mark_uncollectible(s, d.reason)),
        writes=("written_off",),
    ),
]
