"""The OpenAPI document a client generator reads, and the per-request trace span."""

from __future__ import annotations

import re
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api.app import create_app
from tests.e2e.conftest import Api, TestClient

PROBLEM = {"$ref": "#/components/schemas/Problem"}


def test_openapi_has_one_operation_per_command(api: Api) -> None:
    response = api.get("/openapi.json", role=None)
    assert response.status_code == 200
    document = response.json()
    operations = {
        op["operationId"]: (path, method, op)
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    }
    for spec in api.runtime.hub.catalogue.all():
        operation_id = f"{spec.entity}s_{spec.name}"
        path, method, op = operations[operation_id]
        assert method == "post"
        collection = f"/v1/{spec.entity}s"
        assert path == (collection if spec.creates else f"{collection}/{{id}}/{spec.name}")
        assert op["tags"] == [f"{spec.entity}s"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert spec.input_model.__name__ in str(body)
        assert op["responses"]["422"]["content"]["application/problem+json"]["schema"] == PROBLEM
        assert "403" in op["responses"]
        headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
        assert "Idempotency-Key" in headers
        assert ("If-Match" in headers) is not spec.creates

    assert len(operations) == len(set(operations))  # operationIds are unique
    for name in (
        "orders_get",
        "orders_events",
        "lookup",
        "ownership_get",
        "batch",
        "conflicts_list",
        "health",
        "event_schemas",
        "keys_create",
    ):
        assert name in operations
    batch = operations["batch"][2]
    assert "application/x-ndjson" in batch["requestBody"]["content"]
    assert "per-line" in batch["description"].lower()
    schemas = document["components"]["schemas"]
    assert {"Problem", "BatchLine", "CommandOutcome"} <= set(schemas)
    assert "HTTPValidationError" not in response.text
    assert {"bearer", "apiKey"} <= set(document["components"]["securitySchemes"])


@pytest.mark.parametrize(("page", "marker"), [("/docs", "swagger"), ("/redoc", "redoc")])
def test_docs_pages_load_only_local_assets(api: Api, page: str, marker: str) -> None:
    """Regression: the pages loaded Swagger UI / ReDoc from a CDN, blank when offline."""
    response = api.get(page, role=None)
    assert response.status_code == 200
    assert marker in response.text.lower()
    references = re.findall(r"""(?:src|href|url)\s*[:=]\s*["']([^"']+)["']""", response.text)
    assert references, response.text
    external = [r for r in references if not r.startswith("/")]
    assert external == []
    assert "https://" not in response.text and "http://" not in response.text
    for reference in references:
        asset = api.get(reference, role=None)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 100, reference


def test_a_span_per_request_with_route_client_and_correlation(api: Api) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(create_app(api.runtime, tracer_provider=provider)) as http:
        created = http.post(
            "/v1/customers",
            json={"legal_name": "Traced"},
            headers={
                **api.headers("crm"),
                "Concord-Correlation-Id": "OPP-7",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            },
        )
        assert created.status_code == 201
        http.get("/v1/customers/not-a-uuid", headers=api.headers("crm"))
    first, second = exporter.get_finished_spans()
    assert first.name == "POST /v1/customers"
    assert first.attributes is not None
    assert first.attributes["http.route"] == "/v1/customers"
    assert first.attributes["concord.client_id"] == "crm-client"
    assert first.attributes["concord.system"] == "crm"
    assert first.attributes["concord.correlation_id"] == "OPP-7"
    assert first.attributes["http.response.status_code"] == 201
    # The caller's trace continues into the hub.
    assert format(first.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert second.name == "GET /v1/customers/{id}"
    assert second.attributes is not None
    assert second.attributes["http.response.status_code"] == 422


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, methods in document["paths"].items()
        for method, op in methods.items()
    ]


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_json_success_response_is_typed(api: Api) -> None:
    """Regression: every 2xx was ``{"type": "string"}`` (the response class was not a
    JSONResponse), so generated clients returned untyped strings."""
    document = api.get("/openapi.json", role=None).json()
    untyped = []
    for path, method, op in _operations(document):
        successes = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert successes, (method, path)
        for code, response in successes.items():
            content = response.get("content", {})
            for media, body in content.items():
                if "json" not in media:
                    continue
                schema = _resolve(document, body.get("schema", {}))
                if schema.get("type") == "string" or not schema:
                    untyped.append(f"{method.upper()} {path} {code} {media}")
                elif schema.get("type") is None and "anyOf" not in schema:
                    untyped.append(f"{method.upper()} {path} {code}: {schema}")
    assert untyped == []


def test_summaries_use_the_right_article(api: Api) -> None:
    document = api.get("/openapi.json", role=None).json()
    summaries = {op["operationId"]: op["summary"] for _, _, op in _operations(document)}
    assert summaries["orders_get"].startswith("Get an order ")
    assert summaries["invoices_get"].startswith("Get an invoice ")
    assert summaries["customers_get"].startswith("Get a customer ")
    assert "of an order," in summaries["orders_events"]
    bad = [
        s
        for s in summaries.values()
        if re.search(r"\ba (?:order|invoice|aggregate|event|api|erp)\b", s, re.IGNORECASE)
        or re.search(r"\ban (?:customer|contract|payment|subscriber)\b", s, re.IGNORECASE)
    ]
    assert bad == []
