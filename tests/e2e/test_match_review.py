"""The match review queue end to end: a Stripe customer without a CRM id is matched."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.conftest import Api, assert_problem
from tests.e2e.inbound_support import (
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    stripe_customer,
    stripe_event,
)
from tests.e2e.test_webhooks_stripe import deliver


def customer(api: Api, name: str, **fields: Any) -> str:
    response = api.post("/v1/customers", {"legal_name": name, **fields}, role="crm")
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def stripe_named(cus: str, name: str, event_id: str) -> bytes:
    obj = stripe_customer(cus, None) | {"name": name}
    return stripe_event("customer.created", obj, event_id, 1767225600)


def billing_ids(api: Api, customer_id: str) -> list[str]:
    state = api.get(f"/v1/customers/{customer_id}").json()
    return [e["external_id"] for e in state["external_ids"] if e["system"] == "billing"]


def test_a_billing_name_alone_never_links_even_when_identical(api: Api) -> None:
    """A buyer types the name at checkout: "Acme GmbH" must not attach their invoices to
    the real Acme (billing does not own names); a person decides."""
    acme = customer(api, "Acme GmbH")
    response = deliver(api, stripe_named("cus_1", "Acme GmbH", "evt_1"))
    assert response.status_code == 202, response.text
    assert billing_ids(api, acme) == []
    [review] = api.get("/v1/matches").json()["items"]
    assert review["candidates"][0]["reason"].startswith("same legal name")


def test_decisions_name_only_live_customers(api: Api) -> None:
    acme = customer(api, "Acme GmbH")
    gone = customer(api, "Acme Ltd")
    assert api.post(f"/v1/customers/{gone}/erase", {}, role="crm").status_code == 200
    assert deliver(api, stripe_named("cus_9", "Acme G.m.b.H.", "evt_9")).status_code == 202
    [review] = api.get("/v1/matches").json()["items"]
    refused = api.post(f"/v1/matches/{review['id']}/link", {"customer_id": gone}, role="admin")
    assert_problem(refused, 409, "customer-unavailable", field="body.customer_id")
    assert (
        api.post(
            f"/v1/matches/{review['id']}/link", {"customer_id": acme}, role="admin"
        ).status_code
        == 200
    )


def test_a_variant_is_reviewed_then_linked_on_approval(api: Api) -> None:
    acme = customer(api, "Acme GmbH")
    customer(api, "Globex Corporation")
    response = deliver(api, stripe_named("cus_2", "ACME G.m.b.H.", "evt_2"))
    assert response.status_code == 202, response.text
    assert response.json()["results"][0]["waiting_for"] == "review customer stripe:cus_2"
    [review] = api.get("/v1/matches").json()["items"]
    assert review["external_id"] == "cus_2" and review["status"] == "pending"
    assert [c["customer_id"] for c in review["candidates"]] == [acme]
    assert billing_ids(api, acme) == []  # nothing linked on a guess
    for role in ("crm", "billing"):
        assert api.post(f"/v1/matches/{review['id']}/link", {}, role=role).status_code == 403
    decided = api.post(f"/v1/matches/{review['id']}/link", {"customer_id": acme}, role="admin")
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "linked"
    assert billing_ids(api, acme) == ["cus_2"]  # the held delivery was released and applied
    assert api.get("/v1/inbound/held").json()["items"] == []
    again = api.post(f"/v1/matches/{review['id']}/new", role="admin")
    assert_problem(again, 409, "already-decided", field="path.id")


def test_rejected_review_links_nothing(api: Api) -> None:
    acme = customer(api, "Acme GmbH")
    assert deliver(api, stripe_named("cus_3", "Acmee GmbH", "evt_3")).status_code == 202
    [review] = api.get("/v1/matches").json()["items"]
    assert api.post(f"/v1/matches/{review['id']}/new", role="admin").status_code == 200
    assert billing_ids(api, acme) == []
    [row] = [r for r in api.get("/v1/inbound").json()["items"] if r["event_id"] == "evt_3"]
    assert row["status"] == "ignored"


def test_merge_keeps_both_lineages_and_links_the_survivor(api: Api) -> None:
    survivor = customer(api, "Acme GmbH")
    duplicate = customer(api, "ACME Gmbh.")
    assert deliver(api, stripe_named("cus_4", "Acme, GmbH", "evt_4")).status_code == 202
    [review] = api.get("/v1/matches").json()["items"]
    assert {c["customer_id"] for c in review["candidates"]} == {survivor, duplicate}
    decided = api.post(
        f"/v1/matches/{review['id']}/merge",
        {"survivor_id": survivor, "merged_id": duplicate},
        role="admin",
    )
    assert decided.status_code == 200, decided.text
    merged = api.get(f"/v1/customers/{duplicate}").json()["state"]
    assert merged["merged_into"] == survivor
    assert billing_ids(api, survivor) == ["cus_4"]
    assert len(api.get(f"/v1/customers/{duplicate}/events").json()["events"]) >= 2


def test_bad_decisions(api: Api) -> None:
    acme = customer(api, "Acme GmbH")
    assert deliver(api, stripe_named("cus_5", "Acme Ltd", "evt_5")).status_code == 202
    [review] = api.get("/v1/matches").json()["items"]
    path = f"/v1/matches/{review['id']}"
    assert_problem(api.post(f"{path}/link", {}, role="admin"), 422, "validation-failed")
    unknown = api.post(f"{path}/link", {"customer_id": str(uuid.uuid4())}, role="admin")
    assert_problem(unknown, 404, "not-found", field="body.customer_id")
    same = api.post(f"{path}/merge", {"survivor_id": acme, "merged_id": acme}, role="admin")
    assert_problem(same, 422, "validation-failed", field="body.merged_id")
    assert_problem(api.post("/v1/matches/999999/new", role="admin"), 404, "not-found")
    assert api.get(f"/v1/matches/{review['id']}").json()["status"] == "pending"


def test_an_erased_customer_is_matched_no_more(api: Api) -> None:
    acme = customer(api, "Acme GmbH")
    assert api.post(f"/v1/customers/{acme}/erase", {}, role="crm").status_code == 200
    response = deliver(api, stripe_named("cus_6", "Acme GmbH", "evt_6"))
    assert response.status_code == 202
    assert response.json()["results"][0]["status"] == "ignored"
