"""HubSpot webhooks end to end: v3 signatures, event arrays, mirrors, holds, closed-won deals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Runtime
from tests.e2e.conftest import Api, assert_problem
from tests.e2e.hubspot_support import (
    CONCORD_APP_ID,
    OLD_SECRET,
    T0,
    associate,
    company_events,
    deal_events,
    deliver,
    event,
    lookup,
    prop,
    sign,
)
from tests.e2e.inbound_support import (
    inbound_runtime,
    mapped,  # noqa: F401  (the catalogue fixture)
    state,
    unique_name,
)

pytestmark = pytest.mark.usefixtures("mapped")

_numbers = itertools.count(1)


@pytest.fixture
def runtime(database_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Runtime]:
    """Webhook secrets configured, and Concord's own HubSpot app id (echo suppression)."""
    yield from inbound_runtime(database_url, pg_schema, tmp_path, hubspot_app_id=CONCORD_APP_ID)


def fresh() -> int:
    """Object ids unique within a test (hypothesis examples share one database)."""
    return 9_000_000 + next(_numbers) * 100


def statuses(response: Any) -> list[str]:
    return [r["status"] for r in response.json()["results"]]


def held(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/inbound/held").json()["items"]
    return items


def test_a_batch_of_company_events_registers_then_updates_the_customer(api: Api) -> None:
    company = fresh()
    batch = company_events(company, "Acme  GmbH", domain="https://www.Acme.example/about")
    response = deliver(api, batch)
    assert response.status_code == 202, response.text  # the creation alone is ignored
    assert statuses(response) == ["ignored", "applied", "applied"]
    customer_id = lookup(api, "customer", company)
    assert customer_id is not None
    customer = state(api, "customers", customer_id)
    assert customer["legal_name"] == "Acme GmbH"
    assert customer["web_domain"] == "acme.example"
    # A later rename changes the details; an older one arriving late changes nothing.
    renamed = deliver(api, [prop("company", company, "name", "Acme Holding GmbH", at=T0 + 500)])
    assert statuses(renamed) == ["applied"]
    before = api.total_events()
    late = deliver(api, [prop("company", company, "name", "Acme Old Name", at=T0 + 100)])
    assert statuses(late) == ["ignored"]
    assert api.total_events() == before
    assert state(api, "customers", customer_id)["legal_name"] == "Acme Holding GmbH"
    # A cleared domain (HubSpot sends "") clears it.
    deliver(api, [prop("company", company, "domain", "", at=T0 + 600)])
    assert state(api, "customers", customer_id)["web_domain"] is None
    events = api.get(f"/v1/customers/{customer_id}/events").json()["events"]
    assert events[0]["provenance"]["occurred_at"].startswith("2026-01-02T00:00:00.001")


def test_child_company_before_its_parent_is_held_then_applied(api: Api) -> None:
    parent, child = fresh(), fresh()
    response = deliver(api, company_events(child, "Acme France SAS", parent=parent))
    assert response.status_code == 202
    assert lookup(api, "customer", child) is not None  # registered on its name alone
    waiting = [h for h in held(api) if h["waiting_for"]["external_id"] == str(parent)]
    assert waiting and waiting[0]["waiting_for"]["entity"] == "customer"
    deliver(api, company_events(parent, "Acme Group SE"))
    assert held(api) == []
    parent_id, child_id = lookup(api, "customer", parent), lookup(api, "customer", child)
    assert state(api, "customers", str(child_id))["parent_customer_id"] == parent_id
    # The hierarchy as an association event (child → parent) is the same fact.
    other = fresh()
    deliver(api, company_events(other, "Acme Iberia SL"))
    deliver(api, [associate("CHILD_TO_PARENT_COMPANY", other, parent, at=T0 + 900)])
    assert (
        state(api, "customers", str(lookup(api, "customer", other)))["parent_customer_id"]
        == parent_id
    )


LINES = [(1, "PLAT-1", "2", "1200.00"), (2, "SEAT-10", "10", "49.50"), (3, "ONB", "1", "750.00")]


def expected_lines() -> list[tuple[str, str, str, str]]:
    return sorted((sku, f"Line {sku}", quantity, price) for _, sku, quantity, price in LINES)


def order_lines(order: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return sorted(
        (x["sku"], x["description"], x["quantity"], x["unit_price"]) for x in order["lines"]
    )


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_closed_won_deal_in_any_order_places_one_order_with_all_lines(
    api: Api, data: st.DataObject
) -> None:
    company, deal = fresh(), fresh()
    lines = [(deal + i, sku, q, p) for i, sku, q, p in LINES]
    events = company_events(company, unique_name(company)) + deal_events(deal, company, lines)
    shuffled = data.draw(st.permutations(events))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(events) - 1), max_size=6)))
    for start, end in itertools.pairwise([0, *cuts, len(events)]):
        response = deliver(api, list(shuffled[start:end]))
        assert response.status_code in (200, 202), response.text
    order_id = lookup(api, "order", deal)
    assert order_id is not None
    order = state(api, "orders", order_id)
    assert order_lines(order) == expected_lines()
    assert order["customer_id"] == lookup(api, "customer", company)
    assert order["currency"] == "EUR"
    assert order["booking_date"] == "2026-01-09"  # closedate, not arrival
    assert order["opportunity_id"] == str(deal)
    assert order["totals"]["total"] == {"amount": "3645.00", "currency": "EUR"}
    history = api.get(f"/v1/orders/{order_id}/events").json()["events"]
    types = [e["type"] for e in history]
    # Placed once; amended only when the line-item count arrived after the won flag.
    assert types[0] == "OrderPlaced" and set(types[1:]) <= {"OrderAmended"}
    assert held(api) == []
    # Everything again (HubSpot retries): no further effect.
    before = api.total_events()
    again = deliver(api, events)
    assert set(statuses(again)) == {"duplicate"}
    assert api.total_events() == before


