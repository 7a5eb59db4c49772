"""``GET /v1/health``: PostgreSQL, NATS, the relay's lag and each subscriber, bounded in time.

The hub runs on real PostgreSQL and NATS; "unreachable" is made real by connecting the hub
through a loopback proxy the test cuts (tests/e2e/proxy.py), or by pointing it at a port
where nothing listens.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil  # type: ignore[import-untyped]
import psycopg

from adapters.bootstrap import Runtime, open_runtime
from adapters.nats.relay import Relay
from adapters.settings import Settings
from api.app import create_app
from tests.conftest import run_sync
from tests.e2e.conftest import TestClient, assert_problem, nats_settings, order_body
from tests.e2e.proxy import Proxy
from tests.e2e.serving import free_port
from tests.integration.test_relay_stuck import _insert_oversized_order_event

STORES = {"customers", "contracts", "orders", "invoices", "payments", "products"}


@contextmanager
def hub(settings: Settings) -> Iterator[tuple[Runtime, TestClient, str]]:
    """A runtime and its app (lifespan on), with a read key."""
    runtime = open_runtime(settings)
    try:
        key = runtime.keys.create(f"monitor-{uuid.uuid4().hex[:6]}", "crm", ["read"])
        with TestClient(create_app(runtime)) as http:
            yield runtime, http, key
    finally:
        runtime.close()


def health(http: TestClient, key: str | None = None) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return http.get("/v1/health", headers=headers)


def add(runtime: Runtime, http: TestClient, path: str, body: dict[str, Any]) -> str:
    """Create an aggregate as a CRM client; its id."""
    key = runtime.keys.create(f"crm-{uuid.uuid4().hex[:6]}", "crm", ["read", "write"])
    created = http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def add_customer(runtime: Runtime, http: TestClient) -> str:
    return add(runtime, http, "/v1/customers", {"legal_name": "Acme GmbH"})


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def test_ok_with_details_for_a_read_key_and_status_only_without(
    database_url: str, nats_url: str, pg_schema: str, stream_name: str, tmp_path: Path
) -> None:
    settings = nats_settings(database_url, nats_url, pg_schema, stream_name, tmp_path)
    with hub(settings) as (runtime, http, key):
        add_customer(runtime, http)
        assert run_sync(Relay(settings).catch_up()) == 1

        anonymous = health(http)
        assert anonymous.status_code == 200
        summary = anonymous.json()
        assert summary["status"] == "ok" and summary["down"] == [] == summary["degraded"]
        assert summary["ownership_version"] == runtime.policy.version
        assert "checks" not in summary  # nothing for outsiders beyond the status

        detailed = health(http, key)
        assert detailed.status_code == 200, detailed.text
        body = detailed.json()
        assert body["status"] == "ok"
        checks = body["checks"]
        assert checks["postgres"]["status"] == "ok" and checks["postgres"]["latency_ms"] >= 0
        nats = checks["nats"]
        assert nats["status"] == "ok" and nats["connected"] is True
        assert nats["server_version"].split(".")[0].isdigit()
        assert nats["stream"] == stream_name and nats["stream_exists"] is True
        assert nats["stream_last_seq"] == 1 and nats["max_payload"] > 0
        relay = checks["relay"]
        assert relay["status"] == "ok" and relay["lag"] == 0 and relay["stuck"] == {}
        assert relay["running"] is False  # catch_up has finished; no relay holds the lock
        assert {s["store"] for s in relay["stores"]} == STORES
        customers = next(s for s in relay["stores"] if s["store"] == "customers")
        assert customers == {
            "store": "customers",
            "head": 1,
            "published": 1,
            "lag": 0,
            "stuck": None,
        }
        names = {s["subscriber"]: s for s in checks["subscribers"]}
        assert names and all(s["status"] == "off" and not s["configured"] for s in names.values())

        operation = http.get("/openapi.json").json()["paths"]["/v1/health"]["get"]
        assert {} in operation["security"]  # the key is optional
        unhealthy = operation["responses"]["503"]["content"]["application/problem+json"]
        assert unhealthy["schema"] == {"$ref": "#/components/schemas/HealthProblem"}

        # A presented key is checked like anywhere: wrong → 401, no read scope → 403.
        assert_problem(health(http, "cnc_" + "x" * 43), 401, "unauthenticated")
        writer = runtime.keys.create("writer", "crm", ["write"])
        assert_problem(health(http, writer), 403, "forbidden")


def test_relay_lag_and_a_stuck_store_are_visible_and_degrade(
    database_url: str, nats_url: str, pg_schema: str, stream_name: str, tmp_path: Path
) -> None:
    settings = nats_settings(
        database_url, nats_url, pg_schema, stream_name, tmp_path, health_max_lag=1
    )
    with hub(settings) as (runtime, http, key):
        add_customer(runtime, http)
        body = health(http, key).json()
        relay = body["checks"]["relay"]
        assert relay["lag"] == 1 and body["status"] == "ok"  # within CONCORD_HEALTH_MAX_LAG
        customers = next(s for s in relay["stores"] if s["store"] == "customers")
        assert (customers["head"], customers["published"], customers["lag"]) == (1, 0, 1)

        add_customer(runtime, http)
        lagging = health(http, key)
        assert lagging.status_code == 200  # degraded still serves
        body = lagging.json()
        assert body["status"] == "degraded" and body["degraded"] == ["relay"]
        assert body["checks"]["relay"]["lag"] == 2 and body["checks"]["relay"]["status"] == (
            "degraded"
        )
        assert health(http).json() == {
            "status": "degraded",
            "version": body["version"],
            "ownership_version": body["ownership_version"],
            "down": [],
            "degraded": ["relay"],
        }

        assert run_sync(Relay(settings).catch_up()) == 2
        body = health(http, key).json()
        assert body["status"] == "ok" and body["checks"]["relay"]["lag"] == 0

        # An order event too large for NATS (written past the commit-time check): the
        # orders store is stuck, named with its event, read from PostgreSQL alone.
        add(runtime, http, "/v1/orders", order_body(add_customer(runtime, http)))
        assert run_sync(Relay(settings).catch_up()) == 2
        max_payload = body["checks"]["nats"]["max_payload"]
        oversized = _insert_oversized_order_event(runtime, database_url, max_payload)
        run_sync(Relay(settings).catch_up())
        body = health(http, key).json()
        relay = body["checks"]["relay"]
        assert body["status"] == "degraded" and "relay" in body["degraded"]
        assert list(relay["stuck"]) == ["orders"]
        assert oversized in relay["stuck"]["orders"] and "max_payload" in relay["stuck"]["orders"]
        orders = next(s for s in relay["stores"] if s["store"] == "orders")
        assert orders["lag"] == 1 and orders["stuck"] == relay["stuck"]["orders"]


def test_503_when_postgresql_becomes_unreachable(
    database_url: str, nats_url: str, pg_schema: str, stream_name: str, tmp_path: Path
) -> None:
    target = urlsplit(database_url)
    with Proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        settings = nats_settings(
            with_port(database_url, proxy.port),
            nats_url,
            pg_schema,
            stream_name,
            tmp_path,
            health_timeout_s=1.0,
        )
        with hub(settings) as (_, http, key):
            assert health(http, key).status_code == 200
            proxy.cut()
            started = time.monotonic()
            answers = [health(http, key) for _ in range(2)]  # a broken pooled one, then none
            assert time.monotonic() - started < 2 * 1.0 + 2
            for answer in answers:
                problem = assert_problem(answer, 503, "unhealthy")
                assert answer.headers["Retry-After"] == "5"
                report = problem["health"]
                assert report["status"] == "down" and report["down"] == ["postgres"]
                assert report["checks"]["postgres"]["status"] == "down"
                assert report["checks"]["postgres"]["error"]
                assert report["checks"]["nats"]["status"] == "ok"  # NATS is still fine
                assert report["checks"]["relay"]["status"] == "unknown"
            anonymous = assert_problem(health(http), 503, "unhealthy")
            assert anonymous["health"]["down"] == ["postgres"]
            assert "checks" not in anonymous["health"]


def test_503_when_nats_is_unreachable_never_connected_or_lost(
    database_url: str, nats_url: str, pg_schema: str, stream_name: str, tmp_path: Path
) -> None:
    nowhere = nats_settings(
        database_url,
        f"nats://127.0.0.1:{free_port()}",
        pg_schema,
        stream_name,
        tmp_path,
        health_timeout_s=0.5,
    )
    with hub(nowhere) as (_, http, key):
        started = time.monotonic()
        answer = health(http, key)
        assert time.monotonic() - started < 0.5 + 1.5
        report = assert_problem(answer, 503, "unhealthy")["health"]
        assert report["down"] == ["nats"]
        nats = report["checks"]["nats"]
        assert nats["connected"] is False and "could not connect" in nats["error"]
        assert report["checks"]["postgres"]["status"] == "ok"
        # PostgreSQL still answers: the relay's lag and the subscribers' holds are reported.
        assert report["checks"]["relay"]["lag"] == 0
        assert all(s["exists"] is None for s in report["checks"]["subscribers"])

    target = urlsplit(nats_url)
    with Proxy(target.hostname or "127.0.0.1", target.port or 4222) as proxy:
        settings = nowhere.model_copy(update={"nats_url": proxy.url("nats")})
        with hub(settings) as (_, http, key):
            assert health(http, key).json()["checks"]["nats"]["connected"] is True
            proxy.cut()
            deadline = time.monotonic() + 5
            answer = health(http, key)
            while answer.status_code != 503 and time.monotonic() < deadline:
                time.sleep(0.05)  # the client notices the reset connection
                answer = health(http, key)
            report = assert_problem(answer, 503, "unhealthy")["health"]
            assert report["down"] == ["nats"]
            assert report["checks"]["nats"]["connected"] is False


def test_repeated_calls_open_no_new_connections(
    database_url: str, nats_url: str, pg_schema: str, stream_name: str, tmp_path: Path
) -> None:
    name = f"concord-h{uuid.uuid4().hex[:8]}"
    settings = nats_settings(
        database_url,
        nats_url,
        pg_schema,
        stream_name,
        tmp_path,
        database_application_name=name,
    )
    nats_port = urlsplit(nats_url).port or 4222

    def postgres_sessions() -> int:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                (name + "%",),
            ).fetchone()
        return int(row[0]) if row else 0

    def nats_sockets() -> int:
        return sum(
            1
            for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == nats_port and c.status == psutil.CONN_ESTABLISHED
        )

    with hub(settings) as (_, http, key):
        assert health(http, key).status_code == 200  # the operator NATS connection opens
        before = (postgres_sessions(), nats_sockets())
        for _ in range(25):
            assert health(http, key).status_code == 200
            assert health(http).status_code == 200
        after = (postgres_sessions(), nats_sockets())
    assert before == after, (before, after)
    assert 1 <= before[0] <= settings.pool_size  # the one shared pool
