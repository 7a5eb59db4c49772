"""``GET /v1/reconciliation`` and ``GET /v1/slas`` over HTTP, on the reconciliation view
built by a real runner: filters, paging, bad input (422 problem+json naming the parameter)
and auth (401 without a key, 403 without the read scope)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from adapters.projections.runner import ProjectionRunner
from projections.reconciliation.projection import Reconciliation
from tests.e2e.conftest import Api, assert_problem


def catch_up(api: Api) -> None:
    rt = api.runtime
    ProjectionRunner(Reconciliation(), rt.connections, rt.settings.schema_name).catch_up()


def test_breaks_are_listed_filtered_and_paged(api: Api) -> None:
    assert api.get("/v1/reconciliation").json() == {"items": [], "next": None}  # not built yet
    customer = api.customer(legal_name="Initech LLC")
    order = api.order(customer)
    invoice = api.invoice(customer, order, "100.00")
    payments = [api.payment(customer, "150.00") for _ in range(3)]
    catch_up(api)

    everything = api.get("/v1/reconciliation", params={"status": "all"}, role="reader")
    assert everything.status_code == 200, everything.text
    unapplied = [b for b in everything.json()["items"] if b["code"] == "PAYMENT_UNAPPLIED"]
    assert sorted(b["object_id"] for b in unapplied) == sorted(payments)
    assert {(b["actual_amount"], b["currency"], b["closed_at"]) for b in unapplied} == {
        ("150.00", "USD", None)
    }
    assert unapplied[0]["lineage"] == f"/v1/lineage/{unapplied[0]['object_id']}"

    first = api.get(
        "/v1/reconciliation", params={"code": "PAYMENT_UNAPPLIED", "limit": 2}, role="reader"
    ).json()
    assert len(first["items"]) == 2 and first["next"]
    second = api.get(first["next"], role="reader").json()
    keys = [b["break_key"] for b in first["items"] + second["items"]]
    assert keys == sorted(f"PAYMENT_UNAPPLIED:{p}" for p in payments)

    body = {"invoice_id": invoice, "amount": {"amount": "100.00", "currency": "USD"}}
    applied = api.post(f"/v1/payments/{payments[0]}/apply", body, role="billing")
    assert applied.status_code in (200, 201), applied.text
    catch_up(api)
    closed = api.get("/v1/reconciliation", params={"status": "closed"}, role="reader").json()
    assert closed["items"] == []  # 50.00 still unapplied: the break stays open, amount updated
    mine = api.get(
        "/v1/reconciliation", params={"customer": customer, "code": "PAYMENT_UNAPPLIED"}
    ).json()["items"]
    assert {b["actual_amount"] for b in mine} == {"50.00", "150.00"}


def test_bad_input_is_a_problem_naming_the_parameter(api: Api) -> None:
    for params, field in (
        ({"status": "maybe"}, "status"),
        ({"code": "NOPE"}, "code"),
        ({"customer": "not-a-uuid"}, "customer"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "!!"}, "cursor"),
    ):
        response = api.get("/v1/reconciliation", params=params, role="reader")
        assert_problem(response, 422, "validation-failed", field=f"query.{field}")
    forged = api.get("/v1/reconciliation", params={"cursor": "bm9wZQ"}, role="reader")
    assert_problem(forged, 422, "invalid-cursor", field="query.cursor")
    backwards = api.get("/v1/slas", params={"from": "2026-05-01", "to": "2026-01-01"})
    body = assert_problem(backwards, 422, "invalid-window", field="query.from")
    assert "2026-05" in body["detail"] and "2026-01" in body["detail"]
    future = api.get("/v1/slas", params={"from": "2999-01-01"}, role="reader")  # to: now
    assert_problem(future, 422, "invalid-window", field="query.from")
    same_month = api.get("/v1/slas", params={"from": "2026-01-20", "to": "2026-01-01"})
    assert same_month.status_code == 200, same_month.text  # days are ignored
    wrong = api.get("/v1/slas", params={"to": "yesterday"}, role="reader")
    assert_problem(wrong, 422, "validation-failed", field="query.to")


def test_endpoints_need_a_key_with_the_read_scope(api: Api) -> None:
    writer = api.runtime.keys.create("writer", "crm", ["write"])
    for path in ("/v1/reconciliation", "/v1/slas"):
        assert api.get(path, role=None).status_code == 401
        forbidden = api.http.get(path, headers={"Authorization": f"Bearer {writer}"})
        assert forbidden.status_code == 403


def test_slas_report_thresholds_months_and_what_breaches_now(api: Api) -> None:
    customer = api.customer(legal_name="Initech LLC")
    order = api.order(customer)
    api.invoice(customer, order, "100.00")
    catch_up(api)
    report = api.get("/v1/slas", params={"from": "2020-01-01"}, role="reader")
    assert report.status_code == 200, report.text
    body = report.json()
    settings = api.runtime.settings
    assert body["thresholds"] == {
        "order_to_activation_hours": settings.sla_order_to_activation_hours,
        "invoice_to_cash_days": settings.sla_invoice_to_cash_days,
    }
    assert body["months"] == []  # nothing completed yet
    # The invoice (issued 2026-01-01) is open and older than the threshold: breaching now.
    age = (datetime.now(UTC).date() - date(2026, 1, 1)).days
    assert age > settings.sla_invoice_to_cash_days
    (cash,) = [b for b in body["breaching"] if b["sla"] == "invoice_to_cash"]
    assert (cash["customer_id"], cash["started"], cash["done"]) == (customer, "2026-01-01", None)
    assert (cash["duration"], cash["unit"]) == (age, "days")
