"""Invoice: what the billing system billed a customer, and how much of it is still open.

Lifecycle: issued (open) -> partially_paid -> paid as payments are applied; credited when
credit notes cover the whole open amount; uncollectible when written off (a later payment
still settles it); void as the end (only while nothing has been paid or credited).

The money rule, kept by every event: ``balance = total - amount_credited - amount_paid``
with ``0 <= amount_paid <= total`` and ``balance >= 0``; a void invoice has ``balance = 0``
(nothing is collectible) while its totals stay as issued for the audit trail.

Payments change two aggregates: the Payment records where its money went and the Invoice
records what it received (:meth:`Invoice.apply_payment`). When a payment is refunded, fails
or is charged back, the money it had applied is taken back off its invoices
(:meth:`Invoice.unapply_payment`), so the invoice reopens: the customer owes it again, and the
receivables figure stays true. Crediting instead (a credit note) is the billing system's way
to forgive an amount, and is recorded separately.

The hub does not re-price invoice lines: the billing system applies proration and discounts,
so ``amount`` is taken as billed; the hub checks that lines, subtotal, tax and total add up
and that every amount fits the currency, which is what reconciliation needs.

Lines say what they bill for revenue and reconciliation: the charge type, the service period
``[service_period_start, service_period_end)`` (half-open: the end day is the first day *not*
served, so a month is ``[03-01, 04-01)`` and consecutive periods meet without overlap), whether
the billing system prorated the line, the contract item (``contract_item_sku``) or order line
(``order_line``, an index into the order's lines) it bills, and its tax. When lines carry tax
their taxes add up to the invoice's ``tax``.

Tax status: the ERP or tax platform reports whether the tax was calculated (``tax_status``).
A failed calculation **holds** the invoice: it stays collectible (the customer's debt is
unchanged), but posting it to the ERP is refused until a later report says the tax was
calculated (or does not apply), because a posted document with a wrong tax is a filing error.

Credit notes are documents: each may name the invoice lines it credits (``lines``: line index
and amount, adding up to the note's amount; a line is never credited beyond its amount and
tax). A note may exceed the open balance when the invoice was (partly) paid already: the
excess is owed back to the customer and shows as ``credit_balance`` (the invoice's balance is
then zero). So the money rule reads in full
``total - amount_credited - amount_paid = balance - credit_balance``, with at most one of
``balance`` and ``credit_balance`` above zero. A refund of the payment (``payment.refund``,
naming the note in ``credit_note_number``) takes the money back off the invoice and so
settles that credit; so does a later payment failure or chargeback. Nothing is ever credited
beyond the invoice's total.

The ERP's copy: posting records the ERP's document number and, when the ERP sends them, its
amounts (``erp_amounts``: total, and subtotal / tax when given). The ERP is the system of
record of its postings, so a copy that disagrees with billing's is recorded (a fact), not
refused: reconciliation shows it as a break. A later ERP save of the same document with other
amounts records :class:`InvoiceErpRevised` (the ERP corrected its copy). Refused is only what
cannot be true: another document number for a posted invoice, another currency, more decimals
than the currency has, a negative total, or a subtotal and tax that do not add up to the total.

Failed payment attempts (a card declined by billing's dunning) are recorded as facts in
``payment_failures``; they change no balance.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from hub.domain.base import Aggregate, CreationEvent, DomainEvent, creation_fields
from hub.domain.bounded import (
    MAX_INVOICE_LINES,
    MAX_LINES,
    Amount,
    Code,
    Description,
    InvoicePrice,
    Quantity,
    Reason,
    RequiredCode,
)
from hub.domain.errors import (
    AlreadyExists,
    CurrencyMismatch,
    InvalidTransition,
    InvalidValue,
    Overapplication,
)
from hub.domain.money import Money, check_scale, exponent, money_sum
from hub.domain.order import ChargeType
from hub.domain.provenance import Stamp


class InvoiceStatus(StrEnum):
    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    CREDITED = "credited"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


class TaxStatus(StrEnum):
    """What the ERP or tax platform reports about the invoice's tax calculation."""

    CALCULATED = "calculated"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


