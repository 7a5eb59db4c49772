"""Rate limits: per client (429 + Retry-After), and failed authentication per address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.bootstrap import open_runtime
from adapters.settings import Settings
from api.app import create_app
from api.rate_limits import RateLimiter
from tests.e2e.conftest import Api, TestClient, assert_problem


@pytest.fixture
def limited(database_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Api]:
    """A hub whose clients may make 3 requests at once and whose failures 2, slowly refilled."""
    settings = Settings(
        database_url=database_url,
        schema_name=pg_schema,
        data_dir=tmp_path,
        rate_limit_per_s=0.001,
        rate_limit_burst=3,
        auth_failure_limit_per_s=0.01,
        auth_failure_burst=2,
    )
    runtime = open_runtime(settings)
    try:
        keys = {
            "crm": runtime.keys.create("crm-client", "crm", ["read", "write"]),
            "erp": runtime.keys.create("erp-client", "erp", ["read", "write"]),
        }
        with TestClient(create_app(runtime)) as http:
            yield Api(http=http, runtime=runtime, keys=keys)
    finally:
        runtime.close()


def test_client_over_its_limit_gets_429_with_retry_after(limited: Api) -> None:
    for _ in range(3):
        assert limited.get("/v1/ownership", role="crm").status_code == 200
    before = limited.total_events()
    refused = limited.post("/v1/customers", {"legal_name": "Acme"}, role="crm")
    problem = assert_problem(refused, 429, "rate-limited")
    assert "crm-client" in problem["detail"]
    assert int(refused.headers["retry-after"]) == 1000
    assert limited.total_events() == before
    # Another client has its own bucket.
    assert limited.get("/v1/ownership", role="erp").status_code == 200


def test_failed_authentication_is_limited_per_address(limited: Api) -> None:
    wrong = {"Authorization": "Bearer cnc_wrong"}
    for _ in range(2):
        assert_problem(limited.http.get("/v1/ownership", headers=wrong), 401, "unauthenticated")
    refused = limited.http.get("/v1/ownership", headers=wrong)
    problem = assert_problem(refused, 429, "rate-limited")
    assert "failed authentications" in problem["detail"]
    assert int(refused.headers["retry-after"]) == 100
    # A throttled address learns nothing, not even from a right key; no key counts too.
    assert_problem(limited.get("/v1/ownership", role="crm"), 429, "rate-limited")
    assert_problem(limited.http.get("/v1/ownership"), 429, "rate-limited")
    # Health needs no key and stays reachable.
    assert limited.http.get("/v1/health").status_code == 200


def test_default_limits_do_not_throttle_the_suite(api: Api) -> None:
    for _ in range(150):
        assert api.get("/v1/ownership", role="crm").status_code == 200
    for _ in range(30):
        api.http.get("/v1/ownership", headers={"Authorization": "Bearer cnc_wrong"})
    assert api.get("/v1/ownership", role="crm").status_code == 200


def test_429_is_documented_on_routes_that_take_a_key(api: Api) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    assert "429" in paths["/v1/customers"]["post"]["responses"]
    assert "429" in paths["/v1/keys"]["get"]["responses"]
    # The health check takes a key optionally (details); a presented key is rate limited.
    assert "429" in paths["/v1/health"]["get"]["responses"]
    assert "429" not in paths["/v1"]["get"]["responses"]  # the index never takes one


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = RateLimiter(2.0, 2, clock=lambda: now[0])
    assert bucket.take("a") is None and bucket.take("a") is None
    refused = bucket.take("a")
    assert refused is not None and refused.retry_after_s == 1
    assert bucket.check("a") is not None
    now[0] = 0.5  # one token back
    assert bucket.check("a") is None
    assert bucket.take("a") is None and bucket.take("a") is not None
    assert bucket.check("never-seen") is None
    off = RateLimiter(0, 1)
    assert all(off.take("a") is None for _ in range(100))
