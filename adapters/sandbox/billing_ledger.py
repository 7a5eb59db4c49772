"""The books of the billing sandbox (:mod:`adapters.sandbox.billing`): records, the events
they cause (snapshots, sent once the call that caused them is answered), invoices, payment
attempts (one PaymentIntent per invoice, a charge per attempt), refunds and credit notes.

Why apart from the API: subscriptions, the billing cycle and the admin API all end in
the same invoice and payment paths; here they are written once.
"""

from __future__ import annotations

import copy
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from adapters.sandbox.base import Sandbox
from adapters.sandbox.billing_money import line_amount
from adapters.sandbox.stripe_params import choice, flag, integer, metadata, only, text
from adapters.sandbox.stripe_wire import StripeFailure, missing

__all__ = ["API_VERSION", "Ctx", "Ledger", "declined", "new_id", "subscription_of"]

API_VERSION = "2025-03-31.basil"
_RETRY_S = 3 * 86400
Params = dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


@dataclass
class Ctx:
    """One API call: its request id, its idempotency key, and the events it caused (sent
    once the call is answered, so a refused call notifies nothing)."""

    request_id: str | None
    idempotency_key: str | None
    events: list[dict[str, Any]] = field(default_factory=list)


class Ledger(Sandbox):
    """The books of the billing sandbox: its records and the events they cause; invoices,
    payment attempts, refunds and credit notes (what every billing path ends in)."""

    def __init__(self) -> None:
        super().__init__()
        self.api_version = API_VERSION
        self.events: dict[str, dict[str, Any]] = {}
        self.failing_payments = 0
        self._numbers = itertools.count(1)
        self._invoice_pi: dict[str, str] = {}

    def _send(self, ctx: Ctx) -> None:
        for event in ctx.events:
            self.webhooks.emit(event["id"], event["type"], event)

    def _event(
        self,
        ctx: Ctx,
        event_type: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
    ) -> None:
        """Record an event with a snapshot of ``obj`` now (later changes are later events)."""
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous:
            data["previous_attributes"] = copy.deepcopy(previous)
        event: dict[str, Any] = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": self.api_version,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1 if self.webhooks.url else 0,
            "type": event_type,
            "data": data,
            "request": {"id": ctx.request_id, "idempotency_key": ctx.idempotency_key},
        }
        self.events[event["id"]] = event
        ctx.events.append(event)

    def _table(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.records.setdefault(kind, {})

    def _find(self, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
        found = self._table(kind).get(object_id)
        if found is None:
            raise missing(kind, object_id, param)
        return found

    def _created(self, ctx: Ctx, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Keep a new object and announce it (``<kind>.created``)."""
        self._table(kind)[obj["id"]] = obj
        self._event(ctx, f"{kind}.created", obj)
        return copy.deepcopy(obj)

    def _updated(
        self, ctx: Ctx, kind: str, obj: dict[str, Any], before: dict[str, Any]
    ) -> dict[str, Any]:
        """Announce a change with the previous values of what changed (none: no event)."""
        changed = {k: v for k, v in before.items() if obj.get(k) != v}
        if changed:
            self._event(ctx, f"{kind}.updated", obj, changed)
        return copy.deepcopy(obj)

    def _declines(self) -> bool:
        """Whether the next payment attempt declines (``/_admin/fail_payments``)."""
        if self.failing_payments > 0:
            self.failing_payments -= 1
            return True
        return False

    # --- invoices and payments ---------------------------------------------------------------
    def _line(
        self,
        sub: dict[str, Any],
        item: dict[str, Any],
        quantity: int,
        amount: int,
        period: tuple[int, int],
        *,
        proration: bool = False,
        description: str | None = None,
    ) -> dict[str, Any]:
        price = item["price"]
        return {
            "id": new_id("il"),
            "object": "line_item",
            "amount": amount,
            "currency": sub["currency"],
            "description": description or f"{quantity} x {price.get('nickname') or price['id']}",
            "quantity": quantity,
            "period": {"start": period[0], "end": period[1]},
            "pricing": {
                "type": "price_details",
                "price_details": {"price": price["id"], "product": price["product"]},
                "unit_amount_decimal": price["unit_amount_decimal"],
            },
            "parent": {
                "type": "subscription_item_details",
                "subscription_item_details": {
                    "subscription_item": item["id"],
                    "subscription": sub["id"],
                    "proration": proration,
                },
            },
            "metadata": {},
        }

    def _licensed_lines(
        self, sub: dict[str, Any], items: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        return [
            self._line(
                sub,
                i,
                i["quantity"],
                line_amount(i["price"], i["quantity"]),
                (i["current_period_start"], i["current_period_end"]),
            )
            for i in items
            if i["price"]["recurring"]["usage_type"] == "licensed"
        ]

    def _draft(
        self, sub: dict[str, Any], reason: str, lines: list[dict[str, Any]]
    ) -> dict[str, Any]:
        now = int(time.time())
        total = sum(line["amount"] for line in lines)
        invoice_id = new_id("in")
        starts = [line["period"]["start"] for line in lines] or [now]
        ends = [line["period"]["end"] for line in lines] or [now]
        return {
            "id": invoice_id,
            "object": "invoice",
            "created": now,
            "livemode": False,
            "customer": sub["customer"],
            "currency": sub["currency"],
            "number": None,
            "status": "draft",
            "billing_reason": reason,
            "collection_method": sub["collection_method"],
            "subtotal": total,
            "total": total,
            "total_taxes": [],
            "amount_due": max(0, total),
            "amount_paid": 0,
            "amount_remaining": max(0, total),
            "attempt_count": 0,
            "attempted": False,
            "next_payment_attempt": None,
            "period_start": min(starts),
            "period_end": max(ends),
            "effective_at": None,
            "due_date": None,
            "hosted_invoice_url": f"https://invoice.stripe.com/i/sandbox/{invoice_id}",
            "last_finalization_error": None,
            "lines": {
                "object": "list",
                "data": lines,
                "has_more": False,
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
            "parent": {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": dict(sub["metadata"]),
                },
            },
            "payments": {
                "object": "list",
                "data": [],
                "has_more": False,
                "url": f"/v1/invoice_payments?invoice={invoice_id}",
            },
            "status_transitions": {
                "finalized_at": None,
                "paid_at": None,
                "voided_at": None,
                "marked_uncollectible_at": None,
            },
            "metadata": {},
        }

    def _finalize(self, ctx: Ctx, invoice: dict[str, Any]) -> None:
        now = int(time.time())
        customer = self._find("customer", invoice["customer"])
        invoice["status"] = "open"
        invoice["number"] = f"{customer['invoice_prefix']}-{next(self._numbers):04d}"
        invoice["effective_at"] = now
        invoice["status_transitions"]["finalized_at"] = now
        sub = self._table("subscription").get(subscription_of(invoice) or "")
        if sub is not None and sub["collection_method"] == "send_invoice":
            invoice["due_date"] = now + 86400 * int(sub["days_until_due"] or 30)
        self._event(ctx, "invoice.finalized", invoice)

    def _collect(self, ctx: Ctx, sub: dict[str, Any], invoice: dict[str, Any], fail: bool) -> None:
        """Finalize and, for automatic collection, charge (a paused subscription is never
        charged: its invoice stays a draft, or is voided or marked uncollectible)."""
        paused = sub.get("pause_collection")
        if paused is not None:
            if paused["behavior"] == "keep_as_draft":
                return
            self._finalize(ctx, invoice)
            status = "void" if paused["behavior"] == "void" else "uncollectible"
            invoice["status"] = status
            moment = "voided_at" if status == "void" else "marked_uncollectible_at"
            invoice["status_transitions"][moment] = int(time.time())
            self._event(
                ctx,
                "invoice.voided" if status == "void" else "invoice.marked_uncollectible",
                invoice,
            )
            return
        self._finalize(ctx, invoice)
        if invoice["amount_remaining"] <= 0:
            self._mark_paid(ctx, invoice, None)
        elif sub["collection_method"] == "charge_automatically":
            self._charge(ctx, invoice, fail=fail, subscription=sub)

    def _charge(
        self,
        ctx: Ctx,
        invoice: dict[str, Any],
        *,
        fail: bool,
        subscription: dict[str, Any] | None,
        quiet: bool = False,
    ) -> bool:
        """One payment attempt of an open invoice (one PaymentIntent per invoice, a charge
        per attempt). ``quiet``: the subscription's status change is reported by the caller."""
        declined = self._declines() or fail
        now = int(time.time())
        amount = invoice["amount_remaining"]
        pi = self._table("payment_intent").get(self._invoice_pi.get(invoice["id"], ""))
        if pi is None:
            pi = {
                "id": new_id("pi"),
                "object": "payment_intent",
                "created": now,
                "livemode": False,
                "amount": amount,
                "amount_received": 0,
                "currency": invoice["currency"],
                "customer": invoice["customer"],
                "description": f"Invoice {invoice['number']}",
                "status": "requires_payment_method",
                "latest_charge": None,
                "last_payment_error": None,
                "metadata": {},
            }
            self._table("payment_intent")[pi["id"]] = pi
            self._invoice_pi[invoice["id"]] = pi["id"]
        charge = {
            "id": new_id("ch"),
            "object": "charge",
            "created": now,
            "livemode": False,
            "amount": amount,
            "amount_captured": 0 if declined else amount,
            "amount_refunded": 0,
            "refunded": False,
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "payment_intent": pi["id"],
            "status": "failed" if declined else "succeeded",
            "paid": not declined,
            "failure_code": "card_declined" if declined else None,
            "failure_message": "Your card was declined." if declined else None,
            "outcome": {"type": "issuer_declined" if declined else "authorized"},
            "metadata": {},
        }
        self._table("charge")[charge["id"]] = charge
        pi["latest_charge"] = charge["id"]
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        previous_status = subscription["status"] if subscription else None
        if declined:
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
                "charge": charge["id"],
            }
            invoice["next_payment_attempt"] = now + _RETRY_S
            self._event(ctx, "charge.failed", charge)
            self._event(ctx, "payment_intent.payment_failed", pi)
            self._event(ctx, "invoice.payment_failed", invoice)
            if subscription is not None:
                first = invoice["billing_reason"] == "subscription_create"
                if first and subscription["status"] == "incomplete":
                    pass
                elif subscription["status"] == "active":
                    subscription["status"] = "past_due"
        else:
            pi["status"] = "succeeded"
            pi["amount_received"] = amount
            pi["last_payment_error"] = None
            self._event(ctx, "charge.succeeded", charge)
            self._event(ctx, "payment_intent.succeeded", pi)
            self._mark_paid(ctx, invoice, pi["id"])
            if subscription is not None and subscription["status"] in ("incomplete", "past_due"):
                subscription["status"] = "active"
        if subscription is not None and not quiet and subscription["status"] != previous_status:
            self._event(
                ctx, "customer.subscription.updated", subscription, {"status": previous_status}
            )
        return not declined

    def _mark_paid(self, ctx: Ctx, invoice: dict[str, Any], pi_id: str | None) -> None:
        now = int(time.time())
        paid = invoice["amount_remaining"]
        invoice["status"] = "paid"
        invoice["amount_paid"] += paid
        invoice["amount_remaining"] = 0
        invoice["next_payment_attempt"] = None
        invoice["status_transitions"]["paid_at"] = now
        if pi_id is not None:
            invoice["payments"]["data"].append(
                {
                    "id": new_id("inpay"),
                    "object": "invoice_payment",
                    "amount_paid": paid,
                    "currency": invoice["currency"],
                    "invoice": invoice["id"],
                    "is_default": True,
                    "status": "paid",
                    "payment": {"type": "payment_intent", "payment_intent": pi_id},
                    "status_transitions": {"paid_at": now, "canceled_at": None},
                }
            )
        self._event(ctx, "invoice.paid", invoice)
        self._event(ctx, "invoice.payment_succeeded", invoice)

    def _open_invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice = self._find("invoice", invoice_id)
        if invoice["status"] != "open":
            raise StripeFailure(
                400,
                f"Invoice is {invoice['status']}; only an open invoice can be paid or voided.",
                code="invoice_not_editable" if invoice["status"] != "draft" else "invoice_not_open",
            )
        return invoice

    def _finalize_invoice(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "auto_advance")
        invoice = self._find("invoice", path["id"])
        if invoice["status"] != "draft":
            raise StripeFailure(
                400,
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_already_finalized",
            )
        self._finalize(ctx, invoice)
        return copy.deepcopy(invoice)

    def _pay_invoice(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "paid_out_of_band payment_method off_session")
        invoice = self._open_invoice(path["id"])
        sub = self._table("subscription").get(subscription_of(invoice) or "")
        if flag(params, "paid_out_of_band"):
            self._mark_paid(ctx, invoice, None)
            return copy.deepcopy(invoice)
        if not self._charge(ctx, invoice, fail=False, subscription=sub):
            raise declined()
        return copy.deepcopy(invoice)

    def _void_invoice(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "")
        invoice = self._open_invoice(path["id"])
        invoice["status"] = "void"
        invoice["amount_remaining"] = 0
        invoice["status_transitions"]["voided_at"] = int(time.time())
        self._event(ctx, "invoice.voided", invoice)
        return copy.deepcopy(invoice)

    # --- refunds and credit notes ------------------------------------------------------------
    def _create_refund(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "payment_intent charge amount reason metadata")
        pi_id, charge_id = text(params, "payment_intent"), text(params, "charge")
        if pi_id is None and charge_id is None:
            raise StripeFailure(
                400,
                "One of the following params should be provided for this "
                "request: payment_intent or charge.",
                param="payment_intent",
            )
        if charge_id is None:
            pi = self._find("payment_intent", pi_id or "", "payment_intent")
            if pi["status"] != "succeeded":
                raise StripeFailure(
                    400,
                    "This PaymentIntent does not have a successful charge to refund.",
                    code="charge_not_refundable",
                    param="payment_intent",
                )
            charge_id = pi["latest_charge"]
        charge = self._find("charge", charge_id or "", "charge")
        left = charge["amount_captured"] - charge["amount_refunded"]
        amount = integer(params, "amount", minimum=1) or left
        if amount > left or left <= 0:
            raise StripeFailure(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                code="amount_too_large" if left > 0 else "charge_already_refunded",
                param="amount",
            )
        refund = {
            "id": new_id("re"),
            "object": "refund",
            "created": int(time.time()),
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "reason": choice(
                params, "reason", ("duplicate", "fraudulent", "requested_by_customer"), None
            ),
            "status": "succeeded",
            "metadata": metadata(params),
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
        answer = self._created(ctx, "refund", refund)
        self._event(
            ctx, "charge.refunded", charge, {"amount_refunded": charge["amount_refunded"] - amount}
        )
        return answer

    def _create_credit_note(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "invoice amount reason memo metadata")
        invoice = self._find("invoice", text(params, "invoice", required=True) or "", "invoice")
        if invoice["status"] not in ("open", "paid"):
            raise StripeFailure(
                400,
                "You can only create a credit note for an open or paid invoice.",
                param="invoice",
            )
        credited = sum(
            n["total"]
            for n in self._table("credit_note").values()
            if n["invoice"] == invoice["id"] and n["status"] == "issued"
        )
        available = invoice["total"] - credited
        amount = integer(params, "amount", minimum=1) or available
        if amount > available:
            raise StripeFailure(
                400,
                f"The credit note amount ({amount}) exceeds what remains to credit on the "
                f"invoice ({available}).",
                param="amount",
            )
        kind = "post_payment" if invoice["status"] == "paid" else "pre_payment"
        notes = self._table("credit_note").values()
        sequence = 1 + sum(1 for n in notes if n["invoice"] == invoice["id"])
        note = {
            "id": new_id("cn"),
            "object": "credit_note",
            "created": int(time.time()),
            "livemode": False,
            "number": f"{invoice['number']}-CN-{sequence:02d}",
            "invoice": invoice["id"],
            "customer": invoice["customer"],
            "currency": invoice["currency"],
            "amount": amount,
            "subtotal": amount,
            "total": amount,
            "status": "issued",
            "type": kind,
            "reason": choice(
                params,
                "reason",
                ("duplicate", "fraudulent", "order_change", "product_unsatisfactory"),
                None,
            ),
            "memo": text(params, "memo"),
            "refunds": [],
            "out_of_band_amount": None,
            "metadata": metadata(params),
        }
        if kind == "pre_payment":
            invoice["amount_remaining"] = max(0, invoice["amount_remaining"] - amount)
            invoice["amount_due"] = invoice["amount_remaining"]
        return self._created(ctx, "credit_note", note)


def declined() -> StripeFailure:
    """A card decline: 402 ``card_error``, saved for replay (the attempt happened)."""
    return StripeFailure(
        402,
        "Your card was declined.",
        error_type="card_error",
        code="card_declined",
        saved=True,
        extra={"decline_code": "generic_decline"},
    )


def subscription_of(invoice: dict[str, Any]) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    found = details.get("subscription")
    return found if isinstance(found, str) else None
