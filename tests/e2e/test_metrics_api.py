"""``GET /v1/metrics`` over HTTP on the realistic quarter (tests/integration/quarter.py)
built by a real runner: per currency and per contract as exact decimal strings, bad input
(422 problem+json naming the parameter) and auth (401 without a key, 403 without read)."""

from __future__ import annotations

from adapters.projections.runner import ProjectionRunner
from projections.metrics.projection import Metrics
from tests.e2e.conftest import Api, assert_problem
from tests.integration.quarter import play

FIELDS = ("bookings", "acv", "billings", "cash", "recognised", "deferred", "receivables")


def test_metrics_per_currency_and_contract_as_exact_strings(api: Api) -> None:
    window = {"from": "2023-12", "to": "2024-03"}
    assert api.get("/v1/metrics", params=window).json()["items"] == []  # not built yet
    quarter = play(api.runtime)
    rt = api.runtime
    ProjectionRunner(Metrics(), rt.connections, rt.settings.schema_name).catch_up()

    response = api.get("/v1/metrics", params=window, role="reader")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["group"], body["truncated"]) == ("currency", False)
    found = {(i["month"], i["currency"]): tuple(i[f] for f in FIELDS) for i in body["items"]}
    # USD February (see test_metrics_projection for the arithmetic): upgrade 12,000.00 +
    # add-on 1,200.00 booked; ACV 6,000.00 + 1,200.00; billed 1,000.00 + 758.62; cash
    # 600.00 + 1,100.00 (the declined card counts nothing); recognised 1,284.87.
    assert found[("2024-02", "USD")] == (
        "13200.00",
        "7200.00",
        "1758.62",
        "1700.00",
        "1284.87",
        "473.75",
        "758.62",
    )
    # JPY January: whole yen, billed 90000 (tax excluded), paid 99000 with tax.
    assert found[("2024-01", "JPY")] == ("0", "0", "90000", "99000", "30659", "59341", "0")
    assert found[("2023-12", "JPY")][:2] == ("360000", "360000")

    per_contract = api.get(
        "/v1/metrics",
        params={**window, "currency": "USD", "customer": str(quarter.globex), "group": "contract"},
    ).json()["items"]
    march = {i["contract_id"]: i for i in per_contract if i["month"] == "2024-03"}
    assert march[str(quarter.deal_contract)]["receivables"] == "1896.12"
    assert march[None]["cash"] == "-110.00"
    assert {i["customer_id"] for i in per_contract} == {str(quarter.globex)}


def test_bad_input_is_a_problem_naming_the_parameter(api: Api) -> None:
    good = {"from": "2024-01", "to": "2024-03"}
    for params, field, code in (
        ({"from": "2024-13", "to": "2024-03"}, "from", "validation-failed"),
        ({"from": "2024-01"}, "to", "validation-failed"),
        ({**good, "currency": "usd"}, "currency", "validation-failed"),
        ({**good, "currency": "XYZ"}, "currency", "validation-failed"),
        ({**good, "customer": "not-a-uuid"}, "customer", "validation-failed"),
        ({**good, "group": "planet"}, "group", "validation-failed"),
        ({"from": "0000-01", "to": "2024-01"}, "from", "validation-failed"),
    ):
        response = api.get("/v1/metrics", params=params, role="reader")
        assert_problem(response, 422, code, field=f"query.{field}")
    backwards = api.get("/v1/metrics", params={"from": "2024-03", "to": "2024-01"})
    body = assert_problem(backwards, 422, "invalid-window", field="query.from")
    assert "2024-03" in body["detail"] and "2024-01" in body["detail"]
    one = api.get("/v1/metrics", params={"from": "2024-01", "to": "2024-01"}).json()
    assert (one["from"], one["to"]) == ("2024-01", "2024-01")  # one month is a window
    wide = api.get("/v1/metrics", params={"from": "1900-01", "to": "2024-03"}).json()
    assert (wide["from"], wide["to"]) == ("2014-04", "2024-03")  # cut to 120 months
    assert api.get("/v1/metrics", params=good, role=None).status_code == 401
    writer = api.runtime.keys.create("writer", "crm", ["write"])
    forbidden = api.http.get(
        "/v1/metrics", params=good, headers={"Authorization": f"Bearer {writer}"}
    )
    assert forbidden.status_code == 403
