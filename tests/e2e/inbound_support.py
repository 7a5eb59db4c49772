"""Building blocks for inbound tests: signed deliveries in each system's real shape."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from adapters.bootstrap import Runtime, open_runtime
from adapters.salesforce import to_18
from adapters.settings import Settings
from tests.e2e.conftest import Api
from tests.e2e.netsuite_support import NETSUITE_OLD_SECRET, NETSUITE_SECRET

ACCOUNT = "001Dn00000AbCdEIAZ"
"""A Salesforce account id (18 characters): what the other systems name the CRM account by."""

STRIPE_SECRET = "whsec_test_current"
STRIPE_OLD_SECRET = "whsec_test_previous"
SALESFORCE_SECRET = "sf-bridge-current"
SALESFORCE_OLD_SECRET = "sf-bridge-previous"
#: Chargebee webhook Basic credentials, new and old during a rotation.
CHARGEBEE_SECRETS = "chargebee=concord:cb-new-pass|concord:cb-old-pass"


def stripe_signature(body: bytes, secret: str = STRIPE_SECRET, at: int | None = None) -> str:
    """``Stripe-Signature: t=…,v1=…`` exactly as Stripe computes it."""
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str, created: int) -> bytes:
    """A Stripe event envelope (API 2025-03-31.basil)."""
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
    )


def stripe_customer(cus: str, account: str | None) -> dict[str, Any]:
    return {
        "id": cus,
        "object": "customer",
        "created": 1767225600,
        "email": "ap@acme.example",
        "name": "Acme GmbH",
        "currency": "eur",
        "metadata": {} if account is None else {"sf_account_id": account},
        "livemode": False,
    }


def stripe_invoice(
    inv: str,
    cus: str,
    *,
    currency: str = "eur",
    amounts: tuple[int, ...] = (2500,),
    tax: int = 0,
    status: str = "open",
    subscription: str | None = None,
    number: str = "INV-0001",
) -> dict[str, Any]:
    """An invoice with one line per amount, service period January 2026."""
    lines = [
        {
            "id": f"il_{inv}_{i}",
            "object": "line_item",
            "amount": amount,
            "currency": currency,
            "description": f"Platform seat #{i}",
            "quantity": 1,
            "period": {"start": 1767225600, "end": 1769904000},
            "pricing": {
                "type": "price_details",
                "price_details": {"price": "price_plat", "product": "prod_plat"},
                "unit_amount_decimal": str(amount),
            },
            "parent": {
                "type": "subscription_item_details",
                "subscription_item_details": {
                    "proration": False,
                    "subscription_item": "si_1",
                    "subscription": subscription,
                },
            }
            if subscription
            else None,
        }
        for i, amount in enumerate(amounts)
    ]
    subtotal = sum(amounts)
    return {
        "id": inv,
        "object": "invoice",
        "customer": cus,
        "currency": currency,
        "number": number,
        "status": status,
        "subtotal": subtotal,
        "total": subtotal + tax,
        "total_taxes": [{"amount": tax, "tax_behavior": "exclusive"}] if tax else [],
        "amount_due": subtotal + tax,
        "amount_paid": subtotal + tax if status == "paid" else 0,
        "amount_remaining": 0 if status == "paid" else subtotal + tax,
        "created": 1767225600,
        "effective_at": 1767312000,  # 2026-01-02: the issue date
        "due_date": 1769904000,  # 2026-02-01
        "status_transitions": {
            "finalized_at": 1767312000,
            "paid_at": 1767916800 if status == "paid" else None,  # 2026-01-09
        },
        "lines": {"object": "list", "data": lines, "has_more": False},
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": subscription},
        }
        if subscription
        else None,
        "metadata": {},
    }


def post_webhook(api: Api, system: str, body: bytes, header: str, signature: str) -> httpx.Response:
    """``body`` to ``POST /v1/webhooks/<system>`` signed with ``header: signature`` (no
    header at all when ``signature`` is empty)."""
    headers = {"Content-Type": "application/json"}
    if signature:
        headers[header] = signature
    return api.http.post(f"/v1/webhooks/{system}", content=body, headers=headers)


def crm_account(api: Api, account: str = ACCOUNT) -> str:
    """A customer registered by the CRM as its account ``account`` (its cross-reference)."""
    response = api.post(
        "/v1/customers",
        {"legal_name": "Acme GmbH"},
        role="crm",
        headers={"Concord-Source-Record-Id": account},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def inbound_runtime(
    database_url: str, pg_schema: str, tmp_path: Path, **extra: Any
) -> Iterator[Runtime]:
    secrets = ",".join(
        [
            f"stripe={STRIPE_SECRET}|{STRIPE_OLD_SECRET}",
            f"salesforce={SALESFORCE_SECRET}|{SALESFORCE_OLD_SECRET}",
            f"netsuite={NETSUITE_SECRET}|{NETSUITE_OLD_SECRET}",
            CHARGEBEE_SECRETS,
            "hubspot=hs-client-secret|hs-old-secret",
        ]
    )
    settings = Settings(
        database_url=database_url,
        schema_name=pg_schema,
        data_dir=tmp_path,
        webhook_secrets=secrets,
        **extra,
    )
    rt = open_runtime(settings)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def runtime(database_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Runtime]:
    """The e2e ``runtime`` fixture, with webhook secrets configured (overrides conftest's)."""
    yield from inbound_runtime(database_url, pg_schema, tmp_path)


def stripe_subscription(
    sub: str,
    cus: str,
    *,
    status: str = "active",
    quantity: int = 2,
    unit_amount: int = 2500,
    currency: str = "eur",
    metadata: dict[str, str] | None = None,
    cancel_at: int | None = None,
    period_end: int = 1769904000,
    interval: str = "month",
    interval_count: int = 1,
) -> dict[str, Any]:
    """A subscription (basil: periods on the items) of one monthly licensed price."""
    return {
        "id": sub,
        "object": "subscription",
        "customer": cus,
        "status": status,
        "currency": currency,
        "start_date": 1767225600,  # 2026-01-01
        "cancel_at": cancel_at,
        "cancel_at_period_end": cancel_at is not None,
        "canceled_at": None,
        "ended_at": None,
        "collection_method": "charge_automatically",
        "metadata": metadata if metadata is not None else {"sf_opportunity_id": "006OPP1"},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_1",
                    "object": "subscription_item",
                    "quantity": quantity,
                    "current_period_start": 1767225600,
                    "current_period_end": period_end,
                    "price": {
                        "id": "price_plat_m",
                        "object": "price",
                        "product": "prod_plat",
                        "unit_amount": unit_amount,
                        "unit_amount_decimal": str(unit_amount),
                        "currency": currency,
                        "type": "recurring",
                        "recurring": {
                            "interval": interval,
                            "interval_count": interval_count,
                            "usage_type": "licensed",
                        },
                        "lookup_key": None,
                    },
                }
            ],
        },
    }


