"""Stripe prices and failed invoice payments.

* ``price.created`` / ``price.updated``: a price that names its canonical SKU
  (``metadata.sku``, else ``lookup_key``) adds its id to that product's
  ``billing_price_ids`` (billing owns that list; the product must exist in the catalogue:
  the ERP owns the item master). Products themselves carry no mapping: prices do.
* ``invoice.payment_failed``: a failed attempt recorded on the invoice (attempt number,
  amount due, the time of the attempt); it changes no balance and books no cash.
"""

from __future__ import annotations

from typing import Any

from adapters.inbound.convert import currency_code, from_epoch_seconds, from_minor_units
from adapters.inbound.model import Known, Ref, Step, Translation
from adapters.inbound.source import parse_model
from adapters.stripe.schemas import Invoice, Price, StripeEvent
from hub.domain.product import product_id

BILLING = "billing"
OBJECT = "body.data.object"


def price(event: StripeEvent, known: Known) -> Translation:
    found = parse_model(Price, event.data.object, OBJECT)
    sku = (found.model_extra or {}).get("metadata", {}).get("sku") or found.lookup_key
    if not sku:
        return Translation.ignore(
            f"price {found.id} names no SKU (metadata.sku or lookup_key): map it in the "
            "catalogue (PUT /v1/mappings/{sku} with billing_price_ids)"
        )
    product = product_id(str(sku))
    state = known.state("product", product)
    if state is None:
        return Translation.ignore(
            f"price {found.id} names SKU {sku!r}, which the catalogue does not hold: the ERP "
            "defines products (ops/mappings/products.yaml)"
        )
    if found.id in state["ids"]["billing_price_ids"]:
        return Translation.ignore(f"price {found.id} is mapped to {sku} already")
    return Translation(
        steps=(Step("product", "change", {"billing_price_ids": [found.id]}, target=product),)
    )


def payment_failed(event: StripeEvent, known: Known) -> Translation:
    invoice = parse_model(Invoice, event.data.object, OBJECT)
    ref = Ref(BILLING, "invoice", invoice.id)
    invoice_id = known.lookup(ref)
    if invoice_id is None:
        return Translation.wait(ref)
    extra: dict[str, Any] = invoice.model_extra or {}
    currency = currency_code(invoice.currency, field=f"{OBJECT}.currency")
    due = extra.get("amount_due", invoice.total)
    attempt = extra.get("attempt_count")
    data: dict[str, Any] = {
        "attempted_at": from_epoch_seconds(event.created, field="body.created").isoformat(),
        "amount": {
            "currency": currency,
            "amount": from_minor_units(due, currency, field=f"{OBJECT}.amount_due"),
        },
        "reason": (extra.get("last_finalization_error") or {}).get("message")
        or "the payment attempt failed",
    }
    if isinstance(attempt, int) and attempt >= 1:
        data["attempt"] = attempt
    return Translation(steps=(Step("invoice", "record_payment_failure", data, target=invoice_id),))
