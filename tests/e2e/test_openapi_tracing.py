"""The OpenAPI document a client generator reads, and the per-request trace span."""

from __future__ import annotations

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


def test_docs_page_is_served(api: Api) -> None:
    response = api.get("/docs", role=None)
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


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
