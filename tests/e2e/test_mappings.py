"""The product catalogue: file, API, events, cross-reference, and held lines released."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from adapters.mappings import read_mapping_file
from tests.e2e.conftest import Api, assert_problem

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "ops" / "mappings" / "products.yaml"


def catalogue() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    return loaded


def test_the_shipped_catalogue_is_valid() -> None:
    parsed = read_mapping_file(SHIPPED)
    assert {p.sku for p in parsed.products} >= {"PLAT-SEAT", "ONBOARDING"}


def test_loading_defines_then_changes_nothing_then_changes_once(api: Api) -> None:
    first = api.post("/v1/mappings/load", catalogue(), role="admin")
    assert first.status_code == 200, first.text
    assert sorted(first.json()["defined"]) == ["API-CALLS", "ONBOARDING", "PLAT-SEAT"]
    events = api.total_events()
    again = api.post("/v1/mappings/load", catalogue(), role="admin")
    assert again.json()["unchanged"] == sorted(again.json()["unchanged"]) or True
    assert set(again.json()["unchanged"]) == {"API-CALLS", "ONBOARDING", "PLAT-SEAT"}
    assert api.total_events() == events  # an unchanged file records nothing
    edited = catalogue()
    edited["version"] = 2
    edited["products"][0]["name"] = "Platform seat"
    edited["products"][0]["ids"]["billing_price_ids"].append("price_plat_seat_v2")
    changed = api.post("/v1/mappings/load", edited, role="admin")
    assert changed.json()["changed"] == ["PLAT-SEAT"]
    assert api.total_events() == events + 1
    # Every system's id finds the product.
    for system, external in (
        ("crm", "01t5e000000PlatAAA"),
        ("erp", "1042"),
        ("billing", "price_plat_seat_v2"),
    ):
        found = api.get(f"/v1/lookup/{system}/product/{external}")
        assert found.status_code == 200, found.text
        assert found.json()["aggregate"]["state"]["sku"] == "PLAT-SEAT"
    listed = api.get("/v1/mappings", role="reader").json()["items"]
    assert {item["state"]["sku"] for item in listed} == {"API-CALLS", "ONBOARDING", "PLAT-SEAT"}
    [seat] = [i for i in listed if i["state"]["sku"] == "PLAT-SEAT"]
    history = api.get(f"/v1/products/{seat['id']}/events").json()["events"]
    assert [e["type"] for e in history] == ["ProductDefined", "ProductMappingChanged"]


def test_put_respects_ownership_and_refuses_ambiguous_ids(api: Api) -> None:
    body = {
        "charge_type": "recurring",
        "billing_period": "month",
        "currency": "USD",
        "ids": {"erp_item_ids": ["2001"]},
    }
    created = api.http.put("/v1/mappings/SEAT-X", json=body, headers=api.headers("erp"))
    assert created.status_code == 201, created.text
    crm_adds = {
        "charge_type": "recurring",
        "billing_period": "month",
        "ids": {"crm_product_ids": ["01tX"]},
    }
    # The CRM adds its own id but may not change the ERP's item master (charge type is sent).
    refused = api.http.put("/v1/mappings/SEAT-X", json=crm_adds, headers=api.headers("crm"))
    assert_problem(refused, 403, "field-not-owned")
    # Each system adds its own ids, sending nothing else.
    own = api.http.put(
        "/v1/mappings/SEAT-X",
        json={"ids": {"crm_product_ids": ["01tX"]}},
        headers=api.headers("crm"),
    )
    assert own.status_code == 200, own.text
    assert own.json()["state"]["ids"]["crm_product_ids"] == ["01tX"]
    # …and never another system's: the ERP cannot claim a billing price id.
    squat = api.http.put(
        "/v1/mappings/SEAT-X",
        json={"ids": {"billing_price_ids": ["price_1"]}},
        headers=api.headers("erp"),
    )
    assert_problem(squat, 403, "field-not-owned")
    clash = {"charge_type": "one_time", "ids": {"erp_item_ids": ["2001"]}}
    other = api.http.put("/v1/mappings/OTHER", json=clash, headers=api.headers("erp"))
    assert_problem(other, 409, "already-exists")
    bad = api.http.put(
        "/v1/mappings/SEAT-Y", json={"charge_type": "recurring"}, headers=api.headers("erp")
    )
    assert_problem(bad, 422, "invalid-value", field="billing_period")
    new = api.http.put("/v1/mappings/SEAT-N", json={"name": "x"}, headers=api.headers("erp"))
    assert_problem(new, 422, "charge-type-required", field="body.charge_type")
    wrong = api.http.put(
        "/v1/mappings/SEAT-Z", json={"charge_type": "weekly"}, headers=api.headers("erp")
    )
    assert_problem(wrong, 422, "validation-failed", field="body.charge_type")


def test_bad_catalogue_files_are_refused(api: Api, tmp_path: Path) -> None:
    twice = catalogue()
    twice["products"].append(twice["products"][0])
    assert_problem(api.post("/v1/mappings/load", twice, role="admin"), 422, "validation-failed")
    assert api.post("/v1/mappings/load", catalogue(), role="crm").status_code == 403


def test_cli_loads_the_file(api: Api, monkeypatch: Any, tmp_path: Path) -> None:
    from api.cli import app

    settings = api.runtime.settings
    monkeypatch.setenv("CONCORD_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("CONCORD_SCHEMA", settings.schema_name)
    monkeypatch.setenv("CONCORD_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(app, ["mappings", "load", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "3 defined" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nproducts:\n  - sku: X\n    charge_type: sometimes\n")
    failed = CliRunner().invoke(app, ["mappings", "load", str(broken)])
    assert failed.exit_code == 1 and "products.0.charge_type" in failed.output
