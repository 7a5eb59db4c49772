"""NetSuite's way in: Concord's signed envelope, verified, and a pure translator.

NetSuite sends no webhooks of its own. A SuiteScript 2.1 user-event script (README,
"NetSuite") posts, after each save, ``{"eventId", "recordType", "action", "occurredAt",
"record"}`` with the record as SuiteTalk REST renders it, signed ``X-Concord-Signature:
<hex HMAC-SHA256 of the raw body>``. NetSuite is the ERP (adapters/ownership.yaml): it owns
customer numbers, payment terms, tax ids and credit holds, the acceptance, fulfilment and
cancellation of orders, and the posting of invoices. What it tells Concord:

* ``customer`` — the record's ``externalId`` is the Salesforce account id: links the
  NetSuite customer (internal id) to that account (held until the CRM account is known,
  never a second customer); without ``externalId`` it is matched (``vatRegNumber``, then
  ``companyName``): a sure match links, an uncertain one waits for the match review queue,
  no match is ignored (the ERP creates no customers). Either way it sets what changed of
  ``entityId`` (customer number),
  ``terms`` (payment terms), ``vatRegNumber`` (tax id), ``currency`` and
  ``creditHoldOverride`` (ON / OFF: on hold / active);
* ``salesOrder`` — ``externalId`` (or ``custbody_sf_opportunity_id``) names the Salesforce
  opportunity whose order it is: Pending Fulfillment / Partially Fulfilled → accept (the
  ``tranId`` becomes ``erp_order_number``), Pending Billing / Billed / Closed → fulfil,
  Cancelled → cancel (held until the CRM order is known);
* ``invoice`` — ``externalId`` (or ``custbody_billing_invoice_id``) names the billing
  invoice it posts: post with the ``tranId`` as ``erp_document_number`` and the record's
  ``total`` / ``subtotal`` / ``taxTotal`` as the ERP's copy (held until billing issued it).
  An ERP total that differs from billing's is the ERP's fact, recorded (a reconciliation
  break), never refused; a later save of the same document with other amounts is posted
  again and recorded as a revision. Refused: another currency than billing's, more
  decimals than the currency has.

Customer payments, credit memos and items are validated and logged as ignored, with the
reason (billing owns payments and credits; items are mapped in the product catalogue,
``erp_item_ids``, not mirrored). Money is parsed
exactly (``parse_float=Decimal``), never through a float, and refused with more decimals
than its currency has.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from adapters.inbound.convert import exact_number, no_constants
from adapters.inbound.identity import Nobody, identify
from adapters.inbound.matching import Candidate
from adapters.inbound.mirror import MirrorUpdate
from adapters.inbound.model import Known, Ref, SourceEvent, Step, Translation
from adapters.inbound.signatures import verify_body_hmac
from adapters.inbound.source import Incoming, Malformed, parse_model
from adapters.netsuite.schemas import (
    CreditMemo,
    Customer,
    CustomerPayment,
    Envelope,
    Invoice,
    Item,
    Reference,
    SalesOrder,
    Transaction,
)
from hub.domain.customer import normalise_tax_id
from hub.domain.money import EXPONENTS

ERP = "erp"
RECORD = "body.record"

#: Record types of NetSuite's item master (Concord has no item aggregate yet).
ITEM_TYPES = frozenset(
    {
        "item",
        "inventoryItem",
        "nonInventorySaleItem",
        "nonInventoryResaleItem",
        "serviceSaleItem",
        "serviceResaleItem",
        "otherChargeSaleItem",
        "kitItem",
        "assemblyItem",
    }
)

#: ``orderStatus.id`` → what it means for the canonical order (None: nothing yet).
ORDER_STATUSES: dict[str, str | None] = {
    "A": None,  # Pending Approval: NetSuite has not taken the order on
    "B": "accept",  # Pending Fulfillment
    "C": "cancel",  # Cancelled
    "D": "accept",  # Partially Fulfilled
    "E": "accept",  # Pending Billing/Partially Fulfilled
    "F": "fulfil",  # Pending Billing: everything shipped
    "G": "fulfil",  # Billed
    "H": "fulfil",  # Closed
}


def load_exact(raw: bytes, where: str = "body") -> Any:
    """The JSON body with every non-integer number as ``Decimal`` (``0.1`` stays ``0.1``).

    Always parse from the raw bytes: a document parsed elsewhere (the log re-reads bodies
    with orjson) holds floats."""

    try:
        return json.loads(raw, parse_float=exact_number, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as bad:
        raise Malformed(f"the body is not JSON: {bad}", where) from None


@dataclass(frozen=True)
class NetSuiteAdapter:
    """``POST /v1/webhooks/netsuite``. The custom body fields name the Salesforce
    opportunity of a sales order and the billing invoice of an invoice when ``externalId``
    is used for something else in the account."""

    opportunity_field: str = "custbody_sf_opportunity_id"
    billing_invoice_field: str = "custbody_billing_invoice_id"
    name: str = "netsuite"
    system: str = ERP

    def verify(self, incoming: Incoming, secrets: Sequence[str]) -> str:
        return verify_body_hmac(incoming, secrets)

    def split(self, incoming: Incoming) -> list[SourceEvent]:
        document = load_exact(incoming.body)
        envelope = parse_model(Envelope, document, "body")
        return [
            SourceEvent(
                event_id=envelope.event_id,
                event_type=envelope.record_type,
                document=document,
                raw=incoming.body,
                occurred_at=envelope.occurred_at,
            )
        ]

    def mirror(self, event: SourceEvent) -> MirrorUpdate | None:
        """The script sends the whole record on every save: nothing to merge."""
        del event
        return None

    def translate(self, event: SourceEvent, known: Known) -> Translation:
        envelope = parse_model(Envelope, load_exact(event.raw), "body")
        kind = envelope.record_type
        if kind in ITEM_TYPES:
            item = parse_model(Item, envelope.record, RECORD)
            return Translation.ignore(
                f"{kind} {item.item_id or item.id}: Concord keeps no item master; map the "
                "item's internal id to its SKU in the product catalogue (erp_item_ids, "
                "/v1/mappings)"
            )
        handler = self._handlers().get(kind)
        if handler is None:
            return Translation.ignore(f"Concord does not follow NetSuite {kind} records")
        if envelope.action.lower() == "delete":
            return Translation.ignore(
                f"{kind} {envelope.record.get('id')} was deleted in NetSuite: Concord keeps "
                "its canonical record (deletes are not propagated)"
            )
        return handler(envelope, known)

    def _handlers(self) -> dict[str, Callable[[Envelope, Known], Translation]]:
        return {
            "customer": _customer,
            "salesOrder": self._sales_order,
            "invoice": self._invoice,
            "customerPayment": _customer_payment,
            "creditMemo": _credit_memo,
        }

    # -- sales orders -------------------------------------------------------------------

    def _sales_order(self, envelope: Envelope, known: Known) -> Translation:
        order = parse_model(SalesOrder, envelope.record, RECORD)
        _check_amounts(order)
        opportunity = order.external_id or _custom(order.model_extra, self.opportunity_field)
        if not opportunity:
            return Translation.ignore(
                f"sales order {order.number} names no Salesforce opportunity (externalId or "
                f"{self.opportunity_field}): Concord's orders are placed by the CRM"
            )
        code = order.order_status.id.upper()
        if code not in ORDER_STATUSES:
            raise Malformed(
                f"{order.order_status.id!r} is not a sales order status (A-H)",
                f"{RECORD}.orderStatus.id",
            )
        wanted = ORDER_STATUSES[code]
        label = order.order_status.ref_name or code
        if wanted is None:
            return Translation.ignore(f"sales order {order.number} is {label}: not taken on yet")
        ref = Ref("crm", "order", opportunity)
        order_id = known.lookup(ref)
        if order_id is None:
            return Translation.wait(ref)
        state = _state(known, "order", order_id)
        return _order_steps(order_id, state, wanted, order.number, label)

    # -- invoices -----------------------------------------------------------------------

    def _invoice(self, envelope: Envelope, known: Known) -> Translation:
        invoice = parse_model(Invoice, envelope.record, RECORD)
        currency = _check_amounts(invoice)
        billing = invoice.external_id or _custom(invoice.model_extra, self.billing_invoice_field)
        if not billing:
            return Translation.ignore(
                f"invoice {invoice.number} names no billing invoice (externalId or "
                f"{self.billing_invoice_field}): Concord's invoices are issued by billing "
                "(adapters/ownership.yaml), so an ERP-only invoice has no canonical invoice "
                "to post"
            )
        ref = Ref("billing", "invoice", billing)
        invoice_id = known.lookup(ref)
        if invoice_id is None:
            return Translation.wait(ref)
        state = _state(known, "invoice", invoice_id)
        billed_in = (state.get("total") or {}).get("currency")
        if currency and billed_in and currency != billed_in:
            raise Malformed(
                f"NetSuite invoice {invoice.number} is in {currency} but billing invoice "
                f"{billing} is in {billed_in}: one document has one currency",
                f"{RECORD}.currency",
            )
        amounts = _erp_amounts(invoice, currency or billed_in)
        if state.get("erp_document_number") == invoice.number and not _revises(amounts, state):
            return Translation.ignore(
                f"invoice {invoice.number} is posted already with these amounts"
            )
        return Translation(
            steps=(
                Step(
                    "invoice",
                    "post",
                    {"erp_document_number": invoice.number, **amounts},
                    target=invoice_id,
                    source_record_id=invoice.id,
                ),
            )
        )


def _erp_amounts(invoice: Invoice, currency: str | None) -> dict[str, Any]:
    """The ERP's copy of the document's money as ``invoice post`` takes it (``total``,
    ``subtotal``, ``tax``: what the record carries); nothing without a total or a currency."""
    if invoice.total is None or currency is None:
        return {}
    named = {"total": invoice.total, "subtotal": invoice.subtotal, "tax": invoice.tax_total}
    return {
        name: {"amount": format(value, "f"), "currency": currency}
        for name, value in named.items()
        if value is not None
    }


def _revises(amounts: dict[str, Any], state: dict[str, Any]) -> bool:
    """Whether the ERP's amounts differ from its copy the hub holds (billing's amounts when
    the posting carried none): a save with other amounts is the ERP correcting its copy."""
    held = state.get("erp_amounts") or state
    for name, money in amounts.items():
        earlier = held.get(name)
        if earlier is None or Decimal(str(earlier["amount"])) != Decimal(money["amount"]):
            return True
    return False


# -- customers ------------------------------------------------------------------------------


def _customer(envelope: Envelope, known: Known) -> Translation:
    customer = parse_model(Customer, envelope.record, RECORD)
    if customer.external_id:
        ref = Ref("crm", "customer", customer.external_id)
        target = known.lookup(ref)
        if target is None:
            return Translation.wait(ref)
    else:
        matched = _matched(customer, known)
        if isinstance(matched, Translation):
            return matched
        target = matched
    state = _state(known, "customer", target)
    steps: list[Step] = []

    def step(command: str, data: dict[str, Any]) -> None:
        steps.append(Step("customer", command, data, target=target, source_record_id=customer.id))

    if (state.get("external_ids") or {}).get(ERP) != customer.id:
        step("link", {"system": ERP, "external_id": customer.id})
    if customer.entity_id and customer.entity_id != state.get("customer_number"):
        step("assign_number", {"customer_number": customer.entity_id})
    terms = customer.terms.ref_name if customer.terms else None
    if terms and terms != state.get("payment_terms"):
        step("set_payment_terms", {"payment_terms": terms})
    details = _changed_details(customer, state)
    if details:
        step("change_details", details)
    status = _hold_status(customer.credit_hold_override, state.get("status"))
    if status is not None:
        step("change_status", {"status": status, "reason": "credit hold set in NetSuite"})
    if not steps:
        return Translation.ignore(f"customer {customer.id} changes nothing Concord holds")
    return Translation(steps=tuple(steps))


def _matched(customer: Customer, known: Known) -> UUID | Translation:
    """A NetSuite customer without ``externalId``: the customer it surely is (linked by its
    internal id), a review, or nothing (the ERP does not own names: it creates no customer)."""
    linked = known.lookup(Ref(ERP, "customer", customer.id))
    if linked is not None:
        return linked
    name = (customer.company_name or "").strip()
    tax = (customer.vat_reg_number or "").strip() or None
    candidate = Candidate(legal_name=name, tax_id=tax) if name or tax else None
    found = identify(known, ERP, customer.id, candidate)
    if isinstance(found, Nobody):
        said = (
            "a reviewer decided it is no customer Concord knows"
            if found.decided
            else ("it has no externalId (the Salesforce account id) and matches no customer")
        )
        return Translation.ignore(
            f"customer {customer.id}: {said}; the ERP does not create customers (CRM owns "
            "their names)"
        )
    return found


def _changed_details(customer: Customer, state: dict[str, Any]) -> dict[str, Any]:
    """The ERP-owned details that differ from the hub's (no event for an equal value)."""
    details: dict[str, Any] = {}
    tax = customer.vat_reg_number.strip() if customer.vat_reg_number else ""
    if tax and normalise_tax_id(tax) != state.get("tax_id"):
        details["tax_id"] = tax
    currency = _currency(customer.currency)
    if currency is not None and currency != state.get("currency"):
        details["currency"] = currency
    return details


