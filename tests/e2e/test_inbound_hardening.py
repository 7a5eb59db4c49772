"""The inbound boundary under attack and under odd but signed input: no 500, nothing
stored unverified, no record pinned by a far-future time, one bad held delivery never
blocks the others."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import Api, assert_problem
from tests.e2e.inbound_support import (
    ACCOUNT,
    crm_account,
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    stripe_customer,
    stripe_event,
    stripe_invoice,
    stripe_signature,
)
from tests.e2e.test_webhooks_stripe import deliver


def raw_post(api: Api, system: str, body: bytes, headers: dict[str, bytes]) -> int:
    return api.http.post(f"/v1/webhooks/{system}", content=body, headers=headers).status_code


def test_malformed_signature_headers_are_401_not_500(api: Api) -> None:
    cases = [
        ("netsuite", b"{}", {"X-Concord-Signature": "\u00e9" * 64}),
        ("salesforce", b"[]", {"X-Concord-Signature": "zz"}),
        ("stripe", b"\xff\xfe", {"Stripe-Signature": "t=1,v1=00"}),
        ("stripe", b"{}", {"Stripe-Signature": "t=\u00b2,v1=" + "0" * 64}),
        (
            "hubspot",
            b"[]",
            {"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": "1" * 5000},
        ),
        (
            "hubspot",
            b"[]",
            {"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": "\u00b2"},
        ),
        ("chargebee", b"{}", {"Authorization": "Basic \u00e9\u00e9"}),
    ]
    for system, body, headers in cases:
        encoded = {k: v.encode("latin-1") for k, v in headers.items()}
        status = raw_post(api, system, body, encoded)
        assert status == 401, (system, headers, status)
    assert api.get("/v1/inbound").json()["items"] == []


def test_a_far_future_source_time_is_refused_before_anything_is_stored(api: Api) -> None:
    crm_account(api)
    future = int(time.time()) + 3600
    body = stripe_event("customer.created", stripe_customer("cus_F", ACCOUNT), "evt_f", future)
    response = deliver(api, body)
    assert_problem(response, 422, "validation-failed", field="body")
    assert api.get("/v1/inbound").json()["items"] == []


def test_an_event_id_reused_with_another_payload_runs_only_the_logged_one(api: Api) -> None:
    """What the log holds is what was applied: other bytes under a known event id (a retry
    counter, another channel, or a forgery by someone holding the secret) never run."""
    customer_id = crm_account(api)
    first = stripe_event("customer.created", stripe_customer("cus_R", ACCOUNT), "evt_same", 1)
    assert deliver(api, first).status_code == 200
    other = stripe_event("customer.created", stripe_customer("cus_OTHER", ACCOUNT), "evt_same", 1)
    response = deliver(api, other)
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "duplicate"
    [row] = api.get("/v1/inbound").json()["items"]
    assert "cus_R" in api.get(f"/v1/inbound/{row['id']}").json()["body"]
    ids = api.get(f"/v1/customers/{customer_id}").json()["external_ids"]
    assert "cus_OTHER" not in {e["external_id"] for e in ids}


def test_one_failing_held_delivery_never_blocks_the_others(api: Api, monkeypatch: Any) -> None:
    """A held delivery whose re-translation raises is recorded and skipped; the one behind
    it is still re-run, and the webhook that released them answers 200."""
    from adapters.stripe import adapter as stripe_adapter

    crm_account(api)
    one_off = {"metadata": {"sf_opportunity_id": "006X"}}
    for invoice_id, event_id in (("in_A", "evt_a"), ("in_B", "evt_b")):
        body = stripe_event(
            "invoice.finalized", stripe_invoice(invoice_id, "cus_H") | one_off, event_id, 1
        )
        response = deliver(api, body)
        assert response.json()["results"][0]["waiting_for"] == "billing customer cus_H"
    original = stripe_adapter._invoice_finalized

    def explode_on_a(event: Any, known: Any) -> Any:
        if event.data.object["id"] == "in_A":
            raise RuntimeError("translator bug")
        return original(event, known)

    monkeypatch.setattr(stripe_adapter, "_invoice_finalized", explode_on_a)
    linked = stripe_event("customer.created", stripe_customer("cus_H", ACCOUNT), "evt_h", 1)
    assert deliver(api, linked).status_code == 200
    rows = {r["event_id"]: r for r in api.get("/v1/inbound").json()["items"]}
    assert rows["evt_a"]["status"] == "held"
    assert "translator bug" in rows["evt_a"]["detail"]["last_error"]
    # The one behind it ran: it now waits for its order, no longer for the customer.
    assert rows["evt_b"]["waiting_for"] == {
        "system": "crm",
        "entity": "order",
        "external_id": "006X",
    }


def test_numbers_beyond_reason_and_nan_are_422_not_500(api: Api) -> None:
    import hashlib
    import hmac

    from tests.e2e.inbound_support import SALESFORCE_SECRET
    from tests.e2e.netsuite_support import netsuite_signature

    bodies = [
        b'[{"channel": "/data/AccountChangeEvent", "data": {"payload": {"X__c": 1e999999999}}}]',
        b'[{"channel": "/data/AccountChangeEvent", "data": {"payload": {"X__c": NaN}}}]',
        b"[" * 100_000 + b"]" * 100_000,
    ]
    for body in bodies:
        signature = hmac.new(SALESFORCE_SECRET.encode(), body, hashlib.sha256).hexdigest()
        status = raw_post(api, "salesforce", body, {"X-Concord-Signature": signature.encode()})
        assert status == 422, (body[:40], status)
    ns = b'{"eventId": "e", "recordType": "customer", "record": {"x": 1e999999999}}'
    status = raw_post(api, "netsuite", ns, {"X-Concord-Signature": netsuite_signature(ns).encode()})
    assert status == 422


def test_an_operator_discards_a_delivery_that_will_never_apply(api: Api) -> None:
    crm_account(api)
    body = stripe_event("customer.created", stripe_customer("cus_D", "001Dn00000NeverIAZ"), "d1", 1)
    held = deliver(api, body)
    assert held.status_code == 202
    delivery_id = held.json()["results"][0]["delivery_id"]
    path = f"/v1/inbound/{delivery_id}/discard"
    assert api.post(path, {"reason": "test account"}, role="billing").status_code == 403
    assert_problem(api.post(path, {}, role="admin"), 422, "validation-failed", field="body.reason")
    done = api.post(path, {"reason": "a test account, never in the CRM"}, role="admin")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "discarded"
    assert done.json()["detail"]["discarded_by"] == "admin-client"
    assert api.get("/v1/inbound/held").json()["items"] == []
    again = deliver(api, body)
    assert again.json()["results"][0]["status"] == "duplicate"
    assert_problem(api.post(path, {"reason": "x"}, role="admin"), 409, "not-discardable")
    assert_problem(
        api.post("/v1/inbound/999999/discard", {"reason": "x"}, role="admin"), 404, "not-found"
    )


def test_credential_headers_are_never_stored(api: Api) -> None:
    crm_account(api)
    body = stripe_event("customer.created", stripe_customer("cus_K", ACCOUNT), "k1", 1)
    headers = {
        "Content-Type": "application/json",
        "Stripe-Signature": stripe_signature(body),
        "X-Bridge-Auth-Token": "s3cret",
        "X-Api-Key": "k",
        "Proxy-Session": "p",
        "X-Request-Id": "req-1",
    }
    assert api.http.post("/v1/webhooks/stripe", content=body, headers=headers).status_code == 200
    [row] = api.get("/v1/inbound").json()["items"]
    stored = api.get(f"/v1/inbound/{row['id']}").json()["headers"]
    assert stored["x-request-id"] == "req-1"
    assert not {"x-bridge-auth-token", "x-api-key", "proxy-session", "stripe-signature"} & set(
        stored
    )
