"""Bad input gets an exact status and problem body, and never writes an event."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Api, assert_problem, order_body, payment_body


def test_wrong_types_name_every_path(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    body = order_body(cid, term_months="twelve")
    body["lines"][0]["quantity"] = "lots"
    body["lines"][1]["unit_price"] = {"amount": 1}
    response = api.post("/v1/orders", body)
    problem = assert_problem(response, 422, "validation-failed")
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"body.term_months", "body.lines.0.quantity", "body.lines.1.unit_price"}
    assert problem["detail"].startswith("body.")
    assert api.total_events() == before


def test_unknown_fields_are_refused_not_dropped(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    body = order_body(cid, discount="10%")
    body["lines"][0]["colour"] = "red"
    problem = assert_problem(api.post("/v1/orders", body), 422, "validation-failed")
    errors = {e["field"]: e["type"] for e in problem["errors"]}
    assert errors == {"body.discount": "extra_forbidden", "body.lines.0.colour": "extra_forbidden"}
    assert api.total_events() == before


def test_missing_body_and_missing_fields(api: Api) -> None:
    before = api.total_events()
    assert_problem(api.post("/v1/customers"), 422, "validation-failed", field="body")
    problem = assert_problem(
        api.post("/v1/customers", {}), 422, "validation-failed", field="body.legal_name"
    )
    assert problem["errors"][0]["type"] == "missing"
    assert api.total_events() == before


def test_unknown_currency(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    problem = assert_problem(
        api.post("/v1/orders", order_body(cid, currency="XYZ")),
        422,
        "invalid-value",
        field="body.currency",
    )
    assert "XYZ" in problem["detail"]
    assert api.total_events() == before


def test_unknown_currency_inside_money(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    response = api.post("/v1/payments", payment_body(cid, "10.00", currency="XYZ"), role="billing")
    problem = assert_problem(response, 422, "invalid-value", field="body.amount.currency")
    assert "XYZ" in problem["detail"]
    assert api.total_events() == before


def test_more_decimals_than_currency_allows_inside_money(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    response = api.post("/v1/payments", payment_body(cid, "10.005", currency="USD"), role="billing")
    problem = assert_problem(response, 422, "invalid-value", field="body.amount.amount")
    assert "USD" in problem["detail"]
    assert api.total_events() == before


def test_more_decimals_than_currency_allows(api: Api) -> None:
    cid = api.customer()
    before = api.total_events()
    body = order_body(cid, currency="JPY")
    body["lines"][0]["unit_price"] = "10.50"  # JPY has no minor unit
    problem = assert_problem(
        api.post("/v1/orders", body), 422, "invalid-value", field="body.lines.0.unit_price"
    )
    assert "JPY" in problem["detail"]
    assert api.total_events() == before


def test_malformed_json_is_400(api: Api) -> None:
    before = api.total_events()
    response = api.post(
        "/v1/customers", content=b'{"legal_name": ', headers={"Content-Type": "application/json"}
    )
    problem = assert_problem(response, 400, "malformed-json", field="body")
    assert "not valid JSON" in problem["detail"]
    assert api.total_events() == before


def test_non_json_content_type_is_415(api: Api) -> None:
    before = api.total_events()
    response = api.post(
        "/v1/customers", content=b'{"legal_name": "Acme"}', headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported-media-type", field="header.Content-Type")
    assert api.total_events() == before


def test_unknown_aggregate_is_404_bad_uuid_is_422(api: Api) -> None:
    before = api.total_events()
    ghost = "00000000-0000-4000-8000-000000000001"
    problem = assert_problem(
        api.post(f"/v1/orders/{ghost}/accept", {"erp_order_number": "1"}, role="erp"),
        404,
        "not-found",
        field="path.id",
    )
    assert ghost in problem["detail"]
    assert_problem(
        api.post("/v1/orders/not-a-uuid/accept", {"erp_order_number": "1"}, role="erp"),
        422,
        "validation-failed",
        field="path.id",
    )
    assert_problem(api.get(f"/v1/orders/{ghost}"), 404, "not-found", field="path.id")
    assert_problem(api.get(f"/v1/orders/{ghost}/events"), 404, "not-found", field="path.id")
    assert api.total_events() == before


def test_referenced_aggregate_must_exist(api: Api) -> None:
    before = api.total_events()
    ghost = "00000000-0000-4000-8000-000000000002"
    problem = assert_problem(
        api.post("/v1/orders", order_body(ghost)), 404, "not-found", field="body.customer_id"
    )
    assert ghost in problem["detail"]
    assert api.total_events() == before


def test_bad_provenance_header_names_it(api: Api) -> None:
    before = api.total_events()
    response = api.post(
        "/v1/customers", {"legal_name": "Acme"}, headers={"Concord-Occurred-At": "yesterday"}
    )
    assert_problem(response, 422, "validation-failed", field="header.Concord-Occurred-At")
    naive = api.post(
        "/v1/customers",
        {"legal_name": "Acme"},
        headers={"Concord-Occurred-At": "2026-01-01T10:00:00"},
    )
    assert_problem(naive, 422, "validation-failed", field="header.Concord-Occurred-At")
    too_long = api.post(
        "/v1/customers", {"legal_name": "Acme"}, headers={"Idempotency-Key": "k" * 256}
    )
    assert_problem(too_long, 422, "validation-failed", field="header.Idempotency-Key")
    assert api.total_events() == before


def test_unknown_route_and_wrong_method_are_problems(api: Api) -> None:
    missing = api.get("/v1/nothing-here")
    problem = assert_problem(missing, 404, "not-found")
    assert "/v1/nothing-here" in problem["detail"]
    wrong = api.http.delete("/v1/customers", headers=api.headers("admin"))
    assert_problem(wrong, 405, "method-not-allowed")
    assert "POST" in wrong.headers["allow"]


def test_internal_error_is_500_without_internals(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.app import create_app
    from tests.e2e.conftest import TestClient

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("connection to db password=hunter2 failed")

    monkeypatch.setattr(api.runtime.hub, "get", explode)
    with TestClient(create_app(api.runtime), raise_server_exceptions=False) as http:
        cid = "00000000-0000-4000-8000-000000000003"
        response = http.get(f"/v1/customers/{cid}", headers=api.headers("admin"))
    problem = assert_problem(response, 500, "internal-error")
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert problem["reference"] in problem["detail"]
    assert response.headers["connection"] == "close"  # the client must not reuse it


def test_oversized_command_body_is_413(api: Api) -> None:
    from api.routes.commands import MAX_COMMAND_BYTES

    before = api.total_events()
    huge = b'{"legal_name": "' + b"x" * MAX_COMMAND_BYTES + b'"}'
    response = api.post("/v1/customers", content=huge, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "payload-too-large")

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"legal_name": "'
        for _ in range(9):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    streamed = api.post(
        "/v1/customers", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_problem(streamed, 413, "payload-too-large")
    assert api.total_events() == before


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("/v1/conflicts?status=op%00en", "query"),
        ("/v1/dead-letters?subscriber=e%00rp", "query"),
        ("/v1/lookup/crm/customer/a%00b", "path"),
    ],
)
def test_nul_in_the_url_is_a_422_not_a_500(api: Api, url: str, where: str) -> None:
    """Found by the fuzzer: a NUL in a filter reached PostgreSQL, which refused it (500)."""
    response = api.get(url, role="admin")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == where