def test_a_line_item_after_the_order_amends_it(api: Api) -> None:
    company, deal = fresh(), fresh()
    deliver(api, company_events(company, "Acme GmbH"))
    first = deal_events(deal, company, [(deal + 1, "PLAT-1", "1", "100.00")])
    first = [e for e in first if e.get("propertyName") != "hs_num_of_associated_line_items"]
    deliver(api, first)
    order_id = lookup(api, "order", deal)
    assert order_id is not None and len(state(api, "orders", order_id)["lines"]) == 1
    later = deal_events(deal, company, [(deal + 2, "SEAT-10", "3", "10.00")], at=T0 + 120_000)[-6:]
    deliver(api, later)
    assert len(state(api, "orders", order_id)["lines"]) == 2
    removed = associate("DEAL_TO_LINE_ITEM", deal, deal + 2, at=T0 + 300_000, removed=True)
    deliver(api, [removed])
    assert [x["sku"] for x in state(api, "orders", order_id)["lines"]] == ["PLAT-1"]


def test_deal_waits_for_its_company_and_a_lost_deal_places_nothing(api: Api) -> None:
    company, deal, lost = fresh(), fresh(), fresh()
    response = deliver(api, deal_events(deal, company, [(deal + 1, "PLAT-1", "1", "100.00")]))
    assert "held" in statuses(response)
    assert {h["waiting_for"]["external_id"] for h in held(api)} == {str(company)}
    deliver(api, company_events(company, "Acme GmbH"))
    assert lookup(api, "order", deal) is not None and held(api) == []
    lost_events = deal_events(lost, company, [(lost + 1, "PLAT-1", "1", "100.00")])
    lost_events = [
        e for e in lost_events if e.get("propertyName") not in ("dealstage", "hs_is_closed_won")
    ]
    lost_events.append(prop("deal", lost, "hs_is_closed_won", "false", at=T0 + 90_000))
    lost_events.append(
        prop("deal", lost, "dealstage", "closedwon", at=T0 + 80_000)
    )  # label-like id ignored: flag wins
    deliver(api, lost_events)
    assert lookup(api, "order", lost) is None


def test_zero_and_three_decimal_currencies(api: Api) -> None:
    company = fresh()
    deliver(api, company_events(company, "Acme KK"))
    yen, dinar = fresh(), fresh()
    deliver(api, deal_events(yen, company, [(yen + 1, "PLAT-1", "1", "5000.00")], currency="JPY"))
    deliver(
        api, deal_events(dinar, company, [(dinar + 1, "PLAT-1", "2", "12.345")], currency="KWD")
    )
    totals = {
        d: state(api, "orders", str(lookup(api, "order", d)))["totals"]["total"]
        for d in (yen, dinar)
    }
    assert totals[yen] == {"amount": "5000", "currency": "JPY"}
    assert totals[dinar] == {"amount": "24.690", "currency": "KWD"}


def test_echoes_of_concords_own_writes_cause_nothing(api: Api) -> None:
    company = fresh()
    deliver(api, company_events(company, "Acme GmbH"))
    before = api.total_events()
    echo = prop(
        "company",
        company,
        "domain",
        "acme.example",
        at=T0 + 700,
        changeSource="INTEGRATION",
        sourceId=CONCORD_APP_ID,
    )
    response = deliver(api, [echo])
    assert statuses(response) == ["ignored"]
    assert "echo" in response.json()["results"][0]["detail"]["reason"]
    assert api.total_events() == before


