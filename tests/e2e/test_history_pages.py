"""``/events`` is paginated (``after_version``, ``limit``, ``next``) and ``?as_of=`` starts
from the nearest snapshot at or before that instant, with the same result as a full replay."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from tests.e2e.conftest import Api, assert_problem
from tests.e2e.test_batch import ndjson, send


def grow(api: Api, customer: str, changes: int) -> None:
    """``changes`` more events on the customer, through one batch request."""
    lines = [
        {
            "entity": "customer",
            "command": "change_details",
            "id": customer,
            "data": {"display_name": f"Name {n}"},
        }
        for n in range(changes)
    ]
    response = send(api, ndjson(*lines), role="crm")
    assert response.json()["accepted"] == changes, response.text


def test_history_pages_follow_next_to_the_end(api: Api) -> None:
    cid = api.customer()
    grow(api, cid, 4)
    versions: list[int] = []
    url: str | None = f"/v1/customers/{cid}/events?limit=2"
    pages = 0
    while url is not None:
        response = api.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        versions += [e["version"] for e in body["events"]]
        if body["next"] is not None:
            assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
        else:
            assert "link" not in response.headers
        url = body["next"]
        pages += 1
    assert versions == [1, 2, 3, 4, 5]
    assert pages == 3
    past_the_end = api.get(f"/v1/customers/{cid}/events?after_version=5").json()
    assert (past_the_end["events"], past_the_end["next"]) == ([], None)


def test_history_default_page_is_100(api: Api) -> None:
    cid = api.customer()
    grow(api, cid, 100)
    first = api.get(f"/v1/customers/{cid}/events").json()
    assert len(first["events"]) == 100
    assert first["next"] == f"/v1/customers/{cid}/events?after_version=100&limit=100"
    rest = api.get(first["next"]).json()
    assert [e["version"] for e in rest["events"]] == [101]
    assert rest["next"] is None


def test_bad_page_parameters_are_422(api: Api) -> None:
    cid = api.customer()
    for query, field in [
        ("limit=0", "query.limit"),
        ("limit=1001", "query.limit"),
        ("limit=ten", "query.limit"),
        ("after_version=-1", "query.after_version"),
        ("after_version=99999999999", "query.after_version"),
    ]:
        response = api.get(f"/v1/customers/{cid}/events?{query}")
        assert_problem(response, 422, "validation-failed", field=field)
    ghost = "00000000-0000-4000-8000-000000000009"
    assert_problem(
        api.get(f"/v1/customers/{ghost}/events?after_version=3"), 404, "not-found", field="path.id"
    )


def as_of(api: Api, cid: str, at: str) -> Any:
    response = api.get(f"/v1/customers/{cid}", params={"as_of": at})
    assert response.status_code == 200, response.text
    return response.json()


def test_as_of_starts_from_the_nearest_snapshot(api: Api, database_url: str) -> None:
    cid = api.customer()
    grow(api, cid, 99)  # customers are snapshotted every 100 events: one at version 100
    grow(api, cid, 30)
    snapshots = api.runtime.stores["customer"].snapshots
    assert snapshots is not None
    assert [s.originator_version for s in snapshots.get(UUID(cid))] == [100]
    events = api.history("customer", cid)
    stamps = {e.originator_version: e.timestamp.isoformat() for e in events}
    instants = [stamps[50], stamps[100], stamps[101], stamps[130]]
    full = {at: as_of(api, cid, at) for at in instants}  # replayed while history is whole
    assert full[stamps[100]]["version"] == 100 and full[stamps[130]]["version"] == 130

    # Make history before the snapshot unreadable: only a snapshot can answer now.
    schema = api.runtime.settings.schema_name
    with psycopg.connect(database_url, autocommit=True) as conn:
        deleted = conn.execute(
            sql.SQL(
                "DELETE FROM {}.customers_events WHERE originator_id = %s "
                "AND originator_version < 100"
            ).format(sql.Identifier(schema)),
            (cid,),
        ).rowcount
    assert deleted == 99
    # (A full replay would now start at version 100 and fail: "cannot start an aggregate".)
    for at in instants[1:]:
        assert as_of(api, cid, at) == full[at]
