"""Personal data is readable only by clients whose system needs it (``personal_data`` policy).

Customer state (current and ``as_of``), history/events, lookups and command answers show a
personal field as ``redacted`` to a system the policy does not list; admin keys see it all.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tests.e2e.conftest import Api

REDACTED = "redacted"


def _customer(api: Api) -> str:
    cid = api.customer(
        web_domain="acme.example",
        billing_address={"line1": "Hauptstr. 1", "city": "Berlin", "country": "DE"},
    )
    taxed = api.post(f"/v1/customers/{cid}/change_details", {"tax_id": "DE123"}, role="erp")
    assert taxed.status_code == 200, taxed.text
    linked = api.post(
        f"/v1/customers/{cid}/link", {"system": "billing", "external_id": "cus_1"}, role="billing"
    )
    assert linked.status_code == 200, linked.text
    return cid


def _all_values(value: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a JSON document."""
    found: list[Any] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                found.append(v)
            found += _all_values(v, key)
    elif isinstance(value, list):
        for v in value:
            found += _all_values(v, key)
    return found


def test_policy_is_published_with_the_ownership_policy(api: Api) -> None:
    policy = api.get("/v1/ownership", role="crm").json()
    readers = policy["personal_data"]["customer"]
    assert readers["tax_id"] == ["erp", "billing"]
    assert readers["web_domain"] == ["crm"]


def test_state_hides_fields_the_callers_system_may_not_read(api: Api) -> None:
    cid = _customer(api)
    crm = api.get(f"/v1/customers/{cid}", role="crm").json()["state"]
    assert crm["tax_id"] == REDACTED
    assert crm["web_domain"] == "acme.example"
    assert crm["legal_name"] == "Acme GmbH"
    erp = api.get(f"/v1/customers/{cid}", role="erp").json()["state"]
    assert erp["tax_id"] == "DE123"
    assert erp["web_domain"] == REDACTED
    admin = api.get(f"/v1/customers/{cid}", role="admin").json()["state"]
    assert (admin["tax_id"], admin["web_domain"]) == ("DE123", "acme.example")
    # Non-personal fields are never touched.
    assert erp["currency"] is None and erp["status"] == "active"


def test_as_of_history_and_lookup_are_redacted_too(api: Api) -> None:
    cid = _customer(api)
    as_of = api.get(
        f"/v1/customers/{cid}", role="crm", params={"as_of": "2999-01-01T00:00:00Z"}
    ).json()
    assert as_of["state"]["tax_id"] == REDACTED

    history = api.get(f"/v1/customers/{cid}/events", role="crm").json()
    assert set(_all_values(history, "tax_id")) <= {REDACTED, None}
    assert "DE123" not in str(history)
    assert "acme.example" in str(history)
    erp_history = api.get(f"/v1/customers/{cid}/events", role="erp").json()
    assert "DE123" in str(erp_history) and "acme.example" not in str(erp_history)

    found = api.get("/v1/lookup/billing/customer/cus_1", role="crm").json()
    assert found["aggregate"]["state"]["tax_id"] == REDACTED
    assert found["id"] == cid


def test_command_answers_are_redacted(api: Api) -> None:
    cid = _customer(api)
    answer = api.post(f"/v1/customers/{cid}/change_status", {"status": "on_hold"}, role="erp")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"]["web_domain"] == REDACTED
    assert answer.json()["state"]["tax_id"] == "DE123"
    # What the erp wrote itself it may read; what the crm wrote and erp may not, it may not.
    changed = api.post(
        f"/v1/customers/{cid}/change_details", {"web_domain": "acme.test"}, role="crm"
    )
    assert changed.status_code == 200
    events = changed.json()["events"]
    assert "acme.test" in str(events)
    assert "DE123" not in str(changed.json())


def test_redaction_leaves_the_store_untouched(api: Api) -> None:
    cid = _customer(api)
    api.get(f"/v1/customers/{cid}", role="crm")
    stored = api.runtime.hub.get("customer", UUID(cid))
    assert stored["state"]["tax_id"] == "DE123"
