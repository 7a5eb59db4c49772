"""Chargebee's way in: HTTP Basic verification and the pure translator.

Chargebee signs nothing: a webhook is protected by the HTTP Basic user and password set on
it (``CONCORD_WEBHOOK_SECRETS=chargebee=user:password``, ``user:new|user:old`` while
rotating), compared in constant time. Events are API ``v2`` with Product Catalog 2.0
resources (``subscription_items`` with ``item_price_id``).

Order: every Chargebee resource carries ``resource_version`` (ms), which grows with each
change. Each event's resource version is merged into a mirror (object, id) before
translation, so an event older than one already received for the same record is ignored as
superseded, never applied over it. Subscriptions are translated by *reconciling* the
contract with the subscription as the event shows it (activate, renew, amend, suspend,
resume, cancel as needed), so whichever event of a burst is the newest converges the
contract, whatever its type and the order the burst arrived in. The hub's own stale-update
guard covers customer fields and order lines only, not contract status or term: for
contracts this adapter's ``resource_version`` check is what prevents a regression.
"""

from __future__ import annotations

import hmac
from base64 import b64decode
from binascii import Error as Base64Error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from adapters.chargebee.contracts import reconcile, subscribed
from adapters.chargebee.money import cents, in_decimal, money_at
from adapters.chargebee.schemas import (
    ChargebeeEvent,
    CreditNote,
    Customer,
    Invoice,
    InvoiceLineItem,
    Subscription,
    Transaction,
)
from adapters.inbound.convert import (
    business_date,
    currency_code,
    from_epoch_millis,
    from_epoch_seconds,
)
from adapters.inbound.identity import Nobody, identify, link_to
from adapters.inbound.matching import Candidate
from adapters.inbound.mirror import MirrorUpdate
from adapters.inbound.model import Known, Ref, SourceEvent, Step, Translation, lookup_or_wait
from adapters.inbound.products import sku_or_wait
from adapters.inbound.source import Incoming, Malformed, Unverified, parse_model
from hub.domain.identity import external_id

BILLING = "billing"
CHALLENGE = 'Basic realm="concord-chargebee", charset="UTF-8"'

#: The resource each followed event is about (``content.<name>``): its resource_version
#: orders the event, and the mirror keeps the newest one per record.
PRIMARY = {
    "customer_created": "customer",
    "customer_changed": "customer",
    "subscription_created": "subscription",
    "subscription_changed": "subscription",
    "subscription_cancelled": "subscription",
    "subscription_paused": "subscription",
    "subscription_resumed": "subscription",
    "subscription_renewed": "subscription",
    "subscription_activated": "subscription",
    "subscription_reactivated": "subscription",
    "invoice_generated": "invoice",
    "invoice_updated": "invoice",
    "payment_succeeded": "transaction",
    "payment_failed": "transaction",
    "payment_refunded": "transaction",
    "credit_note_created": "credit_note",
}


def _basic_credentials(incoming: Incoming) -> str:
    header = incoming.header("Authorization")
    if not header:
        raise Unverified("the Authorization header is missing", challenge=CHALLENGE)
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise Unverified("the Authorization header is not HTTP Basic", challenge=CHALLENGE)
    try:
        decoded = b64decode(token.strip(), validate=True).decode("utf-8")
    except (Base64Error, UnicodeDecodeError, ValueError):
        raise Unverified(
            "the Basic credentials are not base64 of user:password", challenge=CHALLENGE
        ) from None
    if ":" not in decoded:
        raise Unverified("the Basic credentials have no ':'", challenge=CHALLENGE)
    return decoded