def _hold_status(hold: Reference | None, current: Any) -> str | None:
    """``creditHoldOverride`` ON puts the customer on hold, OFF lifts it; AUTO (NetSuite's
    credit-limit rule) says nothing Concord can act on."""
    code = hold.id.upper() if hold else "AUTO"
    if code == "ON" and current == "active":
        return "on_hold"
    if code == "OFF" and current == "on_hold":
        return "active"
    return None


# -- orders ---------------------------------------------------------------------------------


def _order_steps(
    order_id: UUID, state: dict[str, Any], wanted: str, number: str, label: str
) -> Translation:
    status = state.get("status")
    accepted_as = state.get("erp_order_number")
    if status in ("fulfilled", "cancelled", "rejected"):
        return Translation.ignore(f"the order is {status} already; sales order {number} is {label}")
    if status == "accepted" and accepted_as != number:
        return Translation.ignore(
            f"the order was accepted as NetSuite sales order {accepted_as}; sales order "
            f"{number} is another one"
        )
    steps: list[Step] = []
    if status != "accepted" and wanted in ("accept", "fulfil"):
        steps.append(Step("order", "accept", {"erp_order_number": number}, target=order_id))
    if wanted == "fulfil":
        steps.append(Step("order", "fulfil", {}, target=order_id))
    if wanted == "cancel":
        steps.append(
            Step(
                "order",
                "cancel",
                {"reason": f"cancelled in NetSuite (sales order {number})"},
                target=order_id,
            )
        )
    if not steps:
        return Translation.ignore(f"the order is accepted already as sales order {number}")
    return Translation(steps=tuple(steps))


