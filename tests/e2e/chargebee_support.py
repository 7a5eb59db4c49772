"""Chargebee v2 webhook events (Product Catalog 2.0) as Chargebee sends them, for e2e tests.

Shapes follow the shared payload reference (Chargebee section): ``ev_…`` ids, unix-second
dates, integer cents (whole units for zero-decimal currencies), uppercase
``currency_code``, ``resource_version`` in milliseconds, custom fields as top-level
``cf_*`` attributes.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import httpx
import orjson

from tests.e2e.conftest import Api

USER, PASSWORD, OLD_PASSWORD = "concord", "cb-new-pass", "cb-old-pass"
ACCOUNT = "001Dn00000CbAcMIAZ"
OPPORTUNITY = "006Dn00000CbOpPIAZ"

JAN_1 = 1767225600  # 2026-01-01T00:00:00Z
JAN_2 = 1767312000
FEB_1 = 1769904000
JAN_1_2027 = 1798761600
DAY = 86400


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def deliver(api: Api, body: bytes, authorization: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    headers["Authorization"] = basic() if authorization is None else authorization
    if authorization == "":
        del headers["Authorization"]
    return api.http.post("/v1/webhooks/chargebee", content=body, headers=headers)


def event(event_type: str, event_id: str, occurred_at: int, **content: Any) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "occurred_at": occurred_at,
            "source": "admin_console",
            "user": "ops@vendor.example",
            "object": "event",
            "api_version": "v2",
            "event_type": event_type,
            "webhook_status": "scheduled",
            "content": content,
        }
    )


def customer(
    cus: str = "AzZTZgSTdKYbD1jA", account: str | None = ACCOUNT, rv: int = 0
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cus,
        "first_name": "Ada",
        "last_name": "Ops",
        "email": "ap@acme.example",
        "company": "Acme GmbH",
        "auto_collection": "on",
        "net_term_days": 30,
        "preferred_currency_code": "USD",
        "created_at": JAN_1,
        "updated_at": JAN_1,
        "resource_version": rv or JAN_1 * 1000,
        "deleted": False,
        "object": "customer",
    }
    if account is not None:
        body["cf_sf_account_id"] = account
    return body


def subscription(
    sub: str = "16CRibSAbc123",
    cus: str = "AzZTZgSTdKYbD1jA",
    *,
    status: str = "active",
    currency: str = "USD",
    quantity: int = 2,
    unit_price: int = 5000,
    term_end: int = JAN_1_2027,
    rv: int = JAN_1 * 1000,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sub,
        "customer_id": cus,
        "currency_code": currency,
        "status": status,
        "billing_period": 1,
        "billing_period_unit": "year",
        "start_date": JAN_1,
        "started_at": JAN_1,
        "activated_at": JAN_1,
        "current_term_start": JAN_1,
        "current_term_end": term_end,
        "next_billing_at": term_end,
        "auto_collection": "on",
        "due_invoices_count": 0,
        "mrr": 0,
        "subscription_items": [
            {
                "item_price_id": f"platform-{currency}-yearly",
                "item_type": "plan",
                "quantity": quantity,
                "unit_price": unit_price,
                "amount": quantity * unit_price,
                "billing_period": 1,
                "billing_period_unit": "year",
                "free_quantity": 0,
                "object": "subscription_item",
            },
            {
                "item_price_id": f"onboarding-{currency}",
                "item_type": "charge",
                "quantity": 1,
                "unit_price": 2000,
                "amount": 2000,
                "object": "subscription_item",
            },
        ],
        "cf_sf_opportunity_id": OPPORTUNITY,
        "created_at": JAN_1,
        "updated_at": rv // 1000,
        "resource_version": rv,
        "deleted": False,
        "object": "subscription",
    }
    return body | extra


def invoice(
    inv: str = "INV-1001",
    sub: str | None = "16CRibSAbc123",
    cus: str = "AzZTZgSTdKYbD1jA",
    *,
    currency: str = "USD",
    amounts: tuple[int, ...] = (10000,),
    tax: int = 0,
    status: str = "payment_due",
    rv: int = JAN_2 * 1000,
    **extra: Any,
) -> dict[str, Any]:
    lines = [
        {
            "id": f"li_{inv}_{i}",
            "subscription_id": sub,
            "date_from": JAN_1,
            "date_to": JAN_1_2027,
            "unit_amount": amount,
            "quantity": 1,
            "amount": amount,
            "discount_amount": 0,
            "item_level_discount_amount": 0,
            "is_taxed": tax > 0,
            "tax_amount": tax if i == 0 else 0,
            "entity_type": "plan_item_price",
            "entity_id": f"platform-{currency}-yearly",
            "description": "Platform yearly",
            "object": "line_item",
        }
        for i, amount in enumerate(amounts)
    ]
    subtotal = sum(amounts)
    total = subtotal + tax
    paid = total if status == "paid" else 0
    body: dict[str, Any] = {
        "id": inv,
        "customer_id": cus,
        "subscription_id": sub,
        "recurring": True,
        "status": status,
        "price_type": "tax_exclusive",
        "date": JAN_2,
        "due_date": JAN_2 + 30 * DAY,
        "net_term_days": 30,
        "currency_code": currency,
        "sub_total": subtotal,
        "tax": tax,
        "total": total,
        "amount_paid": paid,
        "amount_due": total - paid,
        "amount_adjusted": 0,
        "credits_applied": 0,
        "line_items": lines,
        "linked_payments": [],
        "issued_credit_notes": [],
        "first_invoice": True,
        "resource_version": rv,
        "updated_at": rv // 1000,
        "deleted": False,
        "object": "invoice",
    }
    return body | extra


def transaction(
    txn: str = "txn_AzZTZgSTdKYbD1jB",
    cus: str = "AzZTZgSTdKYbD1jA",
    *,
    amount: int = 10000,
    currency: str = "USD",
    linked: tuple[tuple[str, int], ...] = (("INV-1001", 10000),),
    kind: str = "payment",
    status: str = "success",
    date: int = JAN_2 + 7 * DAY,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": txn,
        "customer_id": cus,
        "subscription_id": "16CRibSAbc123",
        "payment_method": "card",
        "gateway": "stripe",
        "type": kind,
        "date": date,
        "settled_at": date,
        "amount": amount,
        "currency_code": currency,
        "id_at_gateway": f"ch_{txn}",
        "status": status,
        "linked_invoices": [
            {
                "invoice_id": invoice_id,
                "applied_amount": applied,
                "applied_at": date,
                "invoice_date": JAN_2,
                "invoice_total": applied,
                "invoice_status": "paid",
            }
            for invoice_id, applied in linked
        ],
        "resource_version": date * 1000,
        "updated_at": date,
        "deleted": False,
        "object": "transaction",
    }
    return body | extra
