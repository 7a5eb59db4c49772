"""Reads: state, as-of state, history with provenance, lookup, ownership, event schemas."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.e2e.conftest import Api, assert_problem


def test_state_and_history_with_provenance(api: Api) -> None:
    headers = {
        "Concord-Source-Record-Id": "0015g00000XyZ",
        "Concord-Source-Event-Id": "evt-77",
        "Concord-Correlation-Id": "OPP-42",
        "Concord-Causation-Id": "webhook-9",
        "Concord-Occurred-At": "2026-01-02T03:04:05+01:00",
    }
    created = api.post("/v1/customers", {"legal_name": "Acme"}, headers=headers)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    api.post(f"/v1/customers/{cid}/assign_number", {"customer_number": "C-100"}, role="erp")

    state = api.get(f"/v1/customers/{cid}", role="reader")
    assert state.status_code == 200
    assert state.headers["etag"] == '"2"'
    assert state.json()["state"]["customer_number"] == "C-100"
    assert {"system": "crm", "external_id": "0015g00000XyZ"} in state.json()["external_ids"]

    history = api.get(f"/v1/customers/{cid}/events", role="reader")
    assert history.status_code == 200
    assert history.json()["version"] == 2
    first, second = history.json()["events"]
    assert (first["version"], second["version"]) == (1, 2)
    assert first["type"] == "CustomerRegistered"
    assert first["provenance"] == {
        "source_system": "crm",
        "source_record_id": "0015g00000XyZ",
        "source_event_id": "evt-77",
        "correlation_id": "OPP-42",
        "causation_id": "webhook-9",
        "actor": "crm-client",
        "occurred_at": "2026-01-02T03:04:05+01:00",
    }
    assert datetime.fromisoformat(first["occurred_at"]) == datetime.fromisoformat(
        "2026-01-02T02:04:05+00:00"
    )
    assert second["provenance"]["source_system"] == "erp"
    assert second["provenance"]["correlation_id"] is None


def test_as_of_shows_past_state(api: Api) -> None:
    created = api.post("/v1/customers", {"legal_name": "Old Name Ltd"})
    cid = created.json()["id"]
    registered_at = datetime.fromisoformat(created.json()["modified_at"])
    changed = api.post(f"/v1/customers/{cid}/change_details", {"legal_name": "New Name Ltd"})
    assert changed.status_code == 200

    then = api.get(f"/v1/customers/{cid}", params={"as_of": registered_at.isoformat()})
    assert then.status_code == 200, then.text
    assert then.json()["version"] == 1
    assert then.json()["state"]["legal_name"] == "Old Name Ltd"
    assert then.headers["etag"] == '"1"'
    now = api.get(f"/v1/customers/{cid}")
    assert now.json()["state"]["legal_name"] == "New Name Ltd"

    before = (registered_at - timedelta(seconds=1)).isoformat()
    problem = assert_problem(
        api.get(f"/v1/customers/{cid}", params={"as_of": before}), 404, "not-found", field="path.id"
    )
    assert "at " in problem["detail"]
    assert_problem(
        api.get(f"/v1/customers/{cid}", params={"as_of": "2026-01-01T00:00:00"}),
        422,
        "validation-failed",
        field="query.as_of",
    )
    assert_problem(
        api.get(f"/v1/customers/{cid}", params={"as_of": "last week"}),
        422,
        "validation-failed",
        field="query.as_of",
    )


def test_lookup_by_external_id(api: Api) -> None:
    created = api.post(
        "/v1/customers", {"legal_name": "Acme"}, headers={"Concord-Source-Record-Id": "acct/001"}
    )
    cid = created.json()["id"]

    found = api.get("/v1/lookup/crm/customer/acct/001", role="reader")
    assert found.status_code == 200, found.text
    assert found.json()["id"] == cid
    assert found.json()["aggregate"]["id"] == cid
    assert found.json()["aggregate"]["state"]["legal_name"] == "Acme"
    assert (found.json()["system"], found.json()["external_id"]) == ("crm", "acct/001")

    # Re-sending the same source record hits the same aggregate (deterministic id).
    again = api.post(
        "/v1/customers", {"legal_name": "Acme"}, headers={"Concord-Source-Record-Id": "acct/001"}
    )
    twin = assert_problem(again, 409, "already-exists")
    # The duplicate names the aggregate already there, so the client can carry on with it.
    assert twin["existing_id"] == cid
    assert again.headers["Location"] == twin["location"] == f"/v1/customers/{cid}"
    assert api.get(again.headers["Location"]).json()["id"] == cid

    problem = assert_problem(
        api.get("/v1/lookup/erp/customer/acct/001"), 404, "not-found", field="path.external_id"
    )
    assert "acct/001" in problem["detail"]
    assert_problem(api.get("/v1/lookup/crm/widget/1"), 404, "not-found", field="path.entity")
    assert_problem(
        api.get("/v1/lookup/sap/customer/1"), 422, "validation-failed", field="path.system"
    )


def test_ownership_policy_as_loaded(api: Api) -> None:
    response = api.get("/v1/ownership", role="reader")
    assert response.status_code == 200
    policy = response.json()
    assert policy["version"] == api.runtime.policy.version
    assert policy["entities"]["customer"]["fields"]["tax_id"] == ["erp"]
    assert set(policy["entities"]) == {
        "customer",
        "contract",
        "order",
        "invoice",
        "payment",
        "product",
    }


def test_event_schemas(api: Api) -> None:
    response = api.get("/v1/schemas/events", role="reader")
    assert response.status_code == 200
    schemas = response.json()
    for name in ("CustomerRegistered", "OrderPlaced", "InvoiceIssued", "PaymentReceived"):
        assert schemas[name]["type"] == "object"
        assert "properties" in schemas[name]
    placed = schemas["OrderPlaced"]["properties"]
    assert "lines" in placed["data"]["properties"]
    assert placed["type"] == {"const": "OrderPlaced"}
    assert placed["aggregate"] == {"const": "order"}
    assert "provenance" not in placed["data"]["properties"]
