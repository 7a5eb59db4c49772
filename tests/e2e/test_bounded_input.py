"""Bounded input: oversized lists and texts, huge decimals, NUL characters and float money
are refused with a 422 naming the field, and nothing is stored; an event NATS could not
carry is refused at commit. Each of these once ended in a 500 or stopped the relay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.bootstrap import open_runtime
from adapters.settings import Settings
from api.app import create_app
from tests.e2e.conftest import ROLES, Api, TestClient, assert_problem, order_body, payment_body
from tests.e2e.test_batch import ndjson, send


def conflict_count(api: Api) -> int:
    return len(api.get("/v1/conflicts", params={"limit": 1000}).json()["items"])


def test_eight_megabyte_reasons_list_is_refused(api: Api) -> None:
    order = api.order(api.customer())
    before = api.total_events()
    many = api.post(f"/v1/orders/{order}/reject", {"reasons": ["x" * 100] * 80_000}, role="erp")
    assert_problem(many, 422, "validation-failed", field="body.reasons")
    long = api.post(f"/v1/orders/{order}/reject", {"reasons": ["x" * 1001]}, role="erp")
    assert_problem(long, 422, "validation-failed", field="body.reasons.0")
    assert api.total_events() == before
    assert api.post(f"/v1/orders/{order}/reject", {"reasons": ["bad"]}, role="erp").is_success


@pytest.mark.parametrize(
    "amount", ["1e28", 1e28, 10**28, "1" * 16, "1E+2", "12345678901234567890.5"]
)
def test_huge_or_exponent_amounts_are_422(api: Api, amount: Any) -> None:
    cid = api.customer()
    before = api.total_events()
    body = payment_body(cid, "0")
    body["amount"]["amount"] = amount
    response = api.post("/v1/payments", body, role="billing")
    assert_problem(response, 422, "invalid-value", field="body.amount.amount")
    assert response.headers.get("connection") != "close"
    assert api.total_events() == before


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ({"quantity": "1e28"}, "body.lines.0.quantity"),
        ({"quantity": 10**28}, "body.lines.0.quantity"),
        ({"unit_price": "1e28"}, "body.lines.0.unit_price"),
        # Each within bounds, but their product overflowed the decimal context (500).
        ({"quantity": "999999999999", "unit_price": "999999999999999"}, "body.lines.0.quantity"),
    ],
)
def test_huge_quantities_and_line_totals_are_422(
    api: Api, line: dict[str, Any], field: str
) -> None:
    cid = api.customer()
    before = api.total_events()
    body = order_body(cid)
    body["lines"][0].update(line)
    response = api.post("/v1/orders", body)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert api.total_events() == before


def test_nul_characters_are_refused_in_every_text(api: Api) -> None:
    cid = api.customer()
    before, conflicts = api.total_events(), conflict_count(api)
    named = api.post("/v1/customers", {"legal_name": "Acme\u0000 GmbH"})
    problem = assert_problem(named, 422, "validation-failed", field="body.legal_name")
    assert "NUL" in problem["errors"][0]["message"]
    # A field crm does not own, with a NUL: refused as invalid before ownership is judged.
    not_owned = api.post(f"/v1/customers/{cid}/change_details", {"tax_id": "DE\u00001"})
    assert_problem(not_owned, 422, "validation-failed", field="body.tax_id")
    body = order_body(cid)
    body["lines"][0]["sku"] = "\u0000"
    assert_problem(api.post("/v1/orders", body), 422, "validation-failed", field="body.lines.0.sku")
    assert api.total_events() == before
    assert conflict_count(api) == conflicts


@pytest.mark.parametrize("number", [0.1 + 0.2, 19.99, 0.1])
def test_money_as_a_json_number_with_a_fraction_is_refused(api: Api, number: float) -> None:
    cid = api.customer()
    before = api.total_events()
    body = payment_body(cid, "0")
    body["amount"]["amount"] = number
    problem = assert_problem(
        api.post("/v1/payments", body, role="billing"),
        422,
        "invalid-value",
        field="body.amount.amount",
    )
    assert "JSON strings" in problem["detail"]
    assert api.total_events() == before


def test_money_as_a_string_or_integer_is_exact(api: Api) -> None:
    cid = api.customer()
    for amount, expected in [("19.99", "19.99"), ("0.30", "0.30"), (20, "20.00")]:
        body = payment_body(cid, "0")
        body["amount"]["amount"] = amount
        response = api.post("/v1/payments", body, role="billing")
        assert response.status_code == 201, response.text
        assert response.json()["state"]["amount"]["amount"] == expected


def test_batch_refuses_bad_numbers_and_nul_per_line(api: Api) -> None:
    cid = api.customer()
    huge = payment_body(cid, "0")
    huge["amount"]["amount"] = "1e26"
    huge_number = payment_body(cid, "0")
    huge_number["amount"]["amount"] = 1e26
    float_money = payment_body(cid, "0")
    float_money["amount"]["amount"] = 0.1 + 0.2
    body = ndjson(
        {"entity": "payment", "command": "receive", "data": payment_body(cid, "10.00")},
        {"entity": "payment", "command": "receive", "data": huge},
        {"entity": "payment", "command": "receive", "data": huge_number},
        {"entity": "customer", "command": "register", "data": {"legal_name": "N\u0000L"}},
        {"entity": "payment", "command": "receive", "data": float_money},
        {
            "entity": "customer",
            "command": "register",
            "data": {"legal_name": "Fine"},
            "provenance": {"source_record_id": "A\u0000"},
        },
        {"entity": "payment", "command": "receive", "data": payment_body(cid, "11.00")},
    )
    before = api.total_events()
    response = send(api, body, role="billing")
    assert response.status_code == 200, response.text
    results = {r["line"]: r for r in response.json()["results"]}
    assert results[1]["status"] == 201 and results[7]["status"] == 201
    expected = {
        2: "data.amount.amount",
        3: "data.amount.amount",
        4: "data.legal_name",
        5: "data.amount.amount",
        6: "provenance.source_record_id",
    }
    for line, field in expected.items():
        error = results[line]["error"]
        assert results[line]["status"] == 422, results[line]
        assert field in [e["field"] for e in error["errors"]], error
        assert "psycopg" not in orjson.dumps(error).decode()
    assert api.total_events() == before + 2


def test_every_request_text_and_list_is_bounded_in_openapi(api: Api) -> None:
    """What the server enforces, the OpenAPI document states: maxLength, maxItems, patterns."""
    document = api.http.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    unbounded: list[str] = []

    def walk(where: str, schema: dict[str, Any]) -> None:
        if "$ref" in schema:
            return  # checked where it is defined
        for key in ("anyOf", "oneOf", "allOf"):
            for index, part in enumerate(schema.get(key, [])):
                walk(f"{where}[{index}]", part)
        kind = schema.get("type")
        if kind == "string" and not ({"maxLength", "enum", "format", "const"} & set(schema)):
            unbounded.append(where)
        if kind == "string" and "maxLength" in schema and "pattern" not in schema:
            unbounded.append(where + " (no NUL pattern)")
        if kind == "array":
            if "maxItems" not in schema:
                unbounded.append(where)
            walk(where + "[]", schema.get("items", {}))
        for name, prop in schema.get("properties", {}).items():
            walk(f"{where}.{name}", prop)

    commands = {s.input_model.__name__ for s in api.runtime.hub.catalogue.all()}
    referenced: set[str] = set()

    def refs(schema: Any) -> None:
        if isinstance(schema, dict):
            ref = schema.get("$ref", "")
            if ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in referenced:
                    referenced.add(name)
                    refs(schemas[name])
            for value in schema.values():
                refs(value)
        elif isinstance(schema, list):
            for value in schema:
                refs(value)

    for name in commands | {"BatchLine"}:
        referenced.add(name)
        refs(schemas[name])
    for name in sorted(referenced):
        walk(name, schemas[name])
    assert not unbounded, unbounded
    reject = schemas["RejectOrder"]["properties"]["reasons"]
    assert reject["maxItems"] == 50 and reject["items"]["maxLength"] == 1000
    money = schemas["Money"]
    # Stated as a decimal string only (never "number", nor "integer", which admits 12.0) ...
    assert money["properties"]["amount"]["type"] == "string"
    # ... with the digits after the point per currency exponent.
    by_currency = {
        code: branch["properties"]["amount"]["pattern"]
        for branch in money["anyOf"]
        for code in branch["properties"]["currency"]["enum"]
    }
    assert r"\." not in by_currency["JPY"] and r"\d{1,2}" in by_currency["USD"]
    assert r"\d{1,3}" in by_currency["KWD"]


def test_event_larger_than_the_stream_accepts_is_refused_at_commit(
    database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url,
        schema_name=pg_schema,
        data_dir=tmp_path,
        max_event_bytes=8192,
    )
    runtime = open_runtime(settings)
    try:
        keys = {
            role: runtime.keys.create(f"{role}-client", system, scopes)
            for role, (system, scopes) in ROLES.items()
        }
        with TestClient(create_app(runtime)) as http:
            api = Api(http=http, runtime=runtime, keys=keys)
            order = api.order(api.customer())
            before = api.total_events()
            reasons = ["r" * 1000] * 10  # within the input bounds, over the event limit
            response = api.post(f"/v1/orders/{order}/reject", {"reasons": reasons}, role="erp")
            problem = assert_problem(response, 413, "event-too-large", field="body.reasons")
            assert "8,192" in problem["detail"]
            line = {"entity": "order", "command": "reject", "id": order}
            batch = send(api, ndjson({**line, "data": {"reasons": reasons}}), role="erp")
            [result] = batch.json()["results"]
            assert result["status"] == 413
            assert result["error"]["errors"][0]["field"] == "data.reasons"
            assert api.total_events() == before
            small = api.post(f"/v1/orders/{order}/reject", {"reasons": ["no"]}, role="erp")
            assert small.status_code == 200, small.text
    finally:
        runtime.close()


def test_what_the_server_refuses_the_schema_refuses_too(api: Api) -> None:
    """Each value here was schema-valid and then refused with 422 (the fuzzer found them):
    the document now states the rule, so a client's validator refuses it first."""
    import jsonschema

    document = api.http.get("/openapi.json").json()

    def valid(name: str, value: Any) -> bool:
        schema = {"$ref": f"#/components/schemas/{name}", **document}
        return jsonschema.Draft202012Validator(schema).is_valid(value)

    customer = {"legal_name": "Acme GmbH"}
    for refused in (
        {"legal_name": "   "},
        {**customer, "display_name": "\u3000"},
        {**customer, "web_domain": "fastapi_offline"},
        {**customer, "web_domain": "www.com"},
        {**customer, "tax_id": " .-"},
        {**customer, "currency": "XYZ"},
    ):
        response = api.post("/v1/customers", refused, role="admin")
        assert response.status_code == 422, (refused, response.text)
        assert not valid("RegisterCustomer", refused), refused
    assert valid("RegisterCustomer", {**customer, "web_domain": "acme.example"})
    assert not valid("ChangeCustomerDetails", {})
    assert not valid("ChangeCustomerDetails", {"legal_name": None})
    assert not valid("Money", {"currency": "JPY", "amount": "1.5"})
    assert not valid("Money", {"currency": "USD", "amount": 12.0})
    assert valid("Money", {"currency": "KWD", "amount": "1.125"})
    assert not valid("ReplayBody", {})
    assert not valid("ReplayBody", {"from_position": 1, "since": "2026-01-01T00:00:00Z"})
    assert valid("ReplayBody", {"from_position": None, "since": "2026-01-01T00:00:00Z"})