@dataclass(frozen=True)
class ChargebeeAdapter:
    """``POST /v1/webhooks/chargebee``. ``account_field`` is the customer custom field (or
    ``meta_data`` key) holding the CRM account id (``CONCORD_CHARGEBEE_ACCOUNT_FIELD``);
    ``order_field`` the subscription's one naming the CRM opportunity
    (``CONCORD_CHARGEBEE_ORDER_FIELD``); ``erp_order_field`` the ERP sales order."""

    account_field: str = "cf_sf_account_id"
    order_field: str = "cf_sf_opportunity_id"
    erp_order_field: str = "cf_netsuite_sales_order_id"
    name: str = "chargebee"
    system: str = BILLING

    # -- verification and splitting ---------------------------------------------------

    def verify(self, incoming: Incoming, secrets: Sequence[str]) -> str:
        given = _basic_credentials(incoming).encode()
        matched = None
        for index, secret in enumerate(secrets):
            # Every secret is compared (no early exit), each in constant time.
            if hmac.compare_digest(given, secret.encode()) and matched is None:
                matched = index
        if matched is None:
            raise Unverified(
                "the Basic credentials match no configured chargebee user:password",
                challenge=CHALLENGE,
            )
        return f"http-basic (secret #{matched + 1})"

    def split(self, incoming: Incoming) -> list[SourceEvent]:
        try:
            document = orjson.loads(incoming.body)
        except orjson.JSONDecodeError as bad:
            raise Malformed(f"the body is not JSON: {bad}", "body") from None
        event = parse_model(ChargebeeEvent, document, "body")
        if event.api_version not in (None, "v2"):
            raise Malformed(
                f"Concord reads Chargebee API v2 events, not {event.api_version!r}; set the "
                "webhook's API version to v2",
                "body.api_version",
            )
        return [
            SourceEvent(
                event_id=event.id,
                event_type=event.event_type,
                document=document,
                raw=incoming.body,
                occurred_at=_occurred_at(event),
            )
        ]

    def mirror(self, event: SourceEvent) -> MirrorUpdate | None:
        """The newest ``resource_version`` seen per record (what "superseded" compares to)."""
        found = _versioned(event)
        if found is None:
            return None
        name, record_id, version = found
        return MirrorUpdate(
            object=name,
            record_id=record_id,
            fields={"resource_version": version},
            order=f"{version:020d}",
        )

    # -- translation ------------------------------------------------------------------

    def translate(self, event: SourceEvent, known: Known) -> Translation:
        handler = self._handlers().get(event.event_type)
        if handler is None:
            return Translation.ignore(
                f"Concord does not follow Chargebee {event.event_type} events"
            )
        parsed = parse_model(ChargebeeEvent, event.document, "body")
        superseded = _superseded(event, known)
        if superseded is not None:
            return superseded
        return handler(parsed, event, known)

    def _handlers(
        self,
    ) -> dict[str, Callable[[ChargebeeEvent, SourceEvent, Known], Translation]]:
        subscription = self._subscription
        return {
            "customer_created": self._customer,
            "customer_changed": self._customer,
            **{
                name: subscription for name, primary in PRIMARY.items() if primary == "subscription"
            },
            "invoice_generated": _invoice,
            "invoice_updated": _invoice,
            "payment_succeeded": _payment_succeeded,
            "payment_failed": _payment_failed,
            "payment_refunded": _payment_refunded,
            "credit_note_created": _credit_note,
        }

    def _customer(self, event: ChargebeeEvent, source: SourceEvent, known: Known) -> Translation:
        """Link only: billing does not own names, so a Chargebee customer never creates one.
        Without the account field it is matched (``vat_number``, then ``company``): a sure
        match links, an uncertain one waits for the match review queue, none is ignored."""
        del source
        customer = parse_model(Customer, _content(event, "customer"), "body.content.customer")
        linked = known.lookup(Ref(BILLING, "customer", customer.id))
        account = customer.reference(self.account_field)
        if account:
            target = lookup_or_wait(known, Ref("crm", "customer", account))
        elif linked is not None:
            return Translation.ignore(f"customer {customer.id} is linked already")
        else:
            target = self._matched(customer, known)
        if isinstance(target, Translation):
            return target
        return link_to(BILLING, customer.id, target, linked)

    def _matched(self, customer: Customer, known: Known) -> UUID | Translation:
        name, tax = customer.legal_name(), (customer.vat_number or "").strip() or None
        # A billing name is typed at checkout (billing does not own names): it never links
        # by itself; the tax id does.
        candidate = (
            Candidate(legal_name=name or "", tax_id=tax, names_trusted=False)
            if name or tax
            else None
        )
        found = identify(known, BILLING, customer.id, candidate)
        if isinstance(found, Nobody):
            said = (
                "a reviewer decided it is no customer Concord knows"
                if found.decided
                else (f"it has no {self.account_field} and matches no customer")
            )
            return Translation.ignore(
                f"customer {customer.id}: {said} (Concord never creates a customer from billing)"
            )
        return found

    def _subscription(
        self, event: ChargebeeEvent, source: SourceEvent, known: Known
    ) -> Translation:
        where = "body.content.subscription"
        sub = parse_model(Subscription, _content(event, "subscription"), where)
        currency = currency_code(sub.currency_code, field=f"{where}.currency_code")
        day = business_date(_when(source))
        skus = _skus(sub, known)
        if isinstance(skus, Translation):
            return skus
        contract_id = known.lookup(Ref(BILLING, "contract", sub.id))
        if contract_id is not None:
            state = _current(known, "contract", contract_id)
            return reconcile(sub, currency, day, contract_id, state, where, skus)
        customer = lookup_or_wait(known, Ref(BILLING, "customer", sub.customer_id))
        if isinstance(customer, Translation):
            return customer
        order_ref = self._order_ref(sub)
        if order_ref is None:
            return Translation.ignore(
                f"subscription {sub.id} names no order ({self.order_field} or "
                f"{self.erp_order_field}): Concord contracts are created from an order"
            )
        order = lookup_or_wait(known, order_ref)
        if isinstance(order, Translation):
            return order
        return reconcile(
            sub,
            currency,
            day,
            external_id(BILLING, "contract", sub.id),
            None,
            where,
            skus,
            create={"order_id": str(order), "customer_id": str(customer)},
        )

    def _order_ref(self, sub: Subscription) -> Ref | None:
        erp = sub.reference(self.erp_order_field)
        if erp:
            return Ref("erp", "order", erp)
        crm = sub.reference(self.order_field)
        return Ref("crm", "order", crm) if crm else None


