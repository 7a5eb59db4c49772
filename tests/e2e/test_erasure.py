"""Erasure over HTTP: after ``erase`` the API's read paths (state, ``?as_of=``, ``/events``,
an idempotent replay of the original create, ``/v1/conflicts``) show ``[erased]`` or nothing
of the person, while before it they answer as they always did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.e2e.conftest import Api, assert_problem
from tests.integration.test_erasure import MOVED, PERSON, clear_values

CRM_FIELDS = {k: v for k, v in PERSON.items() if k != "tax_id"}  # tax_id belongs to the ERP


def _setup(api: Api) -> tuple[str, dict[str, Any]]:
    key = {"Idempotency-Key": "create-ada"}
    created = api.post("/v1/customers", CRM_FIELDS, headers=key)
    assert created.status_code == 201, created.text
    cid = str(created.json()["id"])
    erp = api.post(f"/v1/customers/{cid}/change_details", {"tax_id": "GB123456789"}, role="erp")
    assert erp.status_code == 200, erp.text
    moved = api.post(f"/v1/customers/{cid}/change_details", {"billing_address": MOVED})
    assert moved.status_code == 200, moved.text
    refused = api.post(f"/v1/customers/{cid}/change_details", {"tax_id": "GB123456789"})
    assert refused.status_code == 403, refused.text  # recorded as a conflict
    return cid, created.json()


def test_reads_before_and_after_erasure(api: Api) -> None:
    cid, created = _setup(api)
    moment = datetime.now(UTC).isoformat()
    state = api.get(f"/v1/customers/{cid}").json()["state"]
    assert state["display_name"] == "Ada Lovelace" and state["tax_id"] == "GB123456789"
    as_of = api.get(f"/v1/customers/{cid}", params={"as_of": moment}).json()
    assert as_of["state"]["billing_address"]["line2"] == "Flat 2"
    events = api.get(f"/v1/customers/{cid}/events").json()["events"]
    assert events[0]["data"]["web_domain"] == "lovelace.example"
    replay = api.post("/v1/customers", CRM_FIELDS, headers={"Idempotency-Key": "create-ada"})
    assert replay.status_code == 201 and replay.json() == created

    erased = api.post(f"/v1/customers/{cid}/erase", {}, role="crm")
    assert erased.status_code == 200, erased.text

    reads = {
        "state": api.get(f"/v1/customers/{cid}"),
        "as_of": api.get(f"/v1/customers/{cid}", params={"as_of": moment}),
        "events": api.get(f"/v1/customers/{cid}/events"),
        "replay": api.post("/v1/customers", CRM_FIELDS, headers={"Idempotency-Key": "create-ada"}),
        "conflicts": api.get("/v1/conflicts"),
    }
    for name, response in reads.items():
        assert response.status_code in (200, 201), (name, response.text)
        assert clear_values(response.text) == [], name
    assert reads["as_of"].json()["state"]["legal_name"] == "[erased]"
    assert reads["events"].json()["events"][0]["data"]["display_name"] == "[erased]"
    assert reads["replay"].json()["state"]["web_domain"] == "[erased]"
    assert reads["state"].json()["state"]["erased"] is True
    assert reads["events"].json()["events"][0]["aggregate_id"] == cid  # ids stay
    (conflict,) = reads["conflicts"].json()["items"]
    assert conflict["field"] == "tax_id" and conflict["payload"]["tax_id"] == "[withheld]"


def test_a_personal_value_that_looks_sealed_or_erased_is_refused(api: Api) -> None:
    """The sealer leaves a value starting with ``pii:v1:`` (already sealed) or reading
    ``[erased]`` as it is, so such an input would be stored in clear in the event, on the
    stream and after erasure; it is refused (422 naming the field), nothing stored."""
    before = api.total_events()
    for body in (
        {"legal_name": "pii:v1:Ada Lovelace"},
        {"legal_name": "Ada", "display_name": "[erased]"},
    ):
        refused = api.post("/v1/customers", body)
        field = "legal_name" if body["legal_name"] != "Ada" else "display_name"
        assert_problem(refused, 422, "invalid-value", field=f"body.{field}")
    cid = api.customer()
    after_create = api.total_events()
    assert after_create == before + 1
    change = api.post(f"/v1/customers/{cid}/change_details", {"web_domain": "pii:v1:ada.dev"})
    assert_problem(change, 422, "invalid-value", field="body.web_domain")
    assert api.total_events() == after_create