class UnapplyReason(StrEnum):
    """Why a payment's money came back off an invoice."""

    REFUND = "refund"
    FAILURE = "failure"
    REVERSAL = "reversal"


class InvoiceLine(BaseModel):
    """One billed line. ``amount`` may be negative (a discount line); quantity may not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: RequiredCode
    description: Description | None = None
    quantity: Quantity
    unit_price: InvoicePrice
    amount: Amount
    #: Half-open ``[start, end)``: ``end`` is the first day not served.
    service_period_start: date | None = None
    service_period_end: date | None = None
    charge_type: ChargeType | None = None
    proration: bool = False
    #: The contract item this line bills (its SKU on the contract), as billing says.
    contract_item_sku: Code | None = None
    #: The order line this line bills: its index in the order's ``lines``.
    order_line: int | None = Field(default=None, ge=0, lt=MAX_LINES)
    tax: Amount | None = None


def line_defaults(state: dict[str, Any]) -> None:
    """Upcast one stored v1 invoice line (JSON) to v2."""
    state.setdefault("charge_type", None)
    state.setdefault("proration", False)
    state.setdefault("contract_item_sku", None)
    state.setdefault("order_line", None)
    state.setdefault("tax", None)


class CreditNoteLine(BaseModel):
    """Part of a credit note: ``amount`` of the invoice line at index ``line``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line: int = Field(ge=0, lt=MAX_INVOICE_LINES)
    amount: Amount


class CreditNote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Money
    credit_note_number: str | None = None
    reason: str | None = None
    lines: list[CreditNoteLine] = Field(default_factory=list)
    issue_date: date | None = None