# -- helpers ---------------------------------------------------------------------------


def _skus(sub: Subscription, known: Known) -> dict[str, str] | Translation:
    """The catalogue's SKU of each subscribed item price (``billing_price_ids``), or the
    wait for the first unmapped one: a contract item needs the SKU its order uses."""
    skus: dict[str, str] = {}
    for item in subscribed(sub):
        sku = sku_or_wait(known, BILLING, item.item_price_id)
        if isinstance(sku, Translation):
            return sku
        skus[item.item_price_id] = sku
    return skus


def _content(event: ChargebeeEvent, name: str) -> Any:
    if name not in event.content:
        raise Malformed(
            f"a {event.event_type} event carries content.{name}", f"body.content.{name}"
        )
    return event.content[name]


def _versioned(event: SourceEvent) -> tuple[str, str, int] | None:
    """(resource name, id, resource_version) of the event's primary resource, if it has them."""
    name = PRIMARY.get(event.event_type)
    content = event.document.get("content")
    if name is None or not isinstance(content, dict):
        return None
    resource = content.get(name)
    if not isinstance(resource, dict):
        return None
    record_id, version = resource.get("id"), resource.get("resource_version")
    if not isinstance(record_id, str) or isinstance(version, bool) or not isinstance(version, int):
        return None
    return name, record_id, version


def _occurred_at(event: ChargebeeEvent) -> datetime:
    """The change's own time: the primary resource's ``resource_version`` (ms), else the
    event's ``occurred_at`` (s); never the arrival time."""
    name = PRIMARY.get(event.event_type)
    resource = event.content.get(name) if name else None
    version = resource.get("resource_version") if isinstance(resource, dict) else None
    if isinstance(version, int) and not isinstance(version, bool):
        return from_epoch_millis(version, field=f"body.content.{name}.resource_version")
    return from_epoch_seconds(event.occurred_at, field="body.occurred_at")


