"""The billing sandbox: a stateful stand-in for Stripe Billing (API ``2025-03-31.basil``).

It speaks what the official ``stripe`` SDK sends and reads — form-encoded ``POST``s under
``/v1/``, JSON answers, lists ``{object: "list", data, has_more, url}``, errors
``{"error": {type, code, message, param}}`` — so Concord's Stripe connector runs against it
unchanged (``base_addresses={"api": sandbox_url}``). Its records are what tests count.

What it honours as Stripe does:

* ``Authorization: Bearer <secret key>`` (401 otherwise);
* ``Idempotency-Key`` on ``POST``: the same key with the same parameters replays the first
  answer (``Idempotent-Replayed: true``, even a 500); other parameters → 400
  ``idempotency_error``; the key of a request still running → 409; a request refused by
  validation is not saved (fix the parameters, retry with the same key);
* a per-second request limit (25/s as test mode; ``rate_per_s``) → 429 ``rate_limit``;
* signed webhooks (``Stripe-Signature: t=…,v1=…`` with the endpoint's ``whsec_…``) for
  every change, with ``request.id`` / ``request.idempotency_key`` of the call that caused it
  (null for what billing does by itself: cycles, retries).

Billing behaviour (the realistic choice, as Stripe's defaults): creating a subscription with
``collection_method=charge_automatically`` (the default) bills the first period at once —
invoice finalized, payment attempted: paid → ``active``; declined → ``incomplete`` with the
invoice left open (``payment_behavior=error_if_incomplete``: 402, nothing created).
``send_invoice`` finalizes the first invoice with a due date and leaves it open. Metered
items are billed in arrears at each cycle. Proration on item changes: pending proration
lines on the next invoice (``create_prorations``, the default) or an invoice at once
(``always_invoice``). ``pause_collection`` keeps cycling but invoices are kept as draft,
voided or marked uncollectible, never charged.

The books (records, events, invoices, payments, refunds, credit notes) are
:mod:`adapters.sandbox.billing_ledger`; parameter reading is
:mod:`adapters.sandbox.stripe_params`; the wire rules (form decoding, idempotency, the rate
window, search) :mod:`adapters.sandbox.stripe_wire`.

Admin API (besides the base's faults, records, calls, webhooks, reset):

=====================================  ======================================================
``POST /_admin/bill``                  ``{"subscription", "fail_payment"?, "usage"?: {price:
                                       qty}}``: the next cycle — periods advance, an invoice
                                       with a line per item is finalized and charged (paid, or
                                       ``invoice.payment_failed`` and ``past_due``); a
                                       subscription whose ``cancel_at`` is reached ends instead
``POST /_admin/retry_payment``         ``{"invoice" | "subscription", "fail_payment"?}``:
                                       the dunning retry of an open invoice
``POST /_admin/fail_payments``         ``{"count": n}``: the next n payment attempts decline
``POST /_admin/refuse_subscriptions``  ``{"message": "..."}`` (null lifts it): creating a
                                       subscription fails with 400 ``invalid_request_error``
``POST /_admin/limits``                ``{"rate_per_s"?, "work_delay_s"?}``
=====================================  ======================================================
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.sandbox.base import json_response, serve_forever
from adapters.sandbox.billing_ledger import (
    API_VERSION,
    Ctx,
    Ledger,
    declined,
    new_id,
    subscription_of,
)
from adapters.sandbox.billing_money import advance, line_amount, prorated
from adapters.sandbox.stripe_params import choice, flag, integer, metadata, only, pause, text
from adapters.sandbox.stripe_wire import (
    IdempotencyStore,
    RateWindow,
    StripeFailure,
    error_body,
    matches,
    missing,
    parse_form,
    search_filter,
)

__all__ = ["API_VERSION", "BillingSandbox", "build", "run", "stripe_signature"]

DEFAULT_SECRET = "whsec_concord_sandbox"
DEFAULT_API_KEY = "sk_test_concord_sandbox"
_MAX_ITEMS = 20
_CREATE_SUBSCRIPTION = (
    "customer items metadata collection_method days_until_due cancel_at cancel_at_period_end "
    "payment_behavior proration_behavior description default_payment_method"
)
_UPDATE_SUBSCRIPTION = (
    "items metadata cancel_at cancel_at_period_end pause_collection proration_behavior "
    "proration_date description payment_behavior collection_method days_until_due "
    "cancellation_details"
)
_ADMIN_CODES = {"RATE_LIMITED": "rate_limit", "UNAVAILABLE": None, "TIMEOUT": None}

Params = dict[str, Any]
Handler = Callable[["Ctx", Params, dict[str, str]], dict[str, Any]]


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """``t=<unix s>,v1=<hex HMAC-SHA256(secret, "t.body")>``: what Stripe signs a webhook
    with and ``stripe.WebhookSignature.verify_header`` checks."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


