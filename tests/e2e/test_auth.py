"""API keys and scopes: 401 without a valid key, 403 without the scope; nothing written."""

from __future__ import annotations

import pytest

from api.schemas import KeyPublic
from tests.e2e.conftest import Api, assert_problem


def test_missing_key_is_401_with_challenge(api: Api) -> None:
    before = api.total_events()
    response = api.post("/v1/customers", {"legal_name": "Acme"}, role=None)
    problem = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "concord keys create" in problem["detail"]
    assert_problem(api.get("/v1/ownership", role=None), 401, "unauthenticated")
    assert api.total_events() == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer cnc_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "cnc_wrong"},
    ],
)
def test_wrong_key_is_401(api: Api, headers: dict[str, str]) -> None:
    before = api.total_events()
    response = api.http.post("/v1/customers", json={"legal_name": "Acme"}, headers=headers)
    assert_problem(response, 401, "unauthenticated")
    assert "Bearer" in response.headers["www-authenticate"]
    assert api.total_events() == before


def test_x_api_key_header_works(api: Api) -> None:
    response = api.http.post(
        "/v1/customers", json={"legal_name": "Acme"}, headers={"X-API-Key": api.keys["crm"]}
    )
    assert response.status_code == 201, response.text
    assert response.json()["events"][0]["provenance"]["actor"] == "crm-client"


def test_read_only_key_cannot_write(api: Api) -> None:
    before = api.total_events()
    response = api.post("/v1/customers", {"legal_name": "Acme"}, role="reader")
    problem = assert_problem(response, 403, "forbidden")
    assert "'write'" in problem["detail"]
    assert api.total_events() == before
    assert api.get("/v1/ownership", role="reader").status_code == 200


def test_admin_endpoints_need_admin(api: Api) -> None:
    for role in ("crm", "erp", "billing", "reader"):
        assert_problem(api.get("/v1/conflicts", role=role), 403, "forbidden")
        assert_problem(api.get("/v1/keys", role=role), 403, "forbidden")
    assert api.get("/v1/conflicts", role="admin").status_code == 200


def test_health_needs_no_key(api: Api) -> None:
    response = api.get("/v1/health", role=None)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["ownership_version"] == api.runtime.policy.version


def test_keys_over_http_hashed_and_listed_without_secrets(api: Api) -> None:
    created = api.post(
        "/v1/keys", {"system": "billing", "client_id": "stripe-bridge"}, role="admin"
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("cnc_")
    assert created.json()["scopes"] == ["read", "write"]

    # The new key works at once, as its own client bound to billing.
    cid = api.customer()
    payment = api.http.post(
        "/v1/payments",
        json={
            "customer_id": cid,
            "amount": {"amount": "5.00", "currency": "USD"},
            "method": "card",
            "received_at": "2026-02-01T00:00:00Z",
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert payment.status_code == 201, payment.text
    assert payment.json()["events"][0]["provenance"]["actor"] == "stripe-bridge"

    listed = api.get("/v1/keys", role="admin")
    assert listed.status_code == 200
    assert "stripe-bridge" in {k["client_id"] for k in listed.json()["items"]}
    assert key not in listed.text
    assert all(set(k) == set(KeyPublic.model_fields) - {"key"} for k in listed.json()["items"])
    assert key not in api.runtime.keys.path.read_text()  # type: ignore[union-attr]

    before = len(api.runtime.keys.entries())
    bad = api.post("/v1/keys", {"system": "sap"}, role="admin")
    problem = assert_problem(bad, 422, "validation-failed", field="body.system")
    assert "crm" in problem["detail"]
    for body, field in (
        ({"system": "crm", "scopes": ["root"]}, "body.scopes.0"),
        ({"system": "crm", "scopes": []}, "body.scopes"),
        ({"system": "crm", "client_id": "bad id!"}, "body.client_id"),
        ({"system": "crm", "client_id": "x" * 101}, "body.client_id"),
        ({"system": "crm", "extra": 1}, "body.extra"),
    ):
        assert_problem(
            api.post("/v1/keys", body, role="admin"), 422, "validation-failed", field=field
        )
    assert len(api.runtime.keys.entries()) == before
    assert_problem(api.post("/v1/keys", {"system": "crm"}, role="crm"), 403, "forbidden")