def _when(source: SourceEvent) -> datetime:
    assert source.occurred_at is not None  # split() always sets it
    return source.occurred_at


def _superseded(event: SourceEvent, known: Known) -> Translation | None:
    found = _versioned(event)
    if found is None:
        return None
    name, record_id, version = found
    newest = (known.mirror(name, record_id) or {}).get("resource_version")
    if isinstance(newest, int) and newest > version:
        return Translation.ignore(
            f"{name} {record_id} resource_version {version} is older than {newest}, already "
            "received: superseded, nothing regresses"
        )
    return None


def _current(known: Known, entity: str, aggregate_id: UUID) -> dict[str, Any]:
    return known.state(entity, aggregate_id) or {}


def _day(value: int, field: str) -> date:
    return business_date(from_epoch_seconds(value, field=field))


# -- invoices --------------------------------------------------------------------------


def _invoice(event: ChargebeeEvent, source: SourceEvent, known: Known) -> Translation:
    """Issue (held until customer and subscription are known); voided → void. Payment is
    not read from the invoice: ``payment_succeeded`` carries the cash."""
    del source
    where = "body.content.invoice"
    invoice = parse_model(Invoice, _content(event, "invoice"), where)
    invoice_ref = Ref(BILLING, "invoice", invoice.id)
    issued = known.lookup(invoice_ref)
    if issued is not None:
        state = _current(known, "invoice", issued)
        if invoice.status == "voided" and state.get("status") != "void":
            return Translation(steps=(Step("invoice", "void", {}, target=issued),))
        return Translation.ignore(
            f"invoice {invoice.id} is issued already (status {invoice.status}: payments arrive "
            "as payment_succeeded)"
        )
    if invoice.status == "pending":
        return Translation.ignore(f"invoice {invoice.id} is pending: not issued yet")
    customer = lookup_or_wait(known, Ref(BILLING, "customer", invoice.customer_id))
    if isinstance(customer, Translation):
        return customer
    if not invoice.subscription_id:
        return Translation.ignore(
            f"invoice {invoice.id} has no subscription_id: a one-off Chargebee invoice names "
            "no contract or order for Concord to bill"
        )
    contract = lookup_or_wait(known, Ref(BILLING, "contract", invoice.subscription_id))
    if isinstance(contract, Translation):
        return contract
    currency = currency_code(invoice.currency_code, field=f"{where}.currency_code")
    lines = []
    for i, line in enumerate(invoice.line_items):
        body = _line(line, currency, f"{where}.line_items.{i}", known)
        if isinstance(body, Translation):
            return body  # an item price with no catalogue mapping holds the invoice
        lines.append(body)
    discounts = _discounts(invoice, currency, where)
    subtotal = Decimal(cents(invoice.sub_total, currency, field=f"{where}.sub_total"))
    subtotal += sum((Decimal(d["amount"]) for d in discounts), Decimal(0))
    issue_day = _day(invoice.date, f"{where}.date")
    due_day = _day(invoice.due_date, f"{where}.due_date") if invoice.due_date else issue_day
    data = {
        "customer_id": str(customer),
        "contract_id": str(contract),
        "lines": lines + discounts,
        "currency": currency,
        "subtotal": money_at(subtotal, currency, field=f"{where}.sub_total"),
        "tax": cents(invoice.tax, currency, field=f"{where}.tax"),
        "total": cents(invoice.total, currency, field=f"{where}.total"),
        "issue_date": issue_day.isoformat(),
        "due_date": due_day.isoformat(),
        "source_number": invoice.id,
    }
    steps = [Step("invoice", "issue", data, source_record_id=invoice.id)]
    if invoice.status == "voided":
        target = external_id(BILLING, "invoice", invoice.id)
        steps.append(Step("invoice", "void", {}, target=target))
    return Translation(steps=tuple(steps))