class BillingSandbox(Ledger):
    """Stripe Billing, stateful. ``secret`` signs the webhooks (the endpoint's ``whsec_…``),
    ``api_key`` is the one secret key it accepts."""

    name = "billing"

    def __init__(
        self,
        secret: str | None = None,
        api_key: str | None = None,
        *,
        rate_per_s: float = 25.0,
        work_delay_s: float = 0.0,
        webhook_url: str | None = None,
    ) -> None:
        super().__init__()
        self.secret = secret or DEFAULT_SECRET
        self.api_key = api_key or DEFAULT_API_KEY
        self.rate = RateWindow(rate_per_s)
        self.work_delay_s = work_delay_s
        """Seconds each API call takes inside its idempotency key (tests provoke the 409)."""
        self.idempotency = IdempotencyStore()
        self.refusal: str | None = None
        self.port = 0
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self.webhooks.configure(webhook_url, self._sign)

    def _sign(self, raw: bytes) -> dict[str, str]:
        return {"Stripe-Signature": stripe_signature(raw, self.secret)}

    # --- the base's hooks --------------------------------------------------------------------
    def error(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> Response:
        """Injected faults in Stripe's shape: 429 ``rate_limit``, 5xx ``api_error``."""
        headers = {"Request-Id": new_id("req")}
        if retry_after is not None:
            headers["Retry-After"] = (
                str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
            )
        kind = "api_error" if status >= 500 else "invalid_request_error"
        stripe_code = _ADMIN_CODES.get(code, code.lower()) if status != 429 else "rate_limit"
        return json_response(error_body(kind, message, stripe_code), status, headers)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.idempotency.clear()
            self.events.clear()
            self._invoice_pi.clear()
            self._pending.clear()
            self.refusal = None
            self.failing_payments = 0

    def routes(self) -> list[BaseRoute]:
        api: list[tuple[str, Handler, str]] = [
            ("/v1/customers", self._create_customer, "POST"),
            ("/v1/customers", self._lister("customer", ("email",)), "GET"),
            ("/v1/customers/search", self._searcher("customer"), "GET"),
            ("/v1/customers/{id}", self._getter("customer"), "GET"),
            ("/v1/customers/{id}", self._update_customer, "POST"),
            ("/v1/products", self._create_product, "POST"),
            ("/v1/products", self._lister("product", ("active",)), "GET"),
            ("/v1/products/{id}", self._getter("product"), "GET"),
            ("/v1/prices", self._create_price, "POST"),
            ("/v1/prices", self._lister("price", ("product", "currency", "active")), "GET"),
            ("/v1/prices/{id}", self._getter("price"), "GET"),
            ("/v1/prices/{id}", self._update_price, "POST"),
            ("/v1/subscriptions", self._create_subscription, "POST"),
            ("/v1/subscriptions", self._list_subscriptions, "GET"),
            ("/v1/subscriptions/search", self._searcher("subscription"), "GET"),
            ("/v1/subscriptions/{id}", self._getter("subscription"), "GET"),
            ("/v1/subscriptions/{id}", self._update_subscription, "POST"),
            ("/v1/subscriptions/{id}", self._cancel_subscription, "DELETE"),
            (
                "/v1/invoices",
                self._lister("invoice", ("customer", "subscription", "status")),
                "GET",
            ),
            ("/v1/invoices/{id}", self._getter("invoice"), "GET"),
            ("/v1/invoices/{id}/finalize", self._finalize_invoice, "POST"),
            ("/v1/invoices/{id}/pay", self._pay_invoice, "POST"),
            ("/v1/invoices/{id}/void", self._void_invoice, "POST"),
            ("/v1/payment_intents", self._lister("payment_intent", ("customer",)), "GET"),
            ("/v1/payment_intents/{id}", self._getter("payment_intent"), "GET"),
            ("/v1/charges/{id}", self._getter("charge"), "GET"),
            ("/v1/refunds", self._create_refund, "POST"),
            ("/v1/refunds", self._lister("refund", ("payment_intent", "charge")), "GET"),
            ("/v1/refunds/{id}", self._getter("refund"), "GET"),
            ("/v1/credit_notes", self._create_credit_note, "POST"),
            ("/v1/credit_notes", self._lister("credit_note", ("invoice", "customer")), "GET"),
            ("/v1/credit_notes/{id}", self._getter("credit_note"), "GET"),
            ("/v1/events", self._list_events, "GET"),
            ("/v1/events/{id}", self._get_event, "GET"),
        ]
        routes: list[BaseRoute] = [
            Route(path, self._endpoint(handler), methods=[method], name=f"{method} {path}")
            for path, handler, method in api
        ]
        admin: list[tuple[str, set[str], Callable[[dict[str, Any]], dict[str, Any]]]] = [
            ("/_admin/bill", {"subscription", "fail_payment", "usage"}, self._admin_bill),
            (
                "/_admin/retry_payment",
                {"invoice", "subscription", "fail_payment"},
                self._admin_retry,
            ),
            ("/_admin/fail_payments", {"count"}, self._admin_fail_payments),
            ("/_admin/refuse_subscriptions", {"message"}, self._admin_refuse),
            ("/_admin/limits", {"rate_per_s", "work_delay_s"}, self._admin_limits),
        ]
        routes += [
            Route(path, self._admin(fields, action), methods=["POST"])
            for path, fields, action in admin
        ]
        return routes

    # --- the API's wire rules ----------------------------------------------------------------
    def _endpoint(self, handler: Handler) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            request_id = new_id("req")
            headers = {"Request-Id": request_id, "Stripe-Version": self.api_version}
            try:
                self._authenticate(request)
                if not self.rate.admit():
                    raise StripeFailure(
                        429,
                        "Request rate limit exceeded. Learn more about rate limits here "
                        "https://stripe.com/docs/rate-limits.",
                        code="rate_limit",
                    )
                params = await _params(request)
                key = request.headers.get("idempotency-key") if request.method == "POST" else None
                stored = None
                if key:
                    fingerprint = IdempotencyStore.fingerprint(
                        request.method, request.url.path, params
                    )
                    stored = self.idempotency.begin(key, fingerprint, request_id)
            except StripeFailure as refused:
                return json_response(refused.body, refused.status, headers)
            if stored is not None:
                headers |= {
                    "Idempotent-Replayed": "true",
                    "Original-Request": stored.request_id,
                    "Idempotency-Key": str(key),
                }
                return Response(stored.body, stored.status, headers, "application/json")
            if key:
                headers["Idempotency-Key"] = key
            ctx = Ctx(request_id, key)
            status, saved = 200, True
            try:
                if self.work_delay_s > 0:
                    await asyncio.sleep(self.work_delay_s)
                with self.lock:
                    body = handler(ctx, params, dict(request.path_params))
            except StripeFailure as refused:
                status, body, saved = refused.status, refused.body, refused.saved
                if not saved:
                    ctx.events.clear()
            except Exception as broken:  # a sandbox bug answers as Stripe's 500 would
                status, body = 500, error_body("api_error", f"sandbox error: {broken!r}")
            raw = orjson.dumps(body)
            if key:
                self.idempotency.finish(key, status, raw, saved)
            self._send(ctx)
            return Response(raw, status, headers, "application/json")

        return endpoint

    def _authenticate(self, request: Request) -> None:
        given = request.headers.get("authorization", "")
        if not given:
            raise StripeFailure(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), self.api_key):
            shown = token.strip()[-4:] if len(token.strip()) > 8 else ""
            raise StripeFailure(401, f"Invalid API Key provided: sk_test_****{shown}")

    # --- generic reads -----------------------------------------------------------------------
    def _getter(self, kind: str) -> Handler:
        def get(ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
            return copy.deepcopy(self._find(kind, path["id"]))

        return get

    def _page(
        self, url: str, rows: list[dict[str, Any]], params: Params, search: bool = False
    ) -> dict[str, Any]:
        limit = integer(params, "limit", minimum=1) or 10
        if limit > 100:
            raise StripeFailure(400, "limit must be at most 100", param="limit")
        rows = list(reversed(rows))  # newest first, as Stripe lists
        after = text(params, "starting_after")
        if after is not None:
            ids = [r["id"] for r in rows]
            if after not in ids:
                raise missing("object", after, "starting_after")
            rows = rows[ids.index(after) + 1 :]
        page = [copy.deepcopy(r) for r in rows[:limit]]
        body: dict[str, Any] = {
            "object": "search_result" if search else "list",
            "data": page,
            "has_more": len(rows) > limit,
            "url": url,
        }
        if search:
            body["next_page"] = None
        return body

    def _lister(self, kind: str, filters: tuple[str, ...]) -> Handler:
        def listing(ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
            only(params, " ".join(("limit starting_after ending_before", *filters)))
            rows = [
                r
                for r in self._table(kind).values()
                if all(
                    str(r.get(f)).lower() == str(params[f]).lower() for f in filters if f in params
                )
            ]
            return self._page(f"/v1/{kind}s", rows, params)

        return listing

    def _searcher(self, kind: str) -> Handler:
        def search(ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
            only(params, "query limit page")
            clauses = search_filter(text(params, "query", required=True) or "")
            rows = [r for r in self._table(kind).values() if matches(r, clauses)]
            return self._page(f"/v1/{kind}s/search", rows, params, search=True)

        return search

    def _list_subscriptions(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        """Canceled subscriptions are listed only with ``status=canceled`` or ``all``."""
        only(params, "limit starting_after ending_before customer price status")
        status = params.get("status")
        rows = []
        for sub in self._table("subscription").values():
            if "customer" in params and sub["customer"] != params["customer"]:
                continue
            if status is None and sub["status"] in ("canceled", "incomplete_expired"):
                continue
            if status not in (None, "all") and sub["status"] != status:
                continue
            if "price" in params and all(
                i["price"]["id"] != params["price"] for i in sub["items"]["data"]
            ):
                continue
            rows.append(sub)
        return self._page("/v1/subscriptions", rows, params)

    def _list_events(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "limit starting_after ending_before type")
        rows = [e for e in self.events.values() if params.get("type") in (None, e["type"])]
        return self._page("/v1/events", rows, params)

    def _get_event(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        found = self.events.get(path["id"])
        if found is None:
            raise missing("event", path["id"])
        return copy.deepcopy(found)

    # --- customers, products, prices ---------------------------------------------------------
    def _create_customer(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "name email description metadata address phone")
        customer_id = new_id("cus")
        customer = {
            "id": customer_id,
            "object": "customer",
            "created": int(time.time()),
            "livemode": False,
            "name": text(params, "name", limit=256),
            "email": text(params, "email", limit=512),
            "description": text(params, "description"),
            "phone": text(params, "phone", limit=20),
            "address": params.get("address") if isinstance(params.get("address"), dict) else None,
            "balance": 0,
            "currency": None,
            "delinquent": False,
            "invoice_prefix": customer_id[4:12].upper(),
            "invoice_settings": {"default_payment_method": None},
            "tax_exempt": "none",
            "metadata": metadata(params),
        }
        return self._created(ctx, "customer", customer)

    def _update_customer(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        return self._edit(
            ctx, "customer", params, path["id"], ("name", "email", "description", "phone")
        )

    def _edit(
        self,
        ctx: Ctx,
        kind: str,
        params: Params,
        object_id: str,
        texts: tuple[str, ...],
        flags: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """A plain update: text fields, flags and metadata (merged), then ``<kind>.updated``."""
        only(params, " ".join((*texts, *flags, "metadata")))
        obj = self._find(kind, object_id)
        before = copy.deepcopy(obj)
        for name in texts:
            if name in params:
                obj[name] = text(params, name)
        for name in flags:
            given = flag(params, name)
            if given is not None:
                obj[name] = given
        obj["metadata"] = metadata(params, obj["metadata"])
        return self._updated(ctx, kind, obj, before)

    def _create_product(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(params, "id name description metadata active tax_code")
        product_id = text(params, "id", limit=255) or new_id("prod")
        if product_id in self._table("product"):
            raise StripeFailure(
                400,
                f"Product already exists: {product_id}",
                code="resource_already_exists",
                param="id",
            )
        product = {
            "id": product_id,
            "object": "product",
            "created": int(time.time()),
            "livemode": False,
            "name": text(params, "name", required=True, limit=250),
            "description": text(params, "description"),
            "active": flag(params, "active") is not False,
            "default_price": None,
            "tax_code": text(params, "tax_code"),
            "metadata": metadata(params),
        }
        return self._created(ctx, "product", product)

    def _create_price(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        only(
            params,
            "product currency unit_amount unit_amount_decimal recurring lookup_key "
            "metadata nickname active billing_scheme",
        )
        product = text(params, "product", required=True) or ""
        self._find("product", product, "product")
        currency = (text(params, "currency", required=True) or "").lower()
        if len(currency) != 3 or not currency.isalpha():
            raise StripeFailure(400, f"Invalid currency: {currency}", param="currency")
        amount = integer(params, "unit_amount")
        exact = text(params, "unit_amount_decimal")
        if amount is None and exact is None:
            raise StripeFailure(
                400,
                "Missing required param: unit_amount.",
                code="parameter_missing",
                param="unit_amount",
            )
        recurring = params.get("recurring")
        if recurring is not None:
            if not isinstance(recurring, dict):
                raise StripeFailure(400, "Invalid hash", param="recurring")
            recurring = {
                "interval": choice(recurring, "interval", ("day", "week", "month", "year"), None),
                "interval_count": integer(recurring, "interval_count", minimum=1) or 1,
                "usage_type": choice(recurring, "usage_type", ("licensed", "metered"), "licensed"),
                "meter": text(recurring, "meter"),
            }
            if recurring["interval"] is None:
                raise StripeFailure(
                    400, "Missing required param: recurring[interval].", param="recurring[interval]"
                )
        lookup_key = text(params, "lookup_key", limit=200)
        if lookup_key and any(
            p.get("lookup_key") == lookup_key for p in self._table("price").values()
        ):
            raise StripeFailure(
                400,
                f"A price with the lookup key {lookup_key} already exists.",
                param="lookup_key",
            )
        price_id = new_id("price")
        price = {
            "id": price_id,
            "object": "price",
            "created": int(time.time()),
            "livemode": False,
            "active": flag(params, "active") is not False,
            "product": product,
            "currency": currency,
            "unit_amount": amount,
            "unit_amount_decimal": exact if exact is not None else str(amount),
            "billing_scheme": "per_unit",
            "type": "recurring" if recurring else "one_time",
            "recurring": recurring,
            "lookup_key": lookup_key,
            "nickname": text(params, "nickname"),
            "metadata": metadata(params),
        }
        return self._created(ctx, "price", price)

    def _update_price(self, ctx: Ctx, params: Params, path: dict[str, str]) -> dict[str, Any]:
        return self._edit(ctx, "price", params, path["id"], ("lookup_key", "nickname"), ("active",))

    # --- subscriptions -----------------------------------------------------------------------
    def _item(self, spec: Any, index: int, currency: str | None, start: int) -> dict[str, Any]:
        where = f"items[{index}]"
        if not isinstance(spec, dict):
            raise StripeFailure(400, "Invalid hash", param=where)
        only(spec, "price quantity metadata")
        price_id = text(spec, "price", required=True) or ""
        price = self._find("price", price_id, f"{where}[price]")
        if price["recurring"] is None:
            raise StripeFailure(
                400,
                "The price specified is set to `type=one_time` but this field only accepts "
                "prices with `type=recurring`.",
                param=f"{where}[price]",
            )
        if not price["active"]:
            raise StripeFailure(400, f"The price {price_id} is inactive.", param=f"{where}[price]")
        if currency is not None and price["currency"] != currency:
            raise StripeFailure(
                400,
                "All prices on a subscription must have the same currency.",
                param=f"{where}[price]",
            )
        metered = price["recurring"]["usage_type"] == "metered"
        quantity = integer(spec, "quantity", minimum=0)
        if metered and quantity is not None:
            raise StripeFailure(
                400, "You cannot set the quantity for metered plans.", param=f"{where}[quantity]"
            )
        recurring = price["recurring"]
        return {
            "id": new_id("si"),
            "object": "subscription_item",
            "created": int(time.time()),
            "price": copy.deepcopy(price),
            "quantity": None if metered else (1 if quantity is None else quantity),
            "current_period_start": start,
            "current_period_end": advance(
                start, recurring["interval"], recurring["interval_count"]
            ),
            "metadata": metadata(spec),
        }

    def _create_subscription(
        self, ctx: Ctx, params: Params, path: dict[str, str]
    ) -> dict[str, Any]:
        only(params, _CREATE_SUBSCRIPTION)
        if self.refusal is not None:
            raise StripeFailure(400, self.refusal, param="customer")
        customer = self._find("customer", text(params, "customer", required=True) or "", "customer")
        items = params.get("items")
        if not isinstance(items, list) or not items:
            raise StripeFailure(
                400, "Missing required param: items.", code="parameter_missing", param="items"
            )
        if len(items) > _MAX_ITEMS:
            raise StripeFailure(
                400, f"A subscription has at most {_MAX_ITEMS} items", param="items"
            )
        method = choice(
            params,
            "collection_method",
            ("charge_automatically", "send_invoice"),
            "charge_automatically",
        )
        due_days = integer(params, "days_until_due")
        if method == "send_invoice" and due_days is None:
            raise StripeFailure(
                400, "Missing required param: days_until_due.", param="days_until_due"
            )
        behavior = choice(
            params,
            "payment_behavior",
            (
                "allow_incomplete",
                "default_incomplete",
                "error_if_incomplete",
                "pending_if_incomplete",
            ),
            "allow_incomplete",
        )
        now = int(time.time())
        built: list[dict[str, Any]] = []
        currency: str | None = None
        for index, spec in enumerate(items):
            item = self._item(spec, index, currency, now)
            currency = item["price"]["currency"]
            if any(i["price"]["id"] == item["price"]["id"] for i in built):
                raise StripeFailure(
                    400,
                    "Cannot add multiple subscription items with the same price.",
                    param=f"items[{index}][price]",
                )
            built.append(item)
        if customer["currency"] not in (None, currency):
            raise StripeFailure(
                400,
                f"You cannot combine currencies on a single customer. This customer has an "
                f"active subscription, subscription schedule, discount, quote, or invoice item "
                f"with currency {customer['currency']}.",
                param="items",
            )
        cancel_at = integer(params, "cancel_at")
        if cancel_at is not None and cancel_at <= now:
            raise StripeFailure(400, "cancel_at must be in the future", param="cancel_at")
        sub_id = new_id("sub")
        for item in built:
            item["subscription"] = sub_id
        period_end = max(i["current_period_end"] for i in built)
        at_period_end = bool(flag(params, "cancel_at_period_end"))
        sub: dict[str, Any] = {
            "id": sub_id,
            "object": "subscription",
            "created": now,
            "livemode": False,
            "customer": customer["id"],
            "currency": currency,
            "status": "incomplete",
            "items": {
                "object": "list",
                "data": built,
                "has_more": False,
                "url": f"/v1/subscription_items?subscription={sub_id}",
            },
            "start_date": now,
            "billing_cycle_anchor": now,
            "cancel_at": period_end if at_period_end else cancel_at,
            "cancel_at_period_end": at_period_end,
            "canceled_at": None,
            "ended_at": None,
            "cancellation_details": {"reason": None, "feedback": None, "comment": None},
            "collection_method": method,
            "days_until_due": due_days,
            "description": text(params, "description"),
            "default_payment_method": text(params, "default_payment_method"),
            "pause_collection": None,
            "latest_invoice": None,
            "trial_start": None,
            "trial_end": None,
            "schedule": None,
            "test_clock": None,
            "metadata": metadata(params),
        }
        invoice = self._draft(sub, "subscription_create", self._licensed_lines(sub, built))
        if (
            behavior == "error_if_incomplete"
            and method == "charge_automatically"
            and invoice["total"] > 0
            and self._declines()
        ):
            raise declined()
        customer["currency"] = currency
        self._table("subscription")[sub_id] = sub
        self._table("invoice")[invoice["id"]] = invoice
        sub["latest_invoice"] = invoice["id"]
        before = len(ctx.events)
        self._event(ctx, "invoice.created", invoice)
        self._finalize(ctx, invoice)
        if method == "send_invoice" or invoice["total"] == 0:
            sub["status"] = "active"
            if invoice["total"] == 0:
                self._mark_paid(ctx, invoice, None)
        else:
            self._charge(ctx, invoice, fail=False, subscription=sub, quiet=True)
        # Announced first, with the status its first payment left it in (as Stripe does).
        later = ctx.events[before:]
        del ctx.events[before:]
        self._event(ctx, "customer.subscription.created", sub)
        ctx.events.extend(later)
        for event in later:  # the event list (GET /v1/events) in the same order
            self.events[event["id"]] = self.events.pop(event["id"])
        return copy.deepcopy(sub)

    def _update_subscription(
        self, ctx: Ctx, params: Params, path: dict[str, str]
    ) -> dict[str, Any]:
        only(params, _UPDATE_SUBSCRIPTION)
        sub = self._find("subscription", path["id"])
        if sub["status"] in ("canceled", "incomplete_expired") and set(params) - {
            "metadata",
            "cancellation_details",
            "expand",
        }:
            raise StripeFailure(
                400,
                "A canceled subscription can only update its cancellation_details and metadata.",
            )
        before = copy.deepcopy(sub)
        proration = choice(
            params,
            "proration_behavior",
            ("create_prorations", "none", "always_invoice"),
            "create_prorations",
        )
        now = integer(params, "proration_date") or int(time.time())
        prorations: list[dict[str, Any]] = []
        if "items" in params:
            prorations = self._change_items(sub, params["items"], now)
        period_end = max(i["current_period_end"] for i in sub["items"]["data"])
        if "cancel_at_period_end" in params:
            at_end = bool(flag(params, "cancel_at_period_end"))
            sub["cancel_at_period_end"] = at_end
            sub["cancel_at"] = period_end if at_end else None
        if "cancel_at" in params:
            cancel_at = integer(params, "cancel_at")
            if cancel_at is not None and cancel_at <= int(time.time()):
                raise StripeFailure(400, "cancel_at must be in the future", param="cancel_at")
            sub["cancel_at"] = cancel_at
            sub["cancel_at_period_end"] = cancel_at is not None and cancel_at == period_end
        if "pause_collection" in params:
            sub["pause_collection"] = pause(params["pause_collection"])
        if "cancellation_details" in params and isinstance(params["cancellation_details"], dict):
            details = params["cancellation_details"]
            sub["cancellation_details"] |= {
                k: details[k] or None for k in ("comment", "feedback") if k in details
            }
        if "description" in params:
            sub["description"] = text(params, "description")
        sub["metadata"] = metadata(params, sub["metadata"])
        if proration != "none" and prorations:
            if proration == "always_invoice":
                invoice = self._draft(sub, "subscription_update", prorations)
                self._table("invoice")[invoice["id"]] = invoice
                sub["latest_invoice"] = invoice["id"]
                self._event(ctx, "invoice.created", invoice)
                self._collect(ctx, sub, invoice, fail=False)
            else:
                self._pending.setdefault(sub["id"], []).extend(prorations)
        return self._updated(ctx, "customer.subscription", sub, before)

    def _change_items(self, sub: dict[str, Any], specs: Any, now: int) -> list[dict[str, Any]]:
        """Apply ``items[n][id|price|quantity|deleted]``; the proration lines it causes."""
        if not isinstance(specs, list):
            raise StripeFailure(400, "Invalid array", param="items")
        current = {i["id"]: i for i in sub["items"]["data"]}
        lines: list[dict[str, Any]] = []
        for index, spec in enumerate(specs):
            where = f"items[{index}]"
            if not isinstance(spec, dict):
                raise StripeFailure(400, "Invalid hash", param=where)
            only(spec, "id price quantity deleted metadata clear_usage")
            item_id = text(spec, "id")
            if item_id is None:
                start = min(i["current_period_start"] for i in sub["items"]["data"])
                item = self._item(spec, index, sub["currency"], start)
                item["current_period_end"] = max(
                    i["current_period_end"] for i in sub["items"]["data"]
                )
                item["subscription"] = sub["id"]
                sub["items"]["data"].append(item)
                lines += self._proration(sub, item, 0, item["quantity"] or 0, now)
                continue
            found = current.get(item_id)
            if found is None:
                raise missing("subscription_item", item_id, f"{where}[id]")
            item = found
            old_price, old_quantity = item["price"], item["quantity"] or 0
            if flag(spec, "deleted"):
                sub["items"]["data"].remove(item)
                if not sub["items"]["data"]:
                    raise StripeFailure(
                        400,
                        "A subscription must keep at least one item.",
                        param=f"{where}[deleted]",
                    )
                lines += self._proration(sub, item, old_quantity, 0, now, credit_only=True)
                continue
            if "price" in spec:
                price = self._find(
                    "price", text(spec, "price", required=True) or "", f"{where}[price]"
                )
                if price["currency"] != sub["currency"] or price["recurring"] is None:
                    raise StripeFailure(
                        400,
                        "The price must recur in the subscription's currency.",
                        param=f"{where}[price]",
                    )
                item["price"] = copy.deepcopy(price)
            if "quantity" in spec:
                item["quantity"] = integer(spec, "quantity")
            item["metadata"] = metadata(spec, item["metadata"])
            if item["price"]["recurring"]["usage_type"] == "licensed":
                credit = dict(item, price=old_price)
                lines += self._proration(sub, credit, old_quantity, 0, now, credit_only=True)
                lines += self._proration(sub, item, 0, item["quantity"] or 0, now)
                if item["price"]["id"] == old_price["id"] and item["quantity"] == old_quantity:
                    lines = lines[:-2]
        return [line for line in lines if line["amount"] != 0]

    def _proration(
        self,
        sub: dict[str, Any],
        item: dict[str, Any],
        before: int,
        after: int,
        now: int,
        credit_only: bool = False,
    ) -> list[dict[str, Any]]:
        if item["price"]["recurring"]["usage_type"] == "metered":
            return []
        start, end = item["current_period_start"], item["current_period_end"]
        quantity = before if credit_only else after
        amount = prorated(line_amount(item["price"], quantity), start, end, now)
        sign = -1 if credit_only else 1
        word = "Unused" if credit_only else "Remaining"
        return [
            self._line(
                sub,
                item,
                quantity,
                sign * amount,
                (now, end),
                proration=True,
                description=f"{word} time on {quantity} x {item['price']['id']}",
            )
        ]

    def _cancel_subscription(
        self, ctx: Ctx, params: Params, path: dict[str, str]
    ) -> dict[str, Any]:
        only(params, "invoice_now prorate cancellation_details")
        sub = self._find("subscription", path["id"])
        if sub["status"] == "canceled":
            raise StripeFailure(
                400,
                f"No such subscription: '{sub['id']}' is canceled already",
                code="resource_missing",
                param="id",
            )
        self._end(ctx, sub, int(time.time()), "cancellation_requested")
        return copy.deepcopy(sub)

    def _end(self, ctx: Ctx, sub: dict[str, Any], when: int, reason: str) -> None:
        before = {"status": sub["status"]}
        sub["status"] = "canceled"
        sub["canceled_at"] = sub["canceled_at"] or int(time.time())
        sub["ended_at"] = when
        sub["cancellation_details"]["reason"] = reason
        self._pending.pop(sub["id"], None)
        self._event(ctx, "customer.subscription.deleted", sub, before)

    # --- billing behaviour (admin) -----------------------------------------------------------
    def bill(
        self,
        subscription_id: str,
        *,
        fail_payment: bool = False,
        usage: dict[str, int] | None = None,
    ) -> dict[str, Any] | None:
        """The next billing cycle of one subscription (what ``/_admin/bill`` runs); the
        invoice, or None when the subscription ended (``cancel_at`` reached) instead."""
        ctx = Ctx(None, None)
        with self.lock:
            sub = self._find("subscription", subscription_id, "subscription")
            if sub["status"] in ("canceled", "incomplete_expired"):
                raise StripeFailure(400, f"subscription {subscription_id} is {sub['status']}")
            items = sub["items"]["data"]
            period_end = max(i["current_period_end"] for i in items)
            if sub["cancel_at"] is not None and sub["cancel_at"] <= period_end:
                self._end(ctx, sub, sub["cancel_at"], "cancellation_requested")
                self._send(ctx)
                return None
            before = copy.deepcopy(sub["items"])
            used = usage or {}
            lines = [
                self._line(
                    sub,
                    i,
                    int(used.get(i["price"]["id"], 0)),
                    line_amount(i["price"], int(used.get(i["price"]["id"], 0))),
                    (i["current_period_start"], i["current_period_end"]),
                )
                for i in items
                if i["price"]["recurring"]["usage_type"] == "metered"
            ]
            for item in items:
                recurring = item["price"]["recurring"]
                start = item["current_period_end"]
                item["current_period_start"] = start
                item["current_period_end"] = advance(
                    start, recurring["interval"], recurring["interval_count"]
                )
            lines = self._pending.pop(sub["id"], []) + self._licensed_lines(sub, items) + lines
            invoice = self._draft(sub, "subscription_cycle", lines)
            self._table("invoice")[invoice["id"]] = invoice
            sub["latest_invoice"] = invoice["id"]
            self._event(ctx, "customer.subscription.updated", sub, {"items": before})
            self._event(ctx, "invoice.created", invoice)
            self._collect(ctx, sub, invoice, fail=fail_payment)
            self._send(ctx)
            return copy.deepcopy(invoice)

    def retry_payment(self, invoice_id: str, *, fail_payment: bool = False) -> dict[str, Any]:
        """A dunning retry of an open invoice (what ``/_admin/retry_payment`` runs)."""
        ctx = Ctx(None, None)
        with self.lock:
            invoice = self._open_invoice(invoice_id)
            sub = self._table("subscription").get(subscription_of(invoice) or "")
            self._charge(ctx, invoice, fail=fail_payment, subscription=sub)
            self._send(ctx)
            return copy.deepcopy(invoice)

    def _admin(
        self, allowed: set[str], action: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[Request], Any]:
        """An admin endpoint: a JSON body of ``allowed`` fields → ``action`` → JSON; bad
        input is a 422 naming the problem, an unknown id 404, a wrong state 409."""

        async def endpoint(request: Request) -> Response:
            try:
                return json_response(action(await _admin_body(request, allowed)))
            except ValueError as bad:
                return json_response({"error": "invalid_request", "message": str(bad)}, 422)
            except StripeFailure as refused:
                return json_response(refused.body, 404 if refused.status == 404 else 409)

        return endpoint

    def _admin_bill(self, body: dict[str, Any]) -> dict[str, Any]:
        usage = body.get("usage") or {}
        if not isinstance(usage, dict) or not all(
            isinstance(v, int) and v >= 0 for v in usage.values()
        ):
            raise ValueError("usage maps price ids to whole quantities >= 0")
        sub_id = _admin_id(body, "subscription")
        invoice = self.bill(sub_id, fail_payment=bool(body.get("fail_payment")), usage=usage)
        with self.lock:
            return {
                "invoice": invoice,
                "subscription": copy.deepcopy(self._find("subscription", sub_id)),
            }

    def _admin_retry(self, body: dict[str, Any]) -> dict[str, Any]:
        invoice_id = body.get("invoice")
        if invoice_id is None:
            with self.lock:
                sub = self._find("subscription", _admin_id(body, "subscription"))
                invoice_id = sub["latest_invoice"]
        invoice = self.retry_payment(
            _admin_id({"invoice": invoice_id}, "invoice"),
            fail_payment=bool(body.get("fail_payment")),
        )
        return {"invoice": invoice}

    def _admin_fail_payments(self, body: dict[str, Any]) -> dict[str, Any]:
        count = body.get("count", 1)
        if not isinstance(count, int) or not 0 <= count <= 10_000:
            raise ValueError("count must be an integer from 0 to 10000")
        with self.lock:
            self.failing_payments = count
        return {"failing_payments": count}

    def _admin_refuse(self, body: dict[str, Any]) -> dict[str, Any]:
        message = body.get("message")
        if message is not None and not (isinstance(message, str) and 0 < len(message) <= 500):
            raise ValueError("message must be a string of 1-500 characters, or null")
        with self.lock:
            self.refusal = message
        return {"refusing": message}

    def _admin_limits(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("rate_per_s", "work_delay_s"):
            value = body.get(name, 0)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not 0 <= value <= 3600
            ):
                raise ValueError(f"{name} must be a number from 0 to 3600")
        if "rate_per_s" in body:
            self.rate.per_s = float(body["rate_per_s"])
        if "work_delay_s" in body:
            self.work_delay_s = float(body["work_delay_s"])
        return {"rate_per_s": self.rate.per_s, "work_delay_s": self.work_delay_s}


async def _params(request: Request) -> Params:
    if request.method in ("GET", "DELETE"):
        return parse_form(request.url.query)
    raw = await request.body()
    if len(raw) > 1024 * 1024:
        raise StripeFailure(413, "Request body too large")
    try:
        return parse_form(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StripeFailure(400, "The request body is not valid UTF-8") from None


async def _admin_body(request: Request, allowed: set[str]) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 64 * 1024:
        raise ValueError("body too large")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as bad:
        raise ValueError(f"body is not JSON: {bad}") from bad
    if not isinstance(body, dict):
        raise ValueError("the body is a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    return body


def _admin_id(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be an id string")
    return value


def build(
    port: int = 0,
    webhook_url: str | None = None,
    secret: str | None = None,
    api_key: str | None = None,
    *,
    rate_per_s: float = 25.0,
) -> BillingSandbox:
    """The sandbox for ``concord sandbox billing`` (``port`` is kept on it for :func:`run`)."""
    sandbox = BillingSandbox(secret, api_key, rate_per_s=rate_per_s, webhook_url=webhook_url)
    sandbox.port = port
    return sandbox


def run(sandbox: BillingSandbox, host: str = "127.0.0.1") -> None:
    """Serve ``sandbox`` in the foreground on its port until Ctrl-C."""
    serve_forever(sandbox, sandbox.port, host)
