"""HubSpot deliveries for the e2e tests: v3-signed arrays of webhook events (§3.2 shapes)."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import orjson

from adapters.hubspot.signature import signature_v3
from tests.e2e.conftest import Api
from tests.e2e.inbound_support import HUBSPOT_PRODUCTS

SECRET = "hs-client-secret"
OLD_SECRET = "hs-old-secret"
PORTAL = 62515
APP_ID = 54321
CONCORD_APP_ID = "777001"
URL = "http://testserver/v1/webhooks/hubspot"
T0 = 1767312000000  # 2026-01-02T00:00:00Z in epoch ms

_ids = itertools.count(1000)


def event(
    subscription_type: str,
    object_id: int | None = None,
    *,
    at: int = T0,
    event_id: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One webhook event as HubSpot sends it (extra: propertyName, associationType, …)."""
    body: dict[str, Any] = {
        "eventId": next(_ids) if event_id is None else event_id,
        "subscriptionId": 4711,
        "portalId": PORTAL,
        "appId": APP_ID,
        "occurredAt": at,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "changeSource": "CRM_UI",
        "sourceId": "userId:45678",
    }
    if object_id is not None:
        body["objectId"] = object_id
    if subscription_type.endswith(".creation"):
        body["changeFlag"] = "CREATED"
    return body | extra


def prop(
    obj: str, object_id: int, name: str, value: str, *, at: int = T0, **extra: Any
) -> dict[str, Any]:
    return event(
        f"{obj}.propertyChange", object_id, at=at, propertyName=name, propertyValue=value, **extra
    )


def associate(
    kind: str, from_id: int, to_id: int, *, at: int = T0, removed: bool = False
) -> dict[str, Any]:
    obj = kind.split("_TO_")[0].lower()
    obj = "company" if obj in ("parent", "child") else obj
    return event(
        f"{obj}.associationChange",
        at=at,
        associationType=kind,
        fromObjectId=from_id,
        toObjectId=to_id,
        associationRemoved=removed,
        isPrimaryAssociation=kind == "DEAL_TO_COMPANY",
        associationCategory="HUBSPOT_DEFINED",
    )


def company_events(
    company_id: int,
    name: str,
    *,
    domain: str | None = None,
    parent: int | None = None,
    at: int = T0,
) -> list[dict[str, Any]]:
    events = [
        event("company.creation", company_id, at=at),
        prop("company", company_id, "name", name, at=at + 1),
    ]
    if domain is not None:
        events.append(prop("company", company_id, "domain", domain, at=at + 2))
    if parent is not None:
        events.append(prop("company", company_id, "hs_parent_company_id", str(parent), at=at + 3))
    return events


def deal_events(
    deal_id: int,
    company_id: int,
    lines: list[tuple[int, str, str, str]],
    *,
    currency: str = "EUR",
    at: int = T0 + 60_000,
) -> list[dict[str, Any]]:
    """A deal closed won with line items ``(id, sku, quantity, price)``: every event of it."""
    events = [
        event("deal.creation", deal_id, at=at),
        prop("deal", deal_id, "dealname", "Acme platform 2026", at=at + 1),
        prop("deal", deal_id, "deal_currency_code", currency, at=at + 2),
        prop("deal", deal_id, "closedate", "1767916800000", at=at + 3),  # 2026-01-09
        prop("deal", deal_id, "hs_num_of_associated_line_items", str(len(lines)), at=at + 4),
        associate("DEAL_TO_COMPANY", deal_id, company_id, at=at + 5),
        prop("deal", deal_id, "dealstage", "closedwon", at=at + 50),
        prop("deal", deal_id, "hs_is_closed_won", "true", at=at + 50),
    ]
    for offset, (line_id, sku, quantity, price) in enumerate(lines):
        t = at + 10 + offset * 5
        events += [
            event("line_item.creation", line_id, at=t),
            prop("line_item", line_id, "name", f"Line {sku}", at=t + 1),
            prop("line_item", line_id, "hs_sku", sku, at=t + 1),
            prop("line_item", line_id, "hs_product_id", HUBSPOT_PRODUCTS.get(sku, sku), at=t + 1),
            prop("line_item", line_id, "quantity", quantity, at=t + 2),
            prop("line_item", line_id, "price", price, at=t + 2),
            associate("LINE_ITEM_TO_DEAL", line_id, deal_id, at=t + 3),
        ]
    return events


def sign(
    body: bytes,
    *,
    secret: str = SECRET,
    url: str = URL,
    at_ms: int | None = None,
    method: str = "POST",
) -> dict[str, str]:
    stamp = str(int(time.time() * 1000) if at_ms is None else at_ms)
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": signature_v3(secret, method, url, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }


def deliver(
    api: Api, events: list[dict[str, Any]] | bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = events if isinstance(events, bytes) else orjson.dumps(events)
    return api.http.post(
        "/v1/webhooks/hubspot", content=body, headers=sign(body) if headers is None else headers
    )


def lookup(api: Api, entity: str, external: int | str) -> str | None:
    response = api.get(f"/v1/lookup/crm/{entity}/{external}")
    return str(response.json()["id"]) if response.status_code == 200 else None
