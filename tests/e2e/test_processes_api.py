"""``GET /v1/processes/{id}``: a deal's process found by any of its ids, and bad input."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from adapters.process.dispatcher import dispatch_once
from adapters.process.service import process_runner
from api.cli import app as cli
from tests.e2e.conftest import Api, assert_problem
from tests.e2e.test_exceptions_api import sql_exec


def _settle(api: Api) -> None:
    for _ in range(10):
        process_runner(api.runtime).catch_up()
        if not dispatch_once(api.runtime):
            return


def _deal(api: Api, customer: str, opportunity: str) -> str:
    body: dict[str, Any] = {
        "customer_id": customer,
        "opportunity_id": opportunity,
        "lines": [
            {
                "sku": "SEATS",
                "quantity": "5",
                "unit_price": "1200.00",
                "charge_type": "recurring",
                "billing_unit_price": "100.00",
            }
        ],
        "currency": "USD",
        "term_months": 12,
        "start_date": "2026-02-01",
        "booking_date": "2026-01-20",
    }
    response = api.post("/v1/orders", body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _product(api: Api) -> None:
    response = api.http.put(
        "/v1/mappings/SEATS",
        json={
            "charge_type": "recurring",
            "billing_period": "month",
            "ids": {"erp_item_ids": ["77"], "billing_price_ids": ["price_seats"]},
        },
        headers=api.headers("admin"),
    )
    assert response.status_code in (200, 201), response.text


def test_a_process_by_any_of_its_ids(api: Api) -> None:
    _product(api)
    customer = api.customer(legal_name="Initech")
    order = _deal(api, customer, "006A0000001")
    _settle(api)
    by_order = api.get(f"/v1/processes/{order}")
    assert by_order.status_code == 200, by_order.text
    body = by_order.json()
    assert body["process_id"] == order and body["status"] == "running"
    assert [(s["step"], s["status"]) for s in body["steps"]][:2] == [
        ("validate", "done"),
        ("erp_order", "sent"),
    ]
    assert body["steps"][1]["deadline_at"] is not None and body["steps"][1]["overdue"] is False
    assert [(c["name"], c["status"]) for c in body["commands"]] == [("validate", "done")]
    assert body["events"][0]["type"] == "started"
    # The same process by the opportunity, by the ERP's number once it accepted, by the
    # customer (it has one deal).
    assert api.get("/v1/processes/006A0000001").json()["process_id"] == order
    accepted = api.post(f"/v1/orders/{order}/accept", {"erp_order_number": "SO77"}, role="erp")
    assert accepted.status_code == 200, accepted.text
    _settle(api)
    assert api.get("/v1/processes/SO77").json()["erp_order_number"] == "SO77"
    assert api.get(f"/v1/processes/{customer}").json()["process_id"] == order
    second = _deal(api, customer, "006A0000002")
    _settle(api)
    ambiguous = assert_problem(api.get(f"/v1/processes/{customer}"), 409, "ambiguous-id")
    assert {e["message"] for e in ambiguous["errors"]} == {f"process {order}", f"process {second}"}


def test_bad_and_unknown_ids(api: Api) -> None:
    assert_problem(api.get("/v1/processes/nothing-here"), 404, "not-found")
    _product(api)
    _deal(api, api.customer(), "006B")
    _settle(api)
    assert_problem(api.get("/v1/processes/nothing-here"), 404, "not-found")
    assert_problem(api.get("/v1/processes/" + "x" * 256), 422, "validation-failed", field="path.id")
    assert api.get("/v1/processes/006B", role=None).status_code == 401


def test_a_stuck_delivery_shows_its_error_to_admin_keys_only(api: Api) -> None:
    _product(api)
    order = _deal(api, api.customer(legal_name="Hooli"), "006C")
    _settle(api)
    sql_exec(
        api,
        "INSERT INTO concord_delivery_holds (subscriber, aggregate, aggregate_id, state, "
        "blocker_event_id, blocker_stream_seq, attempts, last_error) "
        "VALUES ('erp', 'order', %s, 'retrying', 'e1', 1, 3, 'ERP said: Jane Doe blocked')",
        order,
    )
    as_admin = api.get(f"/v1/processes/{order}").json()["deliveries"]
    assert [(d["target"], d["attempts"], d["error"]) for d in as_admin] == [
        ("erp", 3, "ERP said: Jane Doe blocked")
    ]
    as_reader = api.get(f"/v1/processes/{order}", role="reader").json()["deliveries"]
    assert [(d["target"], d["state"], d["error"]) for d in as_reader] == [("erp", "retrying", None)]


def test_the_cli_shows_a_deals_process(api: Api, monkeypatch: Any) -> None:
    _product(api)
    customer = api.customer(legal_name="Vehement Capital")
    order = _deal(api, customer, "006D")
    _settle(api)
    settings = api.runtime.settings
    assert settings.database_url
    monkeypatch.setenv("CONCORD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONCORD_SCHEMA_NAME", settings.schema_name)
    monkeypatch.setenv("CONCORD_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    shown = runner.invoke(cli, ["process", "show", "006D"])
    assert shown.exit_code == 0, shown.output
    assert f"deal {order} (opportunity 006D): running" in shown.output
    assert "erp_order" in shown.output and "decided order.validate: done" in shown.output
    _deal(api, customer, "006E")
    _settle(api)
    several = runner.invoke(cli, ["process", "show", customer])
    assert several.exit_code == 1 and "2 deals have the id" in several.output
    unknown = runner.invoke(cli, ["process", "show", "nothing"])
    assert unknown.exit_code == 1 and "no deals have the id" in unknown.output