def state(api: Api, kind: str, aggregate_id: str) -> dict[str, Any]:
    """An aggregate's current state over the API (``kind``: ``customers``, ``orders`` …)."""
    response = api.get(f"/v1/{kind}/{aggregate_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["state"]
    return found


def _sf(prefix: str, n: int) -> str:
    """The 18-character form of ``salesforce_support.sf_id(prefix, n)``."""
    return to_18(f"{prefix}Dn{n:010d}")


#: HubSpot product ids (``hs_product_id``) of the SKUs the HubSpot tests sell.
HUBSPOT_PRODUCTS = {"PLAT-1": "5001", "SEAT-10": "5002", "ONB": "5003"}
_CURRENCIES = ("USD", "EUR", "JPY", "KWD")

#: The product catalogue every inbound test sells from: each system's ids for one SKU.
PRODUCTS: list[dict[str, Any]] = [
    {
        "sku": "PLAT-1",
        "name": "Platform seat",
        "charge_type": "recurring",
        "billing_period": "month",
        "ids": {"crm_product_ids": [_sf("01t", 1), HUBSPOT_PRODUCTS["PLAT-1"]]},
    },
    {
        "sku": "SUP-SETUP",
        "name": "Onboarding",
        "charge_type": "one_time",
        "ids": {"crm_product_ids": [_sf("01t", 2)]},
    },
    {
        "sku": "SEAT-10",
        "charge_type": "recurring",
        "billing_period": "month",
        "ids": {"crm_product_ids": [HUBSPOT_PRODUCTS["SEAT-10"]]},
    },
    {"sku": "ONB", "charge_type": "one_time", "ids": {"crm_product_ids": ["5003"]}},
    {
        "sku": "PLAT-SEAT",
        "name": "Platform seat (Stripe)",
        "charge_type": "recurring",
        "billing_period": "month",
        "ids": {"billing_price_ids": ["price_plat", "price_plat_m"]},
    },
    {
        "sku": "PLATFORM-YEARLY",
        "name": "Platform (Chargebee, yearly)",
        "charge_type": "recurring",
        "billing_period": "year",
        "ids": {"billing_price_ids": [f"platform-{c}-yearly" for c in _CURRENCIES]},
    },
    {
        "sku": "ONBOARDING",
        "charge_type": "one_time",
        "ids": {"billing_price_ids": [f"onboarding-{c}" for c in _CURRENCIES]},
    },
]


def load_catalogue(api: Api, products: list[dict[str, Any]] | None = None) -> None:
    """Define the products (``POST /v1/mappings/load``): lines resolve their SKU by them."""
    body = {"version": 1, "products": PRODUCTS if products is None else products}
    response = api.post("/v1/mappings/load", body, role="admin")
    assert response.status_code == 200, response.text
    assert response.json()["refused"] == [], response.text


@pytest.fixture
def mapped(api: Api) -> None:
    """The catalogue, loaded before the test delivers anything (``usefixtures``)."""
    load_catalogue(api)


def unique_name(n: int, form: str = "GmbH") -> str:
    """A company name that shares no word, prefix or likeness with another ``n``'s:
    hypothesis examples share one database, and matching would link look-alikes."""
    digest = hashlib.sha256(f"company-{n}".encode()).digest()
    word = "".join("abcdefghijklmnopqrstuvwxyz"[b % 26] for b in digest[:10])
    return f"{word.capitalize()} {form}"
