"""Key minting: a key never mints a key with more rights than its own; client ids are unique.

Regressions: an ``admin``-system key with only ``read`` created a key with every scope; a
``crm`` key holding the admin scope created an ``admin`` key that then wrote an ERP-owned
field; a ``crm`` key named ``admin`` shared admin's idempotency namespace and actor.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Api, assert_problem


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _key_count(api: Api) -> int:
    return len(api.runtime.keys.entries())


def _mint(api: Api, key: str, body: dict[str, Any]) -> Any:
    return api.http.post("/v1/keys", json=body, headers=_bearer(key))


def test_admin_system_key_without_admin_scope_cannot_use_admin_endpoints(api: Api) -> None:
    reader = api.runtime.keys.create("ops-reader", "admin", ["read"])
    before = _key_count(api)
    minted = _mint(api, reader, {"system": "crm", "scopes": ["read", "write", "admin"]})
    assert_problem(minted, 403, "forbidden")
    assert_problem(api.http.get("/v1/keys", headers=_bearer(reader)), 403, "forbidden")
    assert_problem(api.http.get("/v1/conflicts", headers=_bearer(reader)), 403, "forbidden")
    assert _key_count(api) == before


def test_key_cannot_mint_scopes_it_lacks(api: Api) -> None:
    operator = api.runtime.keys.create("ops-limited", "admin", ["read", "admin"])
    before = _key_count(api)
    minted = _mint(api, operator, {"system": "crm", "scopes": ["read", "write"]})
    problem = assert_problem(minted, 403, "exceeds-own-rights", field="body.scopes")
    assert "write" in problem["detail"]
    assert _key_count(api) == before
    # Within its own rights it may mint (any system: it is an admin-system key).
    allowed = _mint(api, operator, {"system": "erp", "scopes": ["read"]})
    assert allowed.status_code == 201, allowed.text
    assert allowed.json()["scopes"] == ["read"]


def test_non_admin_system_key_cannot_mint_for_another_system(api: Api) -> None:
    crm_admin = api.runtime.keys.create("crm-ops", "crm", ["read", "write", "admin"])
    before_keys, before_events = _key_count(api), api.total_events()
    for system in ("admin", "erp", "billing"):
        minted = _mint(api, crm_admin, {"system": system, "scopes": ["read", "write"]})
        assert_problem(minted, 403, "exceeds-own-rights", field="body.system")
    assert _key_count(api) == before_keys
    # The escalation path of the report: no admin key, so no ERP-owned field written.
    cid = api.customer()
    refused = api.http.post(
        f"/v1/customers/{cid}/assign_number",
        json={"customer_number": "C-1"},
        headers=_bearer(crm_admin),
    )
    assert_problem(refused, 403, "field-not-owned")
    assert api.total_events() == before_events + 1  # only the customer registered above
    # Its own system, its own scopes or fewer: fine.
    own = _mint(api, crm_admin, {"system": "crm", "scopes": ["read"]})
    assert own.status_code == 201, own.text
    assert own.json()["system"] == "crm"


def test_default_scopes_are_capped_by_the_minting_key(api: Api) -> None:
    crm_reader_admin = api.runtime.keys.create("crm-auditor", "crm", ["read", "admin"])
    minted = _mint(api, crm_reader_admin, {"system": "crm"})  # default read,write
    assert_problem(minted, 403, "exceeds-own-rights", field="body.scopes")


@pytest.mark.parametrize("taken", ["admin-client", "crm-client"])
def test_duplicate_client_id_is_409_and_creates_nothing(api: Api, taken: str) -> None:
    before = _key_count(api)
    response = api.post("/v1/keys", {"system": "crm", "client_id": taken}, role="admin")
    problem = assert_problem(response, 409, "client-id-taken", field="body.client_id")
    assert taken in problem["detail"]
    assert _key_count(api) == before


def test_duplicate_client_id_refused_by_the_ring(api: Api) -> None:
    from adapters.keys import DuplicateClient

    with pytest.raises(DuplicateClient, match="admin-client"):
        api.runtime.keys.create("admin-client", "crm", ["read"])


def test_duplicate_client_id_of_a_configured_key_is_refused(
    database_url: str, pg_schema: str, tmp_path: Any
) -> None:
    from adapters.keys import DuplicateClient, KeyRing, hash_key
    from adapters.settings import Settings

    settings = Settings(
        database_url=database_url,
        schema_name=pg_schema,
        data_dir=tmp_path,
        api_keys=f"admin:admin:read+write+admin:{hash_key('cnc_x')}",
    )
    ring = KeyRing.load(settings)
    with pytest.raises(DuplicateClient):
        ring.create("admin", "crm", ["read", "write"])