# -- payments and credits: validated, not translated ----------------------------------------


def _customer_payment(envelope: Envelope, known: Known) -> Translation:
    del known
    payment = parse_model(CustomerPayment, envelope.record, RECORD)
    currency = _currency(payment.currency)
    _exact(payment.payment, currency, f"{RECORD}.payment")
    applied = Decimal(0)
    docs = []
    for index, row in enumerate(payment.apply.items):
        if row.apply and row.amount is not None:
            applied += _exact(row.amount, currency, f"{RECORD}.apply.items.{index}.amount")
            docs.append(row.ref_num or row.doc.id)
    return Translation.ignore(
        f"customerPayment {payment.number} of {_shown(payment.payment, currency)} (applied "
        f"{_shown(applied, currency)} to {', '.join(docs) or 'no invoice'}) is not "
        "translated: payments and their application belong to billing "
        "(adapters/ownership.yaml); the ERP's cash application has no canonical home yet"
    )


def _credit_memo(envelope: Envelope, known: Known) -> Translation:
    del known
    memo = parse_model(CreditMemo, envelope.record, RECORD)
    currency = _check_amounts(memo)
    credited = memo.created_from.ref_name or memo.created_from.id if memo.created_from else None
    total = _shown(memo.total, currency) if memo.total is not None else "an amount"
    return Translation.ignore(
        f"creditMemo {memo.number} of {total} (from {credited or 'no invoice'}) is not "
        "translated: credits are issued in billing (invoice credit, adapters/ownership.yaml)"
    )


