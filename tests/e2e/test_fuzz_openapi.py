"""The OpenAPI document is the contract: a property-based fuzzer (schemathesis) runs every
operation, ``/v1/batch`` included, against the real hub (PostgreSQL and NATS).

Deterministic (``derandomize``, no example database) and bounded (a few examples per
operation: a few hundred cases in all), so CI is repeatable and this takes well under a
minute on two cores. Every case is sent with an admin key so it reaches the operation's own
rules. For a deeper local run: ``CONCORD_FUZZ_EXAMPLES=200 pytest tests/e2e/test_fuzz_openapi.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from adapters.bootstrap import Runtime, open_runtime
from adapters.settings import Settings
from api.app import create_app

EXAMPLES = int(os.environ.get("CONCORD_FUZZ_EXAMPLES", "8"))

#: Refusals no JSON Schema can rule out, because they depend on what the hub already holds
#: or on its clock, as ``(code, field)``; each is stated in the operation's document (the
#: header's, parameter's or field's description) and its status is a documented response:
#: a reused Idempotency-Key with another body, a cursor the API did not hand out, a source
#: time ahead of the hub's clock, a key expiry that is already past, a product mapping
#: without a charge type for a SKU the hub does not know yet; and one relation between two
#: parameters that JSON Schema cannot state: a report window whose ``from`` is after its
#: ``to`` (for ``/v1/slas``, ``to`` defaults to the clock's month).
STATE_DEPENDENT = {
    ("charge-type-required", "body.charge_type"),
    ("idempotency-key-reused", "header.Idempotency-Key"),
    ("invalid-cursor", "query.cursor"),
    ("invalid-window", "query.from"),
    ("invalid-value", "occurred_at"),
    ("invalid-key-request", "body.expires_at"),
}


@schemathesis.check
def schema_valid_is_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """A request the schema allows is not refused as bad input (400/422), unless for a
    reason in :data:`STATE_DEPENDENT`. Unknown ids (404), duplicates and state transitions
    (409), ownership (403) and a stale If-Match (412) depend on the hub's data and stay
    allowed (``status_code_conformance`` checks that each is documented)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422):
        return None
    problem = response.json()
    fields = {error.get("field") for error in problem.get("errors") or []}
    if fields and all((problem.get("code"), field) in STATE_DEPENDENT for field in fields):
        return None
    raise AssertionError(
        f"schema-valid request refused with {response.status_code} {problem.get('code')}: "
        f"{problem.get('detail')} (fields {sorted(map(str, fields))})"
    )


#: What must hold for every response: no 5xx, a documented status, content type and headers,
#: a body that matches the documented schema, schema-invalid requests refused, and
#: schema-valid requests accepted (:func:`schema_valid_is_accepted`, stricter than
#: schemathesis' own ``positive_data_acceptance``, which it replaces: that one counts every
#: 422 as a failure, the ones that depend on state included).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
    checks.unsupported_method,
    schema_valid_is_accepted,
]


@schemathesis.serializer("application/x-ndjson")
def _ndjson(context: Any, value: Any) -> bytes:
    """``/v1/batch`` documents its body as a list of lines: send each as one JSON line."""
    if isinstance(value, list):
        # json, not orjson: generated lines may hold integers beyond 64 bits.
        return "".join(json.dumps(line) + "\n" for line in value).encode()
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture
def fuzzed(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> Iterator[tuple[Runtime, str]]:
    settings_ = Settings(
        database_url=database_url,
        schema_name=pg_schema,
        data_dir=tmp_path,
        nats_url=nats_url,
        nats_stream=stream_name,
    )
    runtime = open_runtime(settings_)
    try:
        yield runtime, runtime.keys.create("fuzz-admin", "admin", ["read", "write", "admin"])
    finally:
        runtime.close()


def test_every_operation_keeps_its_contract(fuzzed: tuple[Runtime, str]) -> None:
    runtime, key = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    failures: list[str] = []
    calls: list[int] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/v1/batch" for op in operations)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case: Any) -> None:
            calls.append(1)
            try:
                case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
            except BaseExceptionGroup as failure:  # schemathesis: all checks that failed
                failures.append(f"{case.operation.label}: {str(failure)[:2000]}")

        run()
    print(f"{len(calls)} cases over {len(operations)} operations")
    assert len(calls) >= 3 * len(operations)  # it really exercised every operation
    assert failures == [], "\n\n".join(failures)