#: Line ``entity_type`` values naming an item price (``entity_id``), mapped to a SKU.
ITEM_PRICE_LINES = frozenset({"plan_item_price", "addon_item_price", "charge_item_price"})


def _line(
    line: InvoiceLineItem, currency: str, where: str, known: Known
) -> dict[str, Any] | Translation:
    """An invoice line; an item price's line takes the catalogue's SKU (held until mapped),
    an ad hoc charge keeps its own id."""
    sku = line.entity_id or line.id or "charge"
    if line.entity_type in ITEM_PRICE_LINES and line.entity_id:
        mapped = sku_or_wait(known, BILLING, line.entity_id)
        if isinstance(mapped, Translation):
            return mapped
        sku = mapped
    quantity = (
        in_decimal(line.quantity_in_decimal, field=f"{where}.quantity_in_decimal")
        if line.quantity_in_decimal
        else in_decimal(str(line.quantity or 1), field=f"{where}.quantity")
    )
    unit = (
        in_decimal(line.unit_amount_in_decimal, field=f"{where}.unit_amount_in_decimal")
        if line.unit_amount_in_decimal
        else Decimal(cents(line.unit_amount, currency, field=f"{where}.unit_amount"))
    )
    amount = (
        money_at(
            in_decimal(line.amount_in_decimal, field=f"{where}.amount_in_decimal"),
            currency,
            field=f"{where}.amount_in_decimal",
        )
        if line.amount_in_decimal
        else cents(line.amount, currency, field=f"{where}.amount")
    )
    body: dict[str, Any] = {
        "sku": sku,
        "description": line.description,
        "quantity": format(quantity.normalize(), "f"),
        "unit_price": format(unit.normalize(), "f"),
        "amount": amount,
    }
    if line.date_from is not None:
        body["service_period_start"] = _day(line.date_from, f"{where}.date_from").isoformat()
    if line.date_to is not None:
        body["service_period_end"] = _day(line.date_to, f"{where}.date_to").isoformat()
    return body


def _discounts(invoice: Invoice, currency: str, where: str) -> list[dict[str, Any]]:
    """Invoice-level discounts as negative lines: Chargebee's ``sub_total`` is before them,
    its ``total`` after, and a canonical invoice's subtotal is the sum of its lines."""
    raw = (invoice.model_extra or {}).get("discounts") or []
    if not isinstance(raw, list):
        raise Malformed("discounts is a list", f"{where}.discounts")
    lines = []
    for index, discount in enumerate(raw):
        field = f"{where}.discounts.{index}.amount"
        if not isinstance(discount, dict):
            raise Malformed("a discount is an object", f"{where}.discounts.{index}")
        value = cents(discount.get("amount"), currency, field=field)  # type: ignore[arg-type]
        negative = format(-in_decimal(value, field=field), "f")
        lines.append(
            {
                "sku": str(discount.get("entity_id") or "discount"),
                "description": discount.get("description"),
                "quantity": "1",
                "unit_price": negative,
                "amount": negative,
            }
        )
    return lines


# -- payments and credit notes ---------------------------------------------------------

_METHODS = {"card": "card", "direct_debit": "ach", "bank_transfer": "wire", "check": "check"}


def _transaction(event: ChargebeeEvent) -> Transaction:
    return parse_model(Transaction, _content(event, "transaction"), "body.content.transaction")


