"""``GET /v1/metrics`` over HTTP on the metrics view built by a real runner: decimal strings
at the currency's exponent, filters, bad input (422 problem+json naming the parameter) and
auth (401 without a key, 403 without the read scope)."""

from __future__ import annotations

from adapters.projections.runner import ProjectionRunner
from projections.metrics.projection import Metrics
from tests.e2e.conftest import Api, assert_problem


def catch_up(api: Api) -> None:
    rt = api.runtime
    ProjectionRunner(Metrics(), rt.connections, rt.settings.schema_name).catch_up()


def test_months_of_one_customer_as_decimal_strings(api: Api) -> None:
    window = {"from": "2025-12", "to": "2026-02"}
    assert api.get("/v1/metrics", params=window).json() == {"items": [], "truncated": False}
    customer = api.customer(legal_name="Initech LLC")
    other = api.customer(legal_name="Globex Corp")
    # Booked 2025-12-20: 2 x 50.00 recurring + 20.00 one-time = 120.00; ACV 2 x 50.00 x 12
    # (a recurring line with no frequency is monthly) = 1,200.00.
    order = api.order(customer)
    # Billed 2026-01-01, 100.00 with no service period: recognised on its issue date.
    api.invoice(customer, order, "100.00")
    api.payment(customer, "150.00")  # received 2026-01-05, not applied
    api.order(other)
    catch_up(api)

    response = api.get("/v1/metrics", params={**window, "customer": customer}, role="reader")
    assert response.status_code == 200, response.text
    zero = {"bookings": "0.00", "acv": "0.00", "billings": "0.00", "cash": "0.00"}
    assert response.json() == {
        "items": [
            {"month": "2025-12", "currency": "USD", "customer_id": customer}
            | zero
            | {"bookings": "120.00", "acv": "1200.00"}
            | {"recognised": "0.00", "deferred": "0.00", "receivables": "0.00"},
            {"month": "2026-01", "currency": "USD", "customer_id": customer}
            | zero
            | {"billings": "100.00", "cash": "150.00", "recognised": "100.00"}
            | {"deferred": "0.00", "receivables": "100.00"},
        ],
        "truncated": False,
    }
    both = api.get("/v1/metrics", params={**window, "currency": "USD"}).json()["items"]
    assert sorted({r["customer_id"] for r in both}) == sorted([customer, other])
    assert api.get("/v1/metrics", params={**window, "currency": "JPY"}).json()["items"] == []
    january = api.get("/v1/metrics", params={"from": "2026-01", "to": "2026-01"}).json()
    assert [r["month"] for r in january["items"]] == ["2026-01"]


def test_bad_input_is_a_problem_naming_the_parameter(api: Api) -> None:
    good = {"from": "2026-01", "to": "2026-03"}
    for params, field in (
        ({"to": "2026-03"}, "from"),
        ({**good, "from": "2026-13"}, "from"),
        ({**good, "from": "0000-01"}, "from"),
        ({**good, "to": "yesterday"}, "to"),
        ({**good, "currency": "usd"}, "currency"),
        ({**good, "customer": "not-a-uuid"}, "customer"),
    ):
        response = api.get("/v1/metrics", params=params, role="reader")
        assert_problem(response, 422, "validation-failed", field=f"query.{field}")
    backwards = api.get("/v1/metrics", params={"from": "2026-03", "to": "2026-01"})
    assert_problem(backwards, 422, "invalid-range", field="query.to")
    too_long = api.get("/v1/metrics", params={"from": "2016-01", "to": "2026-01"})
    assert_problem(too_long, 422, "invalid-range", field="query.to")
    ten_years = api.get("/v1/metrics", params={"from": "2016-02", "to": "2026-01"})
    assert ten_years.status_code == 200, ten_years.text
    unknown = api.get("/v1/metrics", params={**good, "currency": "XXX"})
    assert_problem(unknown, 422, "unknown-currency", field="query.currency")


def test_metrics_need_a_key_with_the_read_scope(api: Api) -> None:
    params = {"from": "2026-01", "to": "2026-03"}
    assert api.get("/v1/metrics", params=params, role=None).status_code == 401
    writer = api.runtime.keys.create("writer", "crm", ["write"])
    headers = {"Authorization": f"Bearer {writer}"}
    assert api.http.get("/v1/metrics", params=params, headers=headers).status_code == 403
