"""A caller links only its own system's ids to a customer (admin excepted, and recorded).

Regression: a ``crm`` key linked a billing id (``cus_…``) to the wrong customer; billing's
real link then got 409 and billing webhooks would land on the wrong account.
"""

from __future__ import annotations

import httpx

from tests.e2e.conftest import Api, assert_problem
from tests.e2e.test_batch import ndjson, send


def _link(api: Api, cid: str, system: str, external_id: str, role: str) -> httpx.Response:
    return api.post(
        f"/v1/customers/{cid}/link", {"system": system, "external_id": external_id}, role=role
    )


def test_crm_cannot_link_a_billing_id(api: Api) -> None:
    wrong, right = api.customer(), api.customer(legal_name="Other Ltd")
    before = api.total_events()
    refused = _link(api, wrong, "billing", "cus_123", "crm")
    problem = assert_problem(refused, 403, "foreign-id", field="body.system")
    assert "billing" in problem["detail"] and "crm" in problem["detail"]
    assert api.total_events() == before
    # Billing's own, real link still works, and the id finds the right customer.
    linked = _link(api, right, "billing", "cus_123", "billing")
    assert linked.status_code == 200, linked.text
    found = api.get("/v1/lookup/billing/customer/cus_123", role="billing")
    assert found.status_code == 200 and found.json()["id"] == right


def test_each_system_links_its_own_ids(api: Api) -> None:
    cid = api.customer()
    for system, external in (("crm", "001A"), ("erp", "C-77"), ("billing", "cus_9")):
        response = _link(api, cid, system, external, system)
        assert response.status_code == 200, response.text
    for system in ("erp", "billing"):
        assert_problem(_link(api, cid, "crm", "001B", system), 403, "foreign-id")


def test_admin_may_link_any_system_and_is_recorded_as_such(api: Api) -> None:
    cid = api.customer()
    response = _link(api, cid, "billing", "cus_ops", "admin")
    assert response.status_code == 200, response.text
    [event] = [
        e for e in api.get(f"/v1/customers/{cid}/events").json()["events"] if e["version"] == 2
    ]
    assert event["type"] == "CustomerLinked"
    assert event["provenance"]["source_system"] == "api"
    assert event["provenance"]["actor"] == "admin-client"


def test_batch_applies_the_same_check(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    body = ndjson(
        {
            "entity": "customer",
            "command": "link",
            "id": cid,
            "data": {"system": "billing", "external_id": "cus_777"},
        },
        {
            "entity": "customer",
            "command": "link",
            "id": cid,
            "data": {"system": "crm", "external_id": "001Z"},
        },
    )
    result = send(api, body, role="crm").json()
    first, second = result["results"]
    assert first["status"] == 403 and first["error"]["code"] == "foreign-id"
    assert first["error"]["errors"][0]["field"] == "data.system"
    assert second["status"] == 200
    assert api.total_events() == before + 1
    missing = api.get("/v1/lookup/billing/customer/cus_777", role="billing")
    assert_problem(missing, 404, "not-found")
