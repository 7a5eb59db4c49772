"""``POST /v1/batch``: per-line results; bad lines named by number; good lines commit."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import orjson
import pytest

from tests.e2e.conftest import Api, assert_problem, order_body

NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(*lines: Any) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else orjson.dumps(line) for line in lines)


def send(api: Api, body: bytes, role: str = "admin", **headers: str) -> Any:
    return api.http.post(
        "/v1/batch", content=body, headers=api.headers(role, {**NDJSON, **headers})
    )


def test_batch_reports_bad_lines_and_commits_good_ones(api: Api) -> None:
    customer_id = str(uuid4())
    body = ndjson(
        {
            "entity": "customer",
            "command": "register",
            "id": customer_id,
            "data": {"legal_name": "Batch Co"},
            "provenance": {"source_record_id": "B-1"},
        },
        b'{"entity": "customer", "command": ',  # 2: not JSON
        {"entity": "order", "command": "place", "data": order_body(customer_id, colour="red")},
        {"entity": "order", "command": "teleport", "data": {}},  # 4: unknown command
        b"",  # blank: skipped
        {
            "entity": "order",
            "command": "place",
            "data": order_body(customer_id),
            "idempotency_key": "order-1",
        },  # 6: uses line 1
        {"entity": "order", "command": "place", "data": order_body(customer_id, currency="XYZ")},
    )
    before = api.total_events()
    response = send(api, body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 4)
    by_line = {r["line"]: r for r in result["results"]}
    assert sorted(by_line) == [1, 2, 3, 4, 6, 7]

    assert by_line[1]["status"] == 201
    assert by_line[1]["id"] == customer_id
    assert by_line[1]["version"] == 1
    assert by_line[6]["status"] == 201

    assert by_line[2]["status"] == 400
    assert by_line[2]["error"]["code"] == "malformed-json"
    assert "line 2" in by_line[2]["error"]["detail"]
    assert by_line[2]["error"]["instance"] == "/v1/batch#line=2"

    assert by_line[3]["status"] == 422
    assert [e["field"] for e in by_line[3]["error"]["errors"]] == ["data.colour"]

    assert by_line[4]["status"] == 404
    assert by_line[4]["error"]["code"] == "unknown-command"
    assert "place" in by_line[4]["error"]["detail"]

    assert by_line[7]["status"] == 422
    assert by_line[7]["error"]["code"] == "invalid-value"
    assert by_line[7]["error"]["errors"][0]["field"] == "data.currency"

    # Exactly the two good lines were stored, and they are readable.
    assert api.total_events() == before + 2
    assert api.get(f"/v1/customers/{customer_id}").json()["state"]["legal_name"] == "Batch Co"
    order = api.get(f"/v1/orders/{by_line[6]['id']}").json()
    assert order["state"]["customer_id"] == customer_id
    found = api.get("/v1/lookup/api/customer/B-1")
    assert found.status_code == 200 and found.json()["id"] == customer_id

    # Re-sending the good order line with its key replays it: same id, nothing written.
    replay = send(
        api,
        ndjson(
            {
                "entity": "order",
                "command": "place",
                "data": order_body(customer_id),
                "idempotency_key": "order-1",
            }
        ),
    )
    [line] = replay.json()["results"]
    assert (line["status"], line["id"], line["replayed"]) == (201, by_line[6]["id"], True)
    assert api.total_events() == before + 2


def test_batch_enforces_ownership_per_line(api: Api) -> None:
    cid = api.customer()
    body = ndjson(
        {
            "entity": "customer",
            "command": "change_details",
            "id": cid,
            "data": {"display_name": "ok"},
        },
        {"entity": "customer", "command": "change_details", "id": cid, "data": {"tax_id": "DE1"}},
        {
            "entity": "customer",
            "command": "change_details",
            "id": cid,
            "data": {"display_name": "stale"},
            "expected_version": 1,
        },
    )
    before = len(api.history("customer", cid))
    result = send(api, body, role="crm").json()
    first, second, third = result["results"]
    assert first["status"] == 200 and first["version"] == 2
    assert second["status"] == 403
    assert (second["error"]["field"], second["error"]["owner"]) == ("tax_id", "erp")
    assert second["error"]["errors"][0]["field"] == "data.tax_id"
    assert third["status"] == 412
    assert third["error"]["errors"][0]["field"] == "expected_version"
    assert len(api.history("customer", cid)) == before + 1
    conflicts = api.get("/v1/conflicts").json()["items"]
    assert [c["field"] for c in conflicts] == ["tax_id"]


def test_batch_line_shape_errors(api: Api) -> None:
    body = ndjson(
        {"entity": "customer", "data": {}},  # no command
        {
            "entity": "customer",
            "command": "register",
            "data": {"legal_name": "x"},
            "provenance": {"occurred_at": "soon"},
            "extra": 1,
        },
        [1, 2, 3],
        {"entity": "customer", "command": "change_details", "data": {"display_name": "x"}},
    )
    before = api.total_events()
    result = send(api, body).json()
    assert result["accepted"] == 0
    errors = {r["line"]: r["error"] for r in result["results"]}
    assert [e["field"] for e in errors[1]["errors"]] == ["command"]
    assert {e["field"] for e in errors[2]["errors"]} == {"provenance.occurred_at", "extra"}
    assert errors[3]["status"] == 422
    assert errors[4]["status"] == 404 and errors[4]["errors"][0]["field"] == "id"
    assert api.total_events() == before


def test_batch_needs_ndjson_write_scope_and_content(api: Api) -> None:
    line = ndjson({"entity": "customer", "command": "register", "data": {"legal_name": "x"}})
    wrong_type = api.http.post(
        "/v1/batch",
        content=line,
        headers=api.headers("admin", {"Content-Type": "application/json"}),
    )
    assert_problem(wrong_type, 415, "unsupported-media-type", field="header.Content-Type")
    assert_problem(send(api, line, role="reader"), 403, "forbidden")
    assert_problem(send(api, line, role=None), 401, "unauthenticated")  # type: ignore[arg-type]
    assert_problem(send(api, b"\n\n"), 400, "empty-batch")
    assert api.total_events() == 0


def test_batch_too_many_lines_is_413(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.routes import batch

    monkeypatch.setattr(batch, "MAX_LINES", 3)
    line = {"entity": "customer", "command": "register", "data": {"legal_name": "x"}}
    problem = assert_problem(send(api, ndjson(*[line] * 4)), 413, "payload-too-large")
    assert "3" in problem["detail"]
    assert api.total_events() == 0
    assert send(api, ndjson(*[line] * 3) + b"\n").json()["accepted"] == 3


def test_a_violation_repeated_on_many_lines_is_one_conflict(api: Api) -> None:
    """A migration writing an unowned field on every line records one conflict, naming the
    lines, instead of one row per line."""
    first, second = api.customer(), api.customer()
    lines = [
        {"entity": "customer", "command": "change_details", "id": cid, "data": {"tax_id": tax}}
        for cid, tax in [(first, "DE1"), (first, "DE2"), (first, "DE3"), (second, "DE4")]
    ]
    owned = {"display_name": "Owned"}
    lines.insert(2, {"entity": "customer", "command": "change_details", "id": first, "data": owned})
    before = api.total_events()
    result = send(api, ndjson(*lines), role="crm").json()
    assert [r["status"] for r in result["results"]] == [403, 403, 200, 403, 403]
    conflicts = api.get("/v1/conflicts").json()["items"]
    by_aggregate = {c["aggregate_id"]: c for c in conflicts}
    assert len(conflicts) == 2
    assert (by_aggregate[first]["occurrences"], by_aggregate[first]["lines"]) == (3, [1, 2, 4])
    assert (by_aggregate[second]["occurrences"], by_aggregate[second]["lines"]) == (1, [5])
    assert "tax_id" in by_aggregate[first]["payload"]  # the first line's (personal: withheld)
    assert api.total_events() == before + 1