class ErpAmounts(BaseModel):
    """The ERP's copy of the invoice's amounts, as its posted document says them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: Money
    subtotal: Money | None = None
    tax: Money | None = None

    def revises(self, earlier: ErpAmounts) -> bool:
        """Whether this copy says something other than ``earlier`` (an absent amount says
        nothing)."""
        pairs = ((self.total, earlier.total), (self.subtotal, earlier.subtotal))
        return any(new is not None and new != old for new, old in (*pairs, (self.tax, earlier.tax)))


class PaymentAttempt(BaseModel):
    """A failed attempt to collect the invoice (billing's dunning): a fact, no money moved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempted_at: AwareDatetime
    amount: Money
    reason: Reason | None = None
    attempt: int | None = Field(default=None, ge=1, le=1000)


def check_lines(lines: list[InvoiceLine], currency: str) -> tuple[Money, Money | None]:
    """Check each line against the currency and its service period; return the sum of the
    lines and, when any line carries tax, the sum of their taxes."""
    if not lines:
        raise InvalidValue("an invoice needs at least one line", field="lines")
    amounts: list[Money] = []
    taxes: list[Money] = []
    for index, line in enumerate(lines):
        check_scale(line.amount, currency, field=f"lines.{index}.amount")
        start, end = line.service_period_start, line.service_period_end
        if start is not None and end is not None and end <= start:
            raise InvalidValue(
                "the service period [start, end) must end after it starts",
                field=f"lines.{index}.service_period_end",
            )
        amounts.append(Money.of(line.amount, currency))
        if line.tax is not None:
            check_scale(line.tax, currency, field=f"lines.{index}.tax")
            taxes.append(Money.of(line.tax, currency))
    return money_sum(amounts, currency), money_sum(taxes, currency) if taxes else None


def check_credit_lines(
    invoice: Invoice, lines: list[CreditNoteLine], amount: Money
) -> list[CreditNoteLine]:
    """The invoice lines a credit note names: they exist, add up to the note, and no line is
    credited (over all notes) beyond its amount and tax."""
    if not lines:
        return []
    currency = invoice.currency
    credited: dict[int, Money] = {}
    for note in invoice.credit_notes:
        for part in note.lines:
            credited[part.line] = credited.get(part.line, Money.zero(currency)) + Money.of(
                part.amount, currency
            )
    parts: list[Money] = []
    for index, part in enumerate(lines):
        field = f"lines.{index}"
        if part.line >= len(invoice.lines):
            raise InvalidValue(
                f"the invoice has {len(invoice.lines)} lines; there is no line {part.line}",
                field=f"{field}.line",
            )
        check_scale(part.amount, currency, field=f"{field}.amount")
        money = Money.of(part.amount, currency)
        if money.amount <= 0:
            raise InvalidValue("a credited amount must be above zero", field=f"{field}.amount")
        billed = invoice.lines[part.line]
        creditable = Money.of(billed.amount + (billed.tax or 0), currency)
        so_far = credited.get(part.line, Money.zero(currency)) + money
        if so_far > creditable:
            raise Overapplication(
                f"line {part.line} would be credited {so_far}, more than its {creditable}",
                field=f"{field}.amount",
            )
        credited[part.line] = so_far
        parts.append(money)
    if money_sum(parts, currency) != amount:
        raise InvalidValue(
            f"the credited lines add up to {money_sum(parts, currency)}, not {amount}",
            field="lines",
        )
    return list(lines)


class Invoice(Aggregate):
    entity = "invoice"

    customer_id: UUID
    contract_id: UUID | None
    order_id: UUID | None
    lines: list[InvoiceLine]
    currency: str
    subtotal: Money
    tax: Money
    total: Money
    issue_date: date
    due_date: date
    source_number: str | None = None
    status: InvoiceStatus = InvoiceStatus.OPEN
    amount_paid: Money
    amount_credited: Money
    balance: Money
    #: Credited beyond what was open (a credit note after payment): owed to the customer.
    credit_balance: Money
    payments: dict[UUID, Money] = Field(default_factory=dict)
    credit_notes: list[CreditNote] = Field(default_factory=list)
    erp_document_number: str | None = None
    #: The ERP's amounts for its posted document; None: billing's (a v1 posting said none).
    erp_amounts: ErpAmounts | None = None
    written_off: bool = False
    void_reason: str | None = None
    tax_status: TaxStatus | None = None
    tax_failure_reason: str | None = None
    payment_failures: list[PaymentAttempt] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _zero_credit_balance(cls, data: Any) -> Any:
        """Snapshots from before ``credit_balance`` existed had none: nothing was owed back."""
        if isinstance(data, dict) and "credit_balance" not in data and "currency" in data:
            return {**data, "credit_balance": Money.zero(data["currency"])}
        return data

    @property
    def tax_held(self) -> bool:
        """The tax calculation failed: the invoice is held (not posted to the ERP)."""
        return self.tax_status is TaxStatus.FAILED

    def derived(self) -> dict[str, Any]:
        return {"tax_held": self.tax_held}

    # -- commands -------------------------------------------------------------------------

    @classmethod
    def issue(
        cls,
        stamp: Stamp,
        invoice_id: UUID,
        *,
        customer_id: UUID,
        lines: list[InvoiceLine],
        currency: str,
        subtotal: Decimal,
        tax: Decimal,
        total: Decimal,
        issue_date: date,
        due_date: date,
        contract_id: UUID | None = None,
        order_id: UUID | None = None,
        source_number: str | None = None,
        tax_status: TaxStatus | None = None,
    ) -> Invoice:
        exponent(currency)
        if contract_id is None and order_id is None:
            raise InvalidValue(
                "an invoice bills a contract or an order; give contract_id or order_id",
                field="contract_id",
            )
        line_sum, line_tax = check_lines(lines, currency)
        subtotal_money = Money.of(check_scale(subtotal, currency, field="subtotal"), currency)
        tax_money = Money.of(check_scale(tax, currency, field="tax"), currency)
        total_money = Money.of(check_scale(total, currency, field="total"), currency)
        if subtotal_money != line_sum:
            raise InvalidValue(
                f"subtotal {subtotal_money} is not the sum of the lines {line_sum}",
                field="subtotal",
            )
        if tax_money.is_negative:
            raise InvalidValue("tax cannot be negative", field="tax")
        if line_tax is not None and line_tax != tax_money:
            raise InvalidValue(
                f"tax {tax_money} is not the sum of the lines' tax {line_tax}", field="tax"
            )
        if total_money != subtotal_money + tax_money:
            raise InvalidValue(
                f"total {total_money} is not subtotal + tax {subtotal_money + tax_money}",
                field="total",
            )
        if total_money.is_negative:
            raise InvalidValue("a negative invoice is a credit note; issue a credit", field="total")
        if due_date < issue_date:
            raise InvalidValue("due_date is before issue_date", field="due_date")
        return cls._start(
            InvoiceIssued(
                **creation_fields(stamp, invoice_id),
                customer_id=customer_id,
                contract_id=contract_id,
                order_id=order_id,
                lines=lines,
                currency=currency,
                subtotal=subtotal_money,
                tax=tax_money,
                total=total_money,
                issue_date=issue_date,
                due_date=due_date,
                source_number=source_number,
                tax_status=tax_status,
            )
        )

    def post(
        self, stamp: Stamp, erp_document_number: str, amounts: ErpAmounts | None = None
    ) -> None:
        """The ERP's posting: its document number and, when given, its amounts.

        The same number with the same amounts (or none) again is a no-op; with other amounts
        it records the ERP's corrected copy (:class:`InvoiceErpRevised`). An ERP total that
        differs from billing's is recorded: it is the ERP's fact, a reconciliation break.
        A void invoice may be posted: the ERP posting it is a fact (it booked the document
        before it heard of the void), so it is recorded, and the invoice stays void with the
        ERP's number beside it, a reconciliation break for the projections to show.
        An invoice whose tax calculation failed is held: posting it is refused.
        """
        if not erp_document_number.strip():
            raise InvalidValue("erp_document_number cannot be empty", field="erp_document_number")
        if amounts is not None:
            self._check_erp(amounts)
        if self.erp_document_number == erp_document_number:
            if amounts is not None and amounts.revises(self.erp_copy()):
                self._record(InvoiceErpRevised, stamp, erp_amounts=amounts)
            return
        if self.tax_held:
            why = f" ({self.tax_failure_reason})" if self.tax_failure_reason else ""
            raise InvalidTransition(
                f"the tax calculation failed{why}; the invoice is held until the tax is "
                "calculated (invoice record_tax)",
                field="tax_status",
            )
        if self.erp_document_number is not None:
            raise InvalidTransition(
                f"already posted to the ERP as {self.erp_document_number!r}",
                field="erp_document_number",
            )
        self._record(
            InvoicePosted, stamp, erp_document_number=erp_document_number, erp_amounts=amounts
        )

    def erp_copy(self) -> ErpAmounts:
        """The ERP's amounts; billing's when the posting said none."""
        if self.erp_amounts is not None:
            return self.erp_amounts
        return ErpAmounts(total=self.total, subtotal=self.subtotal, tax=self.tax)

    def _check_erp(self, amounts: ErpAmounts) -> None:
        """Refuse an ERP copy that cannot be this invoice's (money checks its own scale)."""
        for name in ("total", "subtotal", "tax"):
            money: Money | None = getattr(amounts, name)
            if money is not None and money.currency != self.currency:
                raise CurrencyMismatch(
                    f"the invoice is in {self.currency}, not {money.currency}", field=name
                )
        if amounts.total.is_negative:
            raise InvalidValue("a posted invoice cannot total below zero", field="total")
        if amounts.tax is not None and amounts.tax.is_negative:
            raise InvalidValue("tax cannot be negative", field="tax")
        if amounts.subtotal is not None and amounts.tax is not None:
            added = amounts.subtotal + amounts.tax
            if added != amounts.total:
                raise InvalidValue(
                    f"total {amounts.total} is not subtotal + tax {added}", field="total"
                )

    def void(self, stamp: Stamp, reason: str | None = None) -> None:
        """Cancel the invoice; money already received or credited must be undone first."""
        self._require_not_void("void")
        if not self.amount_paid.is_zero:
            raise InvalidTransition(
                f"{self.amount_paid} has been paid; refund or unapply it first",
                field="amount_paid",
            )
        if not self.amount_credited.is_zero:
            raise InvalidTransition(
                f"{self.amount_credited} has been credited; a voided invoice cannot carry "
                "credit notes",
                field="amount_credited",
            )
        self._record(InvoiceVoided, stamp, reason=reason)

    def credit(
        self,
        stamp: Stamp,
        amount: Money,
        *,
        credit_note_number: str | None = None,
        reason: str | None = None,
        lines: list[CreditNoteLine] | None = None,
        issue_date: date | None = None,
    ) -> None:
        """A credit note: forgive up to what is left to credit (the total less earlier notes);
        beyond the open balance it becomes ``credit_balance`` (see the module docstring).

        A credit note number counts once per invoice: the same note delivered again (same
        number, same amount) records nothing; the number with another amount cannot be true
        (two notes do not share a number) and is refused. Notes without a number all count.
        """
        self._require_not_void("credit")
        self._check_amount(amount)
        if credit_note_number is not None:
            earlier = next(
                (n for n in self.credit_notes if n.credit_note_number == credit_note_number),
                None,
            )
            if earlier is not None and earlier.amount == amount:
                return
            if earlier is not None:
                raise AlreadyExists(
                    f"credit note {credit_note_number!r} was already recorded on this invoice "
                    f"for {earlier.amount}; a second note needs its own number",
                    field="credit_note_number",
                )
        creditable = self.total - self.amount_credited
        if amount > creditable:
            raise Overapplication(
                f"credit {amount} exceeds what is left to credit on the invoice {creditable}",
                field="amount",
            )
        note = CreditNote(
            amount=amount,
            credit_note_number=credit_note_number,
            reason=reason,
            lines=check_credit_lines(self, lines or [], amount),
            issue_date=issue_date,
        )
        self._record(InvoiceCredited, stamp, credit=note)

    def record_tax(self, stamp: Stamp, status: TaxStatus, reason: str | None = None) -> None:
        """The tax platform's report; the same report again records nothing.

        ``failed`` holds the invoice (:meth:`post` is refused); ``calculated`` or
        ``not_applicable`` later clears the hold.
        """
        kept_reason = reason if status is TaxStatus.FAILED else None
        if status is self.tax_status and kept_reason == self.tax_failure_reason:
            return
        if status is TaxStatus.FAILED:
            self._record(InvoiceTaxFailed, stamp, reason=reason)
        else:
            self._record(InvoiceTaxCalculated, stamp, status=status)

    def record_payment_failure(self, stamp: Stamp, attempt: PaymentAttempt) -> None:
        """A failed collection attempt; the same attempt reported again records nothing."""
        self._check_amount(attempt.amount)
        if attempt in self.payment_failures:
            return
        self._record(InvoicePaymentAttemptFailed, stamp, attempt=attempt)

    def mark_uncollectible(self, stamp: Stamp, reason: str | None = None) -> None:
        """Write off the open balance; a later payment still settles the invoice."""
        self._require_not_void("write off")
        if self.balance.is_zero:
            raise InvalidTransition(
                f"nothing is open on a {self.status.value} invoice", field="status"
            )
        if self.written_off:
            raise InvalidTransition("the invoice is already written off", field="status")
        self._record(InvoiceMarkedUncollectible, stamp, reason=reason)

    @property
    def is_open(self) -> bool:
        """Something is still owed on it (a receivable), written off or not."""
        return self.status is not InvoiceStatus.VOID and not self.balance.is_zero

    def move_to(self, stamp: Stamp, survivor_id: UUID) -> None:
        """The customer was merged into ``survivor_id``: this receivable is now theirs."""
        if not self.is_open:
            raise InvalidTransition(
                f"a {self.status.value} invoice stays with its customer", field="status"
            )
        self._record(
            InvoiceMovedToSurvivor,
            stamp,
            from_customer_id=self.customer_id,
            customer_id=survivor_id,
        )

    def check_payment(self, amount: Money) -> None:
        """Refuse an application that :meth:`apply_payment` would refuse (records nothing).

        Applying a payment changes two aggregates; the command checks both before changing
        either, so a refusal leaves both untouched.
        """
        self._require_not_void("apply a payment to")
        self._check_amount(amount)
        if amount > self.balance:
            raise Overapplication(
                f"{amount} exceeds the open balance {self.balance}", field="amount"
            )

    def apply_payment(self, stamp: Stamp, payment_id: UUID, amount: Money) -> None:
        self.check_payment(amount)
        self._record(InvoicePaymentApplied, stamp, payment_id=payment_id, amount=amount)

    def unapply_payment(
        self, stamp: Stamp, payment_id: UUID, amount: Money, reason: UnapplyReason
    ) -> None:
        """Take back ``amount`` of what ``payment_id`` paid (refund, failure, chargeback)."""
        self._check_amount(amount)
        applied = self.payments.get(payment_id)
        if applied is None:
            raise InvalidValue(
                f"payment {payment_id} was not applied to this invoice", field="payment_id"
            )
        if amount > applied:
            raise Overapplication(
                f"{amount} exceeds the {applied} payment {payment_id} applied", field="amount"
            )
        self._record(
            InvoicePaymentUnapplied, stamp, payment_id=payment_id, amount=amount, reason=reason
        )

    def _check_amount(self, amount: Money) -> None:
        if amount.currency != self.currency:
            raise CurrencyMismatch(
                f"the invoice is in {self.currency}, not {amount.currency}", field="amount"
            )
        if amount.amount <= 0:
            raise InvalidValue("amount must be above zero", field="amount")

    def _require_not_void(self, action: str) -> None:
        if self.status is InvoiceStatus.VOID:
            raise InvalidTransition(f"cannot {action} a void invoice", field="status")

    def _settle(self) -> None:
        """Recompute balance and status after money moved (called by events only)."""
        owed = self.total - self.amount_credited - self.amount_paid
        zero = Money.zero(self.currency)
        self.balance = zero if owed.is_negative else owed
        self.credit_balance = zero - owed if owed.is_negative else zero
        if self.balance.is_zero:
            paid_nothing = self.amount_paid.is_zero and not self.amount_credited.is_zero
            self.status = InvoiceStatus.CREDITED if paid_nothing else InvoiceStatus.PAID
        elif self.written_off:
            self.status = InvoiceStatus.UNCOLLECTIBLE
        elif not self.amount_paid.is_zero:
            self.status = InvoiceStatus.PARTIALLY_PAID
        else:
            self.status = InvoiceStatus.OPEN


# -- events ------------------------------------------------------------------------------


class InvoiceIssued(CreationEvent):
    customer_id: UUID
    contract_id: UUID | None
    order_id: UUID | None
    lines: list[InvoiceLine]
    currency: str
    subtotal: Money
    tax: Money
    total: Money
    issue_date: date
    due_date: date
    source_number: str | None
    tax_status: TaxStatus | None = None

    #: v2: lines carry charge type, proration, what they bill and tax; the tax status.
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        for line in state["lines"]:
            line_defaults(line)
        state.setdefault("tax_status", None)

    def create(self) -> Invoice:
        zero = Money.zero(self.currency)
        invoice = Invoice(
            id=self.originator_id,
            version=1,
            created_on=self.timestamp,
            modified_on=self.timestamp,
            customer_id=self.customer_id,
            contract_id=self.contract_id,
            order_id=self.order_id,
            lines=list(self.lines),
            currency=self.currency,
            subtotal=self.subtotal,
            tax=self.tax,
            total=self.total,
            issue_date=self.issue_date,
            due_date=self.due_date,
            source_number=self.source_number,
            amount_paid=zero,
            amount_credited=zero,
            balance=self.total,
            credit_balance=zero,
            tax_status=self.tax_status,
        )
        invoice._settle()
        return invoice


class InvoicePosted(DomainEvent):
    erp_document_number: str
    #: None: the ERP sent no amounts, its copy is billing's at posting.
    erp_amounts: ErpAmounts | None = None

    #: v2: the ERP's own amounts for the document.
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("erp_amounts", None)

    def external_refs(self) -> list[tuple[str, str]]:
        return [("erp", self.erp_document_number)]

    def apply(self, aggregate: Invoice) -> None:
        aggregate.erp_document_number = self.erp_document_number
        aggregate.erp_amounts = self.erp_amounts


class InvoiceErpRevised(DomainEvent):
    """The ERP saved its posted document again with other amounts: it corrected its copy."""

    erp_amounts: ErpAmounts

    def apply(self, aggregate: Invoice) -> None:
        aggregate.erp_amounts = self.erp_amounts


class InvoiceVoided(DomainEvent):
    reason: str | None = None

    def apply(self, aggregate: Invoice) -> None:
        aggregate.status = InvoiceStatus.VOID
        aggregate.void_reason = self.reason
        aggregate.balance = Money.zero(aggregate.currency)


class InvoiceCredited(DomainEvent):
    credit: CreditNote

    #: v2: the note names the lines it credits and its issue date.
    class_version: ClassVar[int] = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["credit"].setdefault("lines", [])
        state["credit"].setdefault("issue_date", None)

    def apply(self, aggregate: Invoice) -> None:
        aggregate.amount_credited = aggregate.amount_credited + self.credit.amount
        aggregate.credit_notes = [*aggregate.credit_notes, self.credit]
        aggregate._settle()


class InvoiceMarkedUncollectible(DomainEvent):
    reason: str | None = None

    def apply(self, aggregate: Invoice) -> None:
        aggregate.written_off = True
        aggregate._settle()


class InvoicePaymentApplied(DomainEvent):
    payment_id: UUID
    amount: Money

    def apply(self, aggregate: Invoice) -> None:
        payments = dict(aggregate.payments)
        previous = payments.get(self.payment_id, Money.zero(aggregate.currency))
        payments[self.payment_id] = previous + self.amount
        aggregate.payments = payments
        aggregate.amount_paid = aggregate.amount_paid + self.amount
        aggregate._settle()


class InvoiceMovedToSurvivor(DomainEvent):
    """The invoice's customer was merged; the open invoice now belongs to the survivor."""

    from_customer_id: UUID
    customer_id: UUID

    def apply(self, aggregate: Invoice) -> None:
        aggregate.customer_id = self.customer_id


class InvoicePaymentUnapplied(DomainEvent):
    payment_id: UUID
    amount: Money
    reason: UnapplyReason

    def apply(self, aggregate: Invoice) -> None:
        payments = dict(aggregate.payments)
        remaining = payments[self.payment_id] - self.amount
        if remaining.is_zero:
            del payments[self.payment_id]
        else:
            payments[self.payment_id] = remaining
        aggregate.payments = payments
        aggregate.amount_paid = aggregate.amount_paid - self.amount
        aggregate._settle()


class InvoiceTaxFailed(DomainEvent):
    """The tax calculation failed: the invoice is held (not posted) until it succeeds."""

    reason: str | None = None

    def apply(self, aggregate: Invoice) -> None:
        aggregate.tax_status = TaxStatus.FAILED
        aggregate.tax_failure_reason = self.reason


class InvoiceTaxCalculated(DomainEvent):
    """The tax was calculated (or does not apply): a hold for failed tax is cleared."""

    status: TaxStatus

    def apply(self, aggregate: Invoice) -> None:
        aggregate.tax_status = self.status
        aggregate.tax_failure_reason = None


class InvoicePaymentAttemptFailed(DomainEvent):
    """Billing tried to collect the invoice and failed; no money moved."""

    attempt: PaymentAttempt

    def apply(self, aggregate: Invoice) -> None:
        aggregate.payment_failures = [*aggregate.payment_failures, self.attempt]