def test_signature_matrix_and_nothing_logged_when_refused(api: Api) -> None:
    body = orjson.dumps(company_events(fresh(), "Signed GmbH"))
    now = int(time.time() * 1000)
    missing_timestamp = sign(body)
    del missing_timestamp["X-HubSpot-Request-Timestamp"]
    missing_signature = sign(body)
    del missing_signature["X-HubSpot-Signature-v3"]
    refused = {
        "wrong secret": sign(body, secret="not-the-secret"),
        "expired timestamp": sign(body, at_ms=now - 330_000),
        "future timestamp": sign(body, at_ms=now + 330_000),  # a slow run must not reach it
        "tampered body": sign(body.replace(b"Signed", b"Forged")),
        "other URL": sign(body, url="https://elsewhere.example/v1/webhooks/hubspot"),
        "other method": sign(body, method="PUT"),
        "missing signature": missing_signature,
        "missing timestamp": missing_timestamp,
    }
    for case, headers in refused.items():
        response = deliver(api, body, headers)
        assert_problem(response, 401, "webhook-unverified"), case
    assert api.get("/v1/inbound", params={"system": "hubspot"}).json()["items"] == []
    assert deliver(api, body, sign(body, at_ms=now - 200_000)).status_code in (200, 202)
    rotated = deliver(
        api,
        body.replace(b"Signed", b"Rotated"),
        sign(body.replace(b"Signed", b"Rotated"), secret=OLD_SECRET),
    )
    assert rotated.status_code in (200, 202), rotated.text
    logged = api.get("/v1/inbound", params={"system": "hubspot"}).json()["items"]
    assert len(logged) == 2  # the second delivery repeats the first's event ids
    detail = api.get(f"/v1/inbound/{logged[0]['id']}").json()
    assert detail["verification"].startswith("hubspot-signature-v3")
    assert not any(h.lower().startswith("x-hubspot-signature") for h in detail["headers"])


def test_the_public_url_is_signed_behind_a_proxy(
    database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app

    public = "https://concord.example/hooks/hubspot?portal=62515%3Aeu&note=a%20b"
    for rt in inbound_runtime(database_url, pg_schema, tmp_path, hubspot_webhook_url=public):
        with TestClient(create_app(rt)) as http:
            body = orjson.dumps([event("contact.creation", 1)])
            stamp = str(int(time.time() * 1000))
            # HubSpot decodes %3A (and its other reserved escapes, not %20) before signing.
            signed = "POST" + "https://concord.example/hooks/hubspot?portal=62515:eu&note=a%20b"
            digest = hmac.new(
                b"hs-client-secret", signed.encode() + body + stamp.encode(), hashlib.sha256
            )
            headers = {
                "X-HubSpot-Signature-v3": base64.b64encode(digest.digest()).decode(),
                "X-HubSpot-Request-Timestamp": stamp,
            }
            ok = http.post("/v1/webhooks/hubspot", content=body, headers=headers)
            assert ok.status_code == 202, ok.text
            assert ok.json()["results"][0]["status"] == "ignored"
            as_seen = sign(body)  # the URL Concord sees is not what HubSpot signed
            assert (
                http.post("/v1/webhooks/hubspot", content=body, headers=as_seen).status_code == 401
            )


def test_malformed_deliveries_name_the_field(api: Api) -> None:
    good = prop("company", fresh(), "name", "Acme GmbH")
    no_time = {k: v for k, v in good.items() if k != "occurredAt"}
    cases = {
        "body.1.occurredAt": [good, no_time],
        "body.0.objectId": [{k: v for k, v in good.items() if k != "objectId"}],
        "body.0.propertyName": [{k: v for k, v in good.items() if k != "propertyName"}],
        "body.0.eventId": [good | {"eventId": "abc"}],
        "body.0.propertyValue": [good | {"propertyValue": 12}],
        "body.0.fromObjectId": [associate("DEAL_TO_COMPANY", 1, 2) | {"fromObjectId": None}],
        "body": {"not": "an array"},
    }
    for where, payload in cases.items():
        assert_problem(deliver(api, orjson.dumps(payload)), 422, "validation-failed", field=where)
    assert_problem(deliver(api, b"[not json"), 422, "validation-failed", field="body")
    assert_problem(deliver(api, b"[]"), 422, "validation-failed", field="body")
    assert api.get("/v1/inbound", params={"system": "hubspot"}).json()["items"] == []
    # A value that cannot be true is refused after logging, naming the deal's property.
    company, deal = fresh(), fresh()
    deliver(api, company_events(company, "Acme GmbH"))
    bad = deal_events(deal, company, [(deal + 1, "PLAT-1", "1", "1.00")], currency="XXZ")
    response = deliver(api, bad)
    assert_problem(response, 422, "malformed-payload", field=f"deal.{deal}.deal_currency_code")
    assert lookup(api, "order", deal) is None


def test_unknown_subscription_types_are_ignored(api: Api) -> None:
    before = api.total_events()
    batch = [
        event("contact.creation", 11),
        event("ticket.propertyChange", 12, propertyName="subject", propertyValue="Help"),
        event("deal.deletion", 13),
        event(
            "object.propertyChange", 14, objectTypeId="2-123", propertyName="x", propertyValue="y"
        ),
    ]
    response = deliver(api, batch)
    assert response.status_code == 202
    assert statuses(response) == ["ignored"] * 4
    assert api.total_events() == before
