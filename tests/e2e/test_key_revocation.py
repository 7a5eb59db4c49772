"""Keys can be revoked and can expire; a revoked or expired key answers 401 at once.

Also: key creation answers ``Cache-Control: no-store`` (the response holds a credential),
and ``Allow`` on ``/v1/keys`` names every method the path has.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.keys import KeyRing, KeyRingError, UnknownClient
from adapters.settings import Settings
from tests.e2e.conftest import Api, assert_problem


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_revoked_key_is_401_at_once(api: Api) -> None:
    created = api.post("/v1/keys", {"system": "crm", "client_id": "sf-old"}, role="admin")
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert api.http.get("/v1/ownership", headers=_bearer(key)).status_code == 200

    revoked = api.http.delete("/v1/keys/sf-old", headers=api.headers("admin"))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["client_id"] == "sf-old"
    assert revoked.json()["revoked_at"] is not None

    before = api.total_events()
    response = api.http.post("/v1/customers", json={"legal_name": "x"}, headers=_bearer(key))
    assert_problem(response, 401, "unauthenticated")
    assert api.total_events() == before
    listed = {k["client_id"]: k for k in api.get("/v1/keys").json()["items"]}
    assert listed["sf-old"]["revoked_at"] == revoked.json()["revoked_at"]
    # Revoking again changes nothing and says so with the same record.
    again = api.http.delete("/v1/keys/sf-old", headers=api.headers("admin"))
    assert again.status_code == 200 and again.json() == revoked.json()
    # The client id stays taken: its idempotency receipts and events still name it.
    reuse = api.post("/v1/keys", {"system": "crm", "client_id": "sf-old"}, role="admin")
    assert_problem(reuse, 409, "client-id-taken")


def test_revoke_bad_input_changes_nothing(api: Api) -> None:
    stored = api.runtime.keys.path.read_bytes()  # type: ignore[union-attr]
    assert_problem(
        api.http.delete("/v1/keys/nobody", headers=api.headers("admin")),
        404,
        "unknown-client",
        field="path.client_id",
    )
    assert_problem(
        api.http.delete("/v1/keys/bad%20id!", headers=api.headers("admin")),
        422,
        "validation-failed",
    )
    for role in ("crm", "reader"):
        assert_problem(
            api.http.delete("/v1/keys/admin-client", headers=api.headers(role)), 403, "forbidden"
        )
    assert_problem(api.http.delete("/v1/keys/admin-client"), 401, "unauthenticated")
    # An admin-scope key of another system may revoke only keys of its own system.
    crm_ops = api.runtime.keys.create("crm-ops", "crm", ["read", "admin"])
    stored = api.runtime.keys.path.read_bytes()  # type: ignore[union-attr]
    refused = api.http.delete("/v1/keys/erp-client", headers=_bearer(crm_ops))
    assert_problem(refused, 403, "exceeds-own-rights", field="path.client_id")
    assert api.runtime.keys.path.read_bytes() == stored  # type: ignore[union-attr]
    own = api.http.delete("/v1/keys/crm-client", headers=_bearer(crm_ops))
    assert own.status_code == 200, own.text


def test_revocation_reaches_another_worker_on_the_next_request(api: Api, tmp_path: Path) -> None:
    """Each API worker has its own ring on the shared key file; none caches past a change."""
    other_worker = KeyRing.load(Settings(data_dir=tmp_path))
    assert other_worker.path == api.runtime.keys.path
    key = api.keys["billing"]
    assert other_worker.authenticate(key) is not None
    api.runtime.keys.revoke("billing-client")
    assert other_worker.authenticate(key) is None


def test_configured_keys_can_be_revoked_too(tmp_path: Path) -> None:
    from adapters.keys import hash_key

    settings = Settings(data_dir=tmp_path, api_keys=f"etl:erp:read:{hash_key('cnc_etl')}")
    ring = KeyRing.load(settings)
    assert ring.authenticate("cnc_etl") is not None
    info = ring.revoke("etl")
    assert info.source == "settings" and info.revoked_at is not None
    assert ring.authenticate("cnc_etl") is None
    assert KeyRing.load(settings).authenticate("cnc_etl") is None
    with pytest.raises(UnknownClient):
        ring.revoke("nobody")


def test_expired_key_is_401(api: Api) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    created = api.post(
        "/v1/keys",
        {"system": "erp", "client_id": "temp", "expires_at": expires.isoformat()},
        role="admin",
    )
    assert created.status_code == 201, created.text
    assert created.json()["expires_at"] == expires.isoformat(timespec="seconds")
    key = created.json()["key"]
    assert api.http.get("/v1/ownership", headers=_bearer(key)).status_code == 200
    ring = api.runtime.keys
    ring.clock = lambda: expires + timedelta(seconds=1)
    assert_problem(api.http.get("/v1/ownership", headers=_bearer(key)), 401, "unauthenticated")
    ring.clock = lambda: expires - timedelta(seconds=1)
    assert api.http.get("/v1/ownership", headers=_bearer(key)).status_code == 200


@pytest.mark.parametrize(
    ("expires_at", "field"),
    [
        ("2020-01-01T00:00:00Z", "body.expires_at"),  # in the past
        ("2030-01-01T00:00:00", "body.expires_at"),  # no offset
        ("tomorrow", "body.expires_at"),
    ],
)
def test_bad_expiry_is_422_and_creates_nothing(api: Api, expires_at: str, field: str) -> None:
    before = len(api.runtime.keys.entries())
    response = api.post("/v1/keys", {"system": "crm", "expires_at": expires_at}, role="admin")
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert len(api.runtime.keys.entries()) == before


def test_ring_refuses_past_expiry(tmp_path: Path) -> None:
    ring = KeyRing.load(Settings(data_dir=tmp_path))
    with pytest.raises(KeyRingError, match="future"):
        ring.create("x", "crm", ["read"], expires_at=datetime(2020, 1, 1, tzinfo=UTC))


def test_key_creation_is_not_cached(api: Api) -> None:
    created = api.post("/v1/keys", {"system": "crm"}, role="admin")
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"


def test_allow_on_keys_names_every_method(api: Api) -> None:
    response = api.http.put("/v1/keys", headers=api.headers("admin"))
    assert_problem(response, 405, "method-not-allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    one = api.http.get("/v1/keys/crm-client", headers=api.headers("admin"))
    assert_problem(one, 405, "method-not-allowed")
    assert response.headers["allow"]
    assert one.headers["allow"] == "DELETE"
