"""``GET /v1/projections`` and ``POST /v1/projections/{name}/rebuild`` over HTTP, with the
ERP view built by a real runner, and ``concord projections status`` / ``rebuild``."""

from __future__ import annotations

import os
import subprocess
import sys

from adapters.projections.runner import ProjectionRunner
from projections.erp.customers import ErpCustomers
from tests.e2e.conftest import Api, assert_problem


def runner(api: Api) -> ProjectionRunner:
    rt = api.runtime
    return ProjectionRunner(ErpCustomers(), rt.connections, rt.settings.schema_name)


def test_projections_report_lag_then_position_after_a_run(api: Api) -> None:
    api.customer(legal_name="Initech LLC")
    before = api.get("/v1/projections", role="crm")
    assert before.status_code == 200, before.text
    erp, billing, orders = before.json()["items"][:3]
    assert (billing["name"], billing["tables"]) == (
        "billing",
        ["billing_subscriptions", "billing_subscription_items"],
    )
    assert (orders["name"], orders["tables"]) == (
        "erp_orders",
        ["erp_sales_orders", "erp_sales_order_lines", "erp_items"],
    )
    assert [s["store"] for s in orders["stores"]] == ["orders", "products"]
    assert (erp["name"], erp["state"], erp["version"], erp["lag_events"]) == (
        "erp",
        "stopped",
        None,
        1,
    )
    assert erp["stores"][0]["store"] == "customers" and erp["stores"][0]["lag_seconds"] >= 0
    runner(api).catch_up()
    erp = api.get("/v1/projections").json()["items"][0]
    assert (erp["version"], erp["lag_events"], erp["stores"][0]["position"]) == (
        ErpCustomers.version,
        0,
        1,
    )
    assert erp["tables"] == ["erp_customers"] and erp["failure"] is None


def test_rebuild_is_admin_only_and_names_a_known_projection(api: Api) -> None:
    assert api.post("/v1/projections/erp/rebuild", role="crm").status_code == 403
    missing = api.post("/v1/projections/nope/rebuild", role="admin")
    assert_problem(missing, 404, "projection-not-found")
    assert api.post("/v1/projections/Bad-Name/rebuild", role="admin").status_code == 422
    runner(api).catch_up()  # built once; a rebuild is then a shadow build and a swap
    accepted = api.post("/v1/projections/erp/rebuild", role="admin")
    assert accepted.status_code == 202 and accepted.json()["rebuild_requested"] is True
    runner(api).catch_up()
    erp = api.get("/v1/projections").json()["items"][0]
    assert erp["rebuild_requested"] is False and erp["rebuilt_at"] is not None
    assert api.get("/v1/projections", role=None).status_code == 401


def test_cli_status_and_rebuild(api: Api) -> None:
    api.customer(legal_name="Hooli Inc")
    env = {
        **os.environ,
        "CONCORD_DATABASE_URL": api.runtime.settings.database_url or "",
        "CONCORD_SCHEMA": api.runtime.settings.schema_name,
    }

    def concord(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "projections", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    stopped = concord("status")
    assert stopped.returncode == 0, stopped.stderr
    assert "erp (ERP view): stopped, never built" in stopped.stdout
    assert "billing (Billing view): stopped, never built" in stopped.stdout
    assert "lag 1 event(s)" in stopped.stdout
    built = concord("rebuild", "erp")
    assert built.returncode == 0, built.stderr
    assert "Rebuilt erp" in built.stdout
    after = concord("status")
    assert (
        f"version {ErpCustomers.version}" in after.stdout
        and "position 1 of 1  lag 0 event(s)" in after.stdout
    )
    unknown = concord("rebuild", "nope")
    assert unknown.returncode == 1 and "no projection named 'nope'" in unknown.stderr