def _payment_succeeded(event: ChargebeeEvent, source: SourceEvent, known: Known) -> Translation:
    """Receive the transaction and apply it to each invoice in ``linked_invoices`` (held
    until each invoice is issued); what is not applied stays unapplied cash."""
    del source
    where = "body.content.transaction"
    txn = _transaction(event)
    if known.lookup(Ref(BILLING, "payment", txn.id)) is not None:
        return Translation.ignore(f"transaction {txn.id} is recorded already")
    if not txn.customer_id:
        raise Malformed("a payment transaction names its customer", f"{where}.customer_id")
    customer = lookup_or_wait(known, Ref(BILLING, "customer", txn.customer_id))
    if isinstance(customer, Translation):
        return customer
    invoices = []
    for linked in txn.linked_invoices:
        found = lookup_or_wait(known, Ref(BILLING, "invoice", linked.invoice_id))
        if isinstance(found, Translation):
            return found
        invoices.append((found, linked.applied_amount))
    currency = currency_code(txn.currency_code, field=f"{where}.currency_code")
    received = from_epoch_seconds(txn.date, field=f"{where}.date")
    payment_id = external_id(BILLING, "payment", txn.id)
    steps = [
        Step(
            "payment",
            "receive",
            {
                "customer_id": str(customer),
                "amount": {
                    "currency": currency,
                    "amount": cents(txn.amount, currency, field=f"{where}.amount"),
                },
                "method": _METHODS.get(txn.payment_method or "", "other"),
                "received_at": received.isoformat(),
                "reference": txn.id_at_gateway or txn.reference_number or txn.id,
            },
            source_record_id=txn.id,
        )
    ]
    for index, (invoice_id, applied) in enumerate(invoices):
        field = f"{where}.linked_invoices.{index}.applied_amount"
        money = {"currency": currency, "amount": cents(applied, currency, field=field)}
        steps.append(
            Step(
                "payment",
                "apply",
                {"invoice_id": str(invoice_id), "amount": money},
                target=payment_id,
            )
        )
    return Translation(steps=tuple(steps))


def _payment_failed(event: ChargebeeEvent, source: SourceEvent, known: Known) -> Translation:
    """A failed attempt. The model has a ``fail`` for a *received* payment that did not
    settle (e.g. direct debit reported in progress), not a record of a failed attempt."""
    del source
    txn = _transaction(event)
    reason = txn.error_text or txn.error_code or "payment failed in Chargebee"
    payment = known.lookup(Ref(BILLING, "payment", txn.id))
    if payment is None:
        return Translation.ignore(
            f"failed attempt {txn.id} ({reason}): no payment was received, and the canonical "
            "model has no record of failed payment attempts"
        )
    state = _current(known, "payment", payment)
    if state.get("status") == "failed":
        return Translation.ignore(f"payment {txn.id} is failed already")
    return Translation(steps=(Step("payment", "fail", {"reason": reason[:1000]}, target=payment),))


def _payment_refunded(event: ChargebeeEvent, source: SourceEvent, known: Known) -> Translation:
    """The refund transaction names the payment it refunds (``refunded_txn_id``)."""
    del source
    where = "body.content.transaction"
    txn = _transaction(event)
    if not txn.refunded_txn_id:
        raise Malformed("a refund names the payment it refunds", f"{where}.refunded_txn_id")
    payment = lookup_or_wait(known, Ref(BILLING, "payment", txn.refunded_txn_id))
    if isinstance(payment, Translation):
        return payment
    currency = currency_code(txn.currency_code, field=f"{where}.currency_code")
    amount = {"currency": currency, "amount": cents(txn.amount, currency, field=f"{where}.amount")}
    return Translation(
        steps=(Step("payment", "refund", {"amount": amount, "reference": txn.id}, target=payment),)
    )


def _credit_note(event: ChargebeeEvent, source: SourceEvent, known: Known) -> Translation:
    """Credit the invoice it references; its id is the number (counted once per invoice)."""
    del source
    where = "body.content.credit_note"
    note = parse_model(CreditNote, _content(event, "credit_note"), where)
    invoice = lookup_or_wait(known, Ref(BILLING, "invoice", note.reference_invoice_id))
    if isinstance(invoice, Translation):
        return invoice
    currency = currency_code(note.currency_code, field=f"{where}.currency_code")
    data = {
        "amount": {
            "currency": currency,
            "amount": cents(note.total, currency, field=f"{where}.total"),
        },
        "credit_note_number": note.id,
        "reason": note.create_reason_code or note.reason_code,
    }
    return Translation(steps=(Step("invoice", "credit", data, target=invoice),))