# -- money and helpers ----------------------------------------------------------------------


def _currency(ref: Reference | None) -> str | None:
    """The ISO code of a currency reference, when the account names its currencies by ISO
    code (``refName: "EUR"``); None when it does not (NetSuite's default name for US dollars
    is ``"USA"``): money is then read without checking its decimals."""
    if ref is None or ref.ref_name is None:
        return None
    code = ref.ref_name.strip().upper()
    return code if code in EXPONENTS else None


def _exact(amount: Decimal, currency: str | None, where: str) -> Decimal:
    """``amount`` unchanged, refused if it has more decimals than ``currency`` allows (JPY
    ``1500.5``): rounding a source's figure would make reconciliation drift."""
    if not amount.is_finite():
        raise Malformed(f"{amount} is not an amount", where)
    if currency is None:
        return amount
    places = EXPONENTS[currency]
    try:
        exact = amount.quantize(Decimal(1).scaleb(-places)) == amount
    except InvalidOperation:
        exact = False
    if not exact:
        raise Malformed(f"{amount} has more decimals than {currency} has ({places})", where)
    return amount


def _shown(amount: Decimal, currency: str | None) -> str:
    if currency is None:
        return format(amount, "f")
    return f"{amount.quantize(Decimal(1).scaleb(-EXPONENTS[currency])):f} {currency}"


def _check_amounts(record: Transaction) -> str | None:
    """Every money field of a transaction at its currency's exponent; answers the currency."""
    currency = _currency(record.currency)
    for name in ("subtotal", "taxTotal", "total"):
        value = getattr(record, {"taxTotal": "tax_total"}.get(name, name))
        if value is not None:
            _exact(value, currency, f"{RECORD}.{name}")
    for index, line in enumerate(record.item.items if record.item else []):
        if line.amount is not None:
            _exact(line.amount, currency, f"{RECORD}.item.items.{index}.amount")
    return currency


def _custom(extra: dict[str, Any] | None, name: str) -> str | None:
    """A custom body field's value (a text field, or a reference's id)."""
    value = (extra or {}).get(name)
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if isinstance(value, str | int) and str(value).strip() else None


def _state(known: Known, entity: str, aggregate_id: UUID) -> dict[str, Any]:
    """The aggregate's state fields (empty if it vanished since the lookup)."""
    return known.state(entity, aggregate_id) or {}
