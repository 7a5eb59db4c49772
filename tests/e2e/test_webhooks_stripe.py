"""Stripe webhooks end to end: signatures, the inbound log, dedupe, holds, minor units."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Api, assert_problem
from tests.e2e.inbound_support import (
    ACCOUNT,
    STRIPE_OLD_SECRET,
    crm_account,
    mapped,  # noqa: F401  (the catalogue fixture)
    post_webhook,
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    stripe_customer,
    stripe_event,
    stripe_invoice,
    stripe_signature,
)

pytestmark = pytest.mark.usefixtures("mapped")


def deliver(api: Api, body: bytes, signature: str | None = None) -> httpx.Response:
    signed = stripe_signature(body) if signature is None else signature
    return post_webhook(api, "stripe", body, "Stripe-Signature", signed)


def linked_customer(api: Api, cus: str = "cus_Acme", *, with_subscription: bool = True) -> str:
    """A CRM account linked to Stripe customer ``cus`` (with subscription ``sub_1``)."""
    customer_id = crm_account(api)
    body = stripe_event("customer.created", stripe_customer(cus, ACCOUNT), "evt_cus_1", 1767225600)
    response = deliver(api, body)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "applied"
    if with_subscription:
        subscription(api, customer_id)
    return customer_id


def subscription(api: Api, customer_id: str, sub: str = "sub_1") -> str:
    """An order and its contract, activated in billing as ``sub`` (what invoices bill)."""
    order_id = api.order(customer_id, currency="EUR")
    response = api.post(
        "/v1/contracts",
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "items": [
                {
                    "sku": "PLAT-1",
                    "rate_plan": "monthly",
                    "quantity": "1",
                    "unit_price": "25.00",
                    "billing_period": "month",
                    "charge_type": "recurring",
                }
            ],
            "currency": "EUR",
            "term_start": "2026-01-01",
            "term_end": "2026-12-31",
        },
        role="billing",
    )
    assert response.status_code == 201, response.text
    contract_id = str(response.json()["id"])
    activated = api.post(
        f"/v1/contracts/{contract_id}/activate", {"billing_subscription_id": sub}, role="billing"
    )
    assert activated.status_code == 200, activated.text
    return contract_id


def lookup(api: Api, entity: str, external: str) -> str | None:
    response = api.get(f"/v1/lookup/billing/{entity}/{external}")
    return str(response.json()["id"]) if response.status_code == 200 else None


def inbound(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/v1/inbound", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_customer_links_to_the_crm_account_named_in_metadata(api: Api) -> None:
    customer_id = linked_customer(api)
    state = api.get(f"/v1/customers/{customer_id}").json()
    assert {"system": "billing", "external_id": "cus_Acme"} in [
        {k: e[k] for k in ("system", "external_id")} for e in state["external_ids"]
    ]
    # The event names the exact delivery that caused it.
    events = api.get(f"/v1/customers/{customer_id}/events").json()["events"]
    link = events[-1]
    assert link["type"] == "CustomerLinked"
    cause = link["provenance"]["causation_id"]
    assert cause.startswith("inbound:")
    logged = api.get(f"/v1/inbound/{cause.split(':')[1]}").json()
    assert logged["event_id"] == "evt_cus_1"
    assert "cus_Acme" in logged["body"]
    assert "stripe-signature" not in logged["headers"]
    assert logged["verification"].startswith("stripe-signature")


def test_invoice_paid_before_finalized_is_held_then_applied_in_order(api: Api) -> None:
    customer_id = linked_customer(api)
    paid = stripe_event(
        "invoice.paid",
        stripe_invoice("in_1", "cus_Acme", subscription="sub_1", status="paid"),
        "evt_paid",
        1767916800,
    )
    response = deliver(api, paid)
    assert response.status_code == 202, response.text
    assert response.json()["results"][0]["status"] == "held"
    held = api.get("/v1/inbound/held").json()["items"]
    assert [h["event_id"] for h in held] == ["evt_paid"]
    assert held[0]["waiting_for"] == {
        "system": "billing",
        "entity": "invoice",
        "external_id": "in_1",
    }
    assert held[0]["age_s"] >= 0
    assert lookup(api, "payment", "in_1/payment") is None

    finalized = stripe_event(
        "invoice.finalized",
        stripe_invoice("in_1", "cus_Acme", subscription="sub_1"),
        "evt_fin",
        1767312000,
    )
    response = deliver(api, finalized)
    assert response.status_code == 200, response.text
    invoice_id = lookup(api, "invoice", "in_1")
    assert invoice_id is not None
    invoice = api.get(f"/v1/invoices/{invoice_id}").json()["state"]
    assert invoice["customer_id"] == customer_id
    assert invoice["total"] == {"amount": "25.00", "currency": "EUR"}
    assert invoice["issue_date"] == "2026-01-02"  # the source's date, not arrival
    assert invoice["due_date"] == "2026-02-01"
    assert invoice["status"] == "paid"  # the held payment was released and applied
    assert api.get("/v1/inbound/held").json()["items"] == []
    payment_id = lookup(api, "payment", "in_1/payment")
    assert payment_id is not None
    payment = api.get(f"/v1/payments/{payment_id}").json()["state"]
    assert payment["received_at"].startswith("2026-01-09")


def test_repeated_and_concurrent_deliveries_have_one_effect(api: Api) -> None:
    linked_customer(api)
    body = stripe_event(
        "invoice.finalized",
        stripe_invoice("in_2", "cus_Acme", subscription="sub_1"),
        "evt_fin_2",
        1767312000,
    )
    before = api.total_events()
    statuses: list[int] = []

    def send() -> None:
        statuses.append(deliver(api, body).status_code)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert api.total_events() == before + 1
    again = deliver(api, body)
    assert again.status_code == 200
    assert again.json()["results"][0]["status"] == "duplicate"
    assert api.total_events() == before + 1
    assert len(inbound(api, system="stripe")) == 2  # the customer and this one event


def test_zero_and_three_decimal_currencies(api: Api) -> None:
    linked_customer(api)
    common: dict[str, Any] = {"subscription": "sub_1", "amounts": (2500,)}
    jpy = stripe_invoice("in_jpy", "cus_Acme", currency="jpy", number="J-1", **common)
    kwd = stripe_invoice("in_kwd", "cus_Acme", currency="kwd", number="K-1", **common)
    for index, invoice in enumerate((jpy, kwd)):
        body = stripe_event("invoice.finalized", invoice, f"evt_cur_{index}", 1767312000)
        assert deliver(api, body).status_code == 200
    totals = {
        ext: api.get(f"/v1/invoices/{lookup(api, 'invoice', ext)}").json()["state"]["total"]
        for ext in ("in_jpy", "in_kwd")
    }
    assert totals["in_jpy"] == {"amount": "2500", "currency": "JPY"}
    assert totals["in_kwd"] == {"amount": "2.500", "currency": "KWD"}


def test_signature_matrix_and_nothing_logged_when_refused(api: Api) -> None:
    crm_account(api)
    body = stripe_event("customer.created", stripe_customer("cus_S", ACCOUNT), "evt_sig", 1)
    now = int(time.time())
    refused = {
        "wrong secret": stripe_signature(body, "whsec_wrong"),
        "expired timestamp": stripe_signature(body, at=now - 301),
        "tampered body": stripe_signature(body.replace(b"cus_S", b"cus_T")),
        "missing header": "",
        "garbage header": "not-a-signature",
    }
    for case, signature in refused.items():
        response = deliver(api, body, signature)
        assert_problem(response, 401, "webhook-unverified"), case
    assert inbound(api) == []
    rotated = deliver(api, body, stripe_signature(body, STRIPE_OLD_SECRET))
    assert rotated.status_code == 200, rotated.text
    assert len(inbound(api)) == 1


def test_malformed_payloads_and_unknown_types(api: Api) -> None:
    linked_customer(api)
    before = api.total_events()
    bad = stripe_invoice("in_bad", "cus_Acme", subscription="sub_1")
    del bad["lines"]["data"][0]["amount"]
    response = deliver(api, stripe_event("invoice.finalized", bad, "evt_bad", 1767312000))
    assert_problem(response, 422, "malformed-payload", field="body.data.object.lines.data.0.amount")
    not_json = b"{not json"
    assert_problem(deliver(api, not_json), 422, "validation-failed", field="body")  # after verify
    no_id = b'{"type": "invoice.paid", "created": 1, "data": {"object": {}}}'
    assert_problem(deliver(api, no_id), 422, "validation-failed", field="body.id")
    ignored = deliver(api, stripe_event("payout.paid", {"id": "po_1"}, "evt_po", 1767312000))
    assert ignored.status_code == 202
    assert ignored.json()["results"][0]["status"] == "ignored"
    assert api.total_events() == before
    unknown = api.http.post("/v1/webhooks/quickbooks", content=b"{}")
    assert_problem(unknown, 404, "unknown-system", field="path.system")


def test_the_log_is_admin_only(api: Api) -> None:
    for role in ("crm", "billing", "reader"):
        assert api.get("/v1/inbound", role=role).status_code == 403
        assert api.get("/v1/inbound/held", role=role).status_code == 403
    assert api.get("/v1/inbound", role=None).status_code == 401


def test_replay_re_translates_refused_and_keeps_applied_single(api: Api) -> None:
    linked_customer(api)
    body = stripe_event(
        "invoice.finalized",
        stripe_invoice("in_r", "cus_Acme", subscription="sub_1"),
        "evt_r",
        1767312000,
    )
    assert deliver(api, body).status_code == 200
    before = api.total_events()
    response = api.post("/v1/inbound/replay", {"since": "2000-01-01T00:00:00Z"}, role="admin")
    assert response.status_code == 200, response.text
    assert response.json()["counts"].get("duplicate", 0) >= 2
    assert api.total_events() == before
    bad = api.post("/v1/inbound/replay", {"since": "yesterday"}, role="admin")
    assert_problem(bad, 422, "validation-failed", field="body.since")


def test_cli_lists_held_and_replays(api: Api, monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    linked_customer(api)
    paid = stripe_event(
        "invoice.paid",
        stripe_invoice("in_c", "cus_Acme", subscription="sub_1", status="paid"),
        "evt_cli_paid",
        1767916800,
    )
    assert deliver(api, paid).status_code == 202
    settings = api.runtime.settings
    monkeypatch.setenv("CONCORD_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("CONCORD_SCHEMA", settings.schema_name)
    monkeypatch.setenv("CONCORD_DATA_DIR", str(settings.data_dir))
    held = CliRunner().invoke(app, ["inbound", "held"])
    assert held.exit_code == 0, held.output
    assert "evt_cli_paid" in held.output and "waits for billing invoice in_c" in held.output
    replayed = CliRunner().invoke(app, ["inbound", "replay", "--since", "2000-01-01"])
    assert replayed.exit_code == 0, replayed.output
    assert "held" in replayed.output and "duplicate" in replayed.output
    bad = CliRunner().invoke(app, ["inbound", "replay", "--since", "yesterday"])
    assert bad.exit_code != 0


def test_erasure_drops_the_payloads_of_the_customers_deliveries(api: Api) -> None:
    customer_id = linked_customer(api)
    body = stripe_event(
        "invoice.finalized", stripe_invoice("in_e", "cus_Acme", subscription="sub_1"), "evt_e", 1
    )
    assert deliver(api, body).status_code == 200
    other = crm_account(api, "001Dn00000ZzZzZIAZ")
    kept = stripe_event("customer.created", stripe_customer("cus_O", "001Dn00000ZzZzZIAZ"), "e2", 1)
    assert deliver(api, kept).status_code == 200
    erased = api.post(f"/v1/customers/{customer_id}/erase", {}, role="crm")
    assert erased.status_code == 200, erased.text
    rows = {row["event_id"]: row for row in inbound(api)}
    for event_id in ("evt_cus_1", "evt_e"):
        detail = api.get(f"/v1/inbound/{rows[event_id]['id']}").json()
        assert detail["body"] is None and detail["headers"] == {}
        assert len(detail["body_sha256"]) == 64  # what stays: that it existed, and its hash
        assert detail["status"] == "applied"
    untouched = api.get(f"/v1/inbound/{rows['e2']['id']}").json()
    assert "cus_O" in untouched["body"]
    assert other


def test_failed_verifications_are_throttled_per_address(
    database_url: str, pg_schema: str, tmp_path: Any
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.e2e.inbound_support import inbound_runtime

    for rt in inbound_runtime(
        database_url, pg_schema, tmp_path, auth_failure_limit_per_s=0.01, auth_failure_burst=3
    ):
        with TestClient(create_app(rt)) as http:
            body = stripe_event("customer.created", stripe_customer("cus_X", None), "evt_t", 1)
            bad = {"Stripe-Signature": stripe_signature(body, "whsec_wrong")}
            codes = [
                http.post("/v1/webhooks/stripe", content=body, headers=bad).status_code
                for _ in range(5)
            ]
            assert codes == [401, 401, 401, 429, 429]
            limited = http.post("/v1/webhooks/stripe", content=body, headers=bad)
            assert int(limited.headers["Retry-After"]) >= 1
            # Even a valid delivery from that address waits until the bucket refills.
            good = {"Stripe-Signature": stripe_signature(body)}
            assert http.post("/v1/webhooks/stripe", content=body, headers=good).status_code == 429


def test_a_customer_naming_its_erp_customer_links_to_it(api: Api) -> None:
    customer_id = crm_account(api)
    erp = api.post(
        f"/v1/customers/{customer_id}/link", {"system": "erp", "external_id": "647"}, role="erp"
    )
    assert erp.status_code == 200, erp.text
    obj = stripe_customer("cus_E", None) | {"metadata": {"netsuite_customer_id": "647"}}
    response = deliver(api, stripe_event("customer.created", obj, "evt_erp", 1))
    assert response.status_code == 200, response.text
    assert lookup(api, "customer", "cus_E") == customer_id
    unknown = stripe_customer("cus_U", None) | {"metadata": {"netsuite_customer_id": "999"}}
    held = deliver(api, stripe_event("customer.created", unknown, "evt_erp2", 1))
    assert held.json()["results"][0]["waiting_for"] == "erp customer 999"
