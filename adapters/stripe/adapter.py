"""Stripe's way in: ``Stripe-Signature`` verification and the pure translator.

Pinned to API version ``2025-03-31.basil`` (set the webhook endpoint's version to it in the
Stripe dashboard): from basil on, an invoice names its subscription under
``parent.subscription_details`` and its lines their subscription item under
``parent.subscription_item_details``, and service periods live on the lines. An event of
another version is still translated when its shape fits, and refused (422, naming the
field) when it does not.

What Stripe tells Concord (billing owns these facts, adapters/ownership.yaml):

* ``customer.created|updated`` — links the Stripe customer to the CRM account named by
  ``metadata.sf_account_id`` (held until that account is known);
* ``invoice.finalized`` — issues the invoice (held until its customer and subscription are
  known); ``invoice.paid`` — receives the payment and applies it (held until the invoice is
  issued); ``invoice.voided`` / ``invoice.marked_uncollectible``.

Other types are answered 202 and logged as ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import stripe

from adapters.inbound.convert import (
    business_date,
    currency_code,
    from_epoch_seconds,
    from_minor_units,
)
from adapters.inbound.identity import Nobody, identify, link_to
from adapters.inbound.matching import Candidate
from adapters.inbound.mirror import MirrorUpdate
from adapters.inbound.model import Known, Ref, SourceEvent, Step, Translation, lookup_or_wait
from adapters.inbound.products import sku_or_wait
from adapters.inbound.source import Incoming, Malformed, Unverified, parse_model
from adapters.stripe import catalogue, subscriptions
from adapters.stripe.schemas import Customer, Invoice, InvoiceLine, StripeEvent
from hub.domain.identity import external_id
from hub.domain.money import exponent

STRIPE_API_VERSION = "2025-03-31.basil"
TOLERANCE_S = 300
BILLING = "billing"


@dataclass(frozen=True)
class StripeAdapter:
    """``POST /v1/webhooks/stripe``. ``account_key`` is the customer metadata key holding
    the CRM account id (configurable: ``CONCORD_STRIPE_ACCOUNT_METADATA_KEY``)."""

    account_key: str = "sf_account_id"
    erp_customer_key: str = "netsuite_customer_id"
    name: str = "stripe"
    system: str = BILLING

    def verify(self, incoming: Incoming, secrets: Sequence[str]) -> str:
        header = incoming.header("Stripe-Signature")
        if not header:
            raise Unverified("the Stripe-Signature header is missing")
        for index, secret in enumerate(secrets):
            try:
                stripe.WebhookSignature.verify_header(
                    incoming.body, header, secret, tolerance=TOLERANCE_S
                )
            except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError):
                continue  # an undecodable body or header cannot carry a valid signature
            return f"stripe-signature v1 (secret #{index + 1})"
        raise Unverified(
            "the Stripe-Signature does not match the body for any configured secret, or its "
            f"timestamp is more than {TOLERANCE_S} s old"
        )

    def split(self, incoming: Incoming) -> list[SourceEvent]:
        try:
            document = orjson.loads(incoming.body)
        except orjson.JSONDecodeError as bad:
            raise Malformed(f"the body is not JSON: {bad}", "body") from None
        event = parse_model(StripeEvent, document, "body")
        return [
            SourceEvent(
                event_id=event.id,
                event_type=event.type,
                document=document,
                raw=incoming.body,
                occurred_at=from_epoch_seconds(event.created, field="body.created"),
            )
        ]

    def mirror(self, event: SourceEvent) -> MirrorUpdate | None:
        """Stripe events carry the whole object: nothing to merge."""
        del event
        return None

    def translate(self, event: SourceEvent, known: Known) -> Translation:
        handler = self._handlers().get(event.event_type)
        if handler is None:
            return Translation.ignore(f"Concord does not follow Stripe {event.event_type} events")
        parsed = parse_model(StripeEvent, event.document, "body")
        return handler(parsed, known)

    def _handlers(self) -> dict[str, Callable[[StripeEvent, Known], Translation]]:
        return {
            "customer.created": self._customer,
            "customer.updated": self._customer,
            "invoice.finalized": _invoice_finalized,
            "invoice.paid": _invoice_paid,
            "invoice.voided": lambda e, k: _invoice_status(e, k, "void"),
            "invoice.marked_uncollectible": lambda e, k: _invoice_status(
                e, k, "mark_uncollectible"
            ),
            "customer.subscription.created": subscriptions.subscription_created,
            "customer.subscription.updated": subscriptions.subscription_changed,
            "customer.subscription.paused": subscriptions.subscription_changed,
            "customer.subscription.resumed": subscriptions.subscription_changed,
            "customer.subscription.deleted": subscriptions.subscription_deleted,
            "price.created": catalogue.price,
            "price.updated": catalogue.price,
            "invoice.payment_failed": catalogue.payment_failed,
            "refund.created": subscriptions.refund,
            "refund.updated": subscriptions.refund,
            "credit_note.created": subscriptions.credit_note,
        }

    def _named_account(self, customer: Customer) -> Ref | None:
        """The customer another system already knows, by the id in the metadata: the CRM
        account (``account_key``), else the ERP customer (``erp_customer_key``)."""
        if customer.metadata.get(self.account_key):
            return Ref("crm", "customer", customer.metadata[self.account_key])
        if customer.metadata.get(self.erp_customer_key):
            return Ref("erp", "customer", customer.metadata[self.erp_customer_key])
        return None

    def _customer(self, event: StripeEvent, known: Known) -> Translation:
        customer = parse_model(Customer, event.data.object, "body.data.object")
        linked = known.lookup(Ref(BILLING, "customer", customer.id))
        named = self._named_account(customer)
        if named is not None:
            target = known.lookup(named)
            if target is None:
                return Translation.wait(named)
        elif linked is not None:
            return Translation.ignore(f"customer {customer.id} is linked already")
        else:
            found = _matched(customer, known, self.account_key)
            if isinstance(found, Translation):
                return found
            target = found
        return link_to(BILLING, customer.id, target, linked)


def _matched(customer: Customer, known: Known, account_key: str) -> UUID | Translation:
    """A Stripe customer without a CRM account id: the customer it surely is, a review, or
    nothing (billing does not create customers: the CRM owns their names)."""
    # Stripe does not own names (a buyer types them at checkout): no name links by itself.
    candidate = Candidate(legal_name=customer.name, names_trusted=False) if customer.name else None
    found = identify(known, BILLING, customer.id, candidate)
    if not isinstance(found, Nobody):
        return found
    if found.decided:
        reason = "a reviewer decided it is no customer Concord knows"
    elif candidate is None:
        reason = f"it has no metadata.{account_key} and no name to match by"
    else:
        reason = f"it has no metadata.{account_key} and matches no customer"
    return Translation.ignore(f"customer {customer.id}: {reason}")


def _invoice_finalized(event: StripeEvent, known: Known) -> Translation:
    invoice = parse_model(Invoice, event.data.object, "body.data.object")
    if known.lookup(Ref(BILLING, "invoice", invoice.id)) is not None:
        return Translation.ignore(f"invoice {invoice.id} is issued already")
    customer = lookup_or_wait(known, Ref(BILLING, "customer", invoice.customer))
    if isinstance(customer, Translation):
        return customer
    contract = order = None
    if invoice.subscription:
        contract = lookup_or_wait(known, Ref(BILLING, "contract", invoice.subscription))
        if isinstance(contract, Translation):
            return contract
    else:  # a one-off invoice bills the order its metadata names
        ref = _order_ref(invoice.metadata)
        if ref is None:
            raise Malformed(
                f"invoice {invoice.id} has no subscription, and no metadata.sf_opportunity_id "
                "or metadata.netsuite_sales_order_id naming the order it bills",
                "body.data.object.metadata",
            )
        order = lookup_or_wait(known, ref)
        if isinstance(order, Translation):
            return order
    currency = currency_code(invoice.currency, field="body.data.object.currency")
    issued = from_epoch_seconds(
        invoice.effective_at or invoice.status_transitions.finalized_at or invoice.created,
        field="body.data.object.effective_at",
    )
    due = (
        from_epoch_seconds(invoice.due_date, field="body.data.object.due_date")
        if invoice.due_date
        else issued
    )
    taxes = sum(t.amount for t in invoice.total_taxes or [])
    where = "body.data.object"
    lines = []
    for i, line in enumerate(invoice.lines.data):
        body = _line(line, currency, f"{where}.lines.data.{i}", known)
        if isinstance(body, Translation):
            return body  # a price with no catalogue mapping holds the invoice
        lines.append(body)
    data = {
        "customer_id": str(customer),
        "contract_id": None if contract is None else str(contract),
        "order_id": None if order is None else str(order),
        "lines": lines,
        "currency": currency,
        "subtotal": from_minor_units(invoice.subtotal, currency, field=f"{where}.subtotal"),
        "tax": from_minor_units(taxes, currency, field=f"{where}.total_taxes"),
        "total": from_minor_units(invoice.total, currency, field=f"{where}.total"),
        "issue_date": business_date(issued).isoformat(),
        "due_date": business_date(due).isoformat(),
        "source_number": invoice.number,
    }
    return Translation(steps=(Step("invoice", "issue", data, source_record_id=invoice.id),))


def _order_ref(metadata: dict[str, str]) -> Ref | None:
    """The order a one-off invoice bills: the ERP sales order, else the CRM opportunity."""
    if metadata.get("netsuite_sales_order_id"):
        return Ref("erp", "order", metadata["netsuite_sales_order_id"])
    if metadata.get("sf_opportunity_id"):
        return Ref("crm", "order", metadata["sf_opportunity_id"])
    return None


def _line(
    line: InvoiceLine, currency: str, where: str, known: Known
) -> dict[str, Any] | Translation:
    """An invoice line; its SKU is the catalogue's for the line's price (``billing product
    <price id>``: held until mapped). A line without a price (an amount-only invoice item)
    keeps the line id."""
    quantity = line.quantity or 1
    amount = Decimal(from_minor_units(line.amount, currency, field=f"{where}.amount"))
    details = line.pricing.price_details if line.pricing else None
    sku: str | None = None
    if details is not None and details.price:
        mapped = sku_or_wait(known, BILLING, details.price)
        if isinstance(mapped, Translation):
            return mapped
        sku = mapped
    exact = line.pricing.unit_amount_decimal if line.pricing else None
    # ``unit_amount_decimal`` is in minor units, possibly fractional ("333.3333").
    unit = Decimal(exact).scaleb(-exponent(currency)) if exact is not None else amount / quantity
    body: dict[str, Any] = {
        "sku": sku or line.id,
        "description": line.description,
        "quantity": str(quantity),
        "unit_price": format(unit.quantize(Decimal("0.000001")).normalize(), "f"),
        "amount": format(amount, "f"),
    }
    if line.period is not None:
        body["service_period_start"] = business_date(
            from_epoch_seconds(line.period.start, field=f"{where}.period.start")
        ).isoformat()
        body["service_period_end"] = business_date(
            from_epoch_seconds(line.period.end, field=f"{where}.period.end")
        ).isoformat()
    return body


def _invoice_paid(event: StripeEvent, known: Known) -> Translation:
    invoice = parse_model(Invoice, event.data.object, "body.data.object")
    invoice_id = lookup_or_wait(known, Ref(BILLING, "invoice", invoice.id))
    if isinstance(invoice_id, Translation):
        return invoice_id
    if invoice.amount_paid <= 0:
        return Translation.ignore(f"invoice {invoice.id} was paid with no cash (amount_paid 0)")
    # The PaymentIntent identifies the payment (refunds name it); without one, the invoice.
    record = invoice.payment_intent or f"{invoice.id}/payment"
    if known.lookup(Ref(BILLING, "payment", record)) is not None:
        return Translation.ignore(f"the payment of invoice {invoice.id} is recorded already")
    customer = lookup_or_wait(known, Ref(BILLING, "customer", invoice.customer))
    if isinstance(customer, Translation):
        return customer
    currency = currency_code(invoice.currency, field="body.data.object.currency")
    money = {
        "currency": currency,
        "amount": from_minor_units(
            invoice.amount_paid, currency, field="body.data.object.amount_paid"
        ),
    }
    paid = from_epoch_seconds(
        invoice.status_transitions.paid_at or event.created,
        field="body.data.object.status_transitions.paid_at",
    )
    payment_id = external_id(BILLING, "payment", record)
    return Translation(
        steps=(
            Step(
                "payment",
                "receive",
                {
                    "customer_id": str(customer),
                    "amount": money,
                    "method": "card",
                    "received_at": paid.isoformat(),
                    "reference": invoice.number or invoice.id,
                },
                source_record_id=record,
            ),
            Step(
                "payment",
                "apply",
                {"invoice_id": str(invoice_id), "amount": money},
                target=payment_id,
            ),
        )
    )


def _invoice_status(event: StripeEvent, known: Known, command: str) -> Translation:
    invoice = parse_model(Invoice, event.data.object, "body.data.object")
    invoice_id = lookup_or_wait(known, Ref(BILLING, "invoice", invoice.id))
    if isinstance(invoice_id, Translation):
        return invoice_id
    state = known.state("invoice", invoice_id)
    wanted = {"void": "void", "mark_uncollectible": "uncollectible"}[command]
    if state is not None and state["status"] == wanted:
        return Translation.ignore(f"invoice {invoice.id} is {wanted} already")
    return Translation(steps=(Step("invoice", command, {}, target=invoice_id),))
