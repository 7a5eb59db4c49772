"""Commands over HTTP: quote-to-cash happy path, idempotency, If-Match, concurrency, ownership."""

from __future__ import annotations

import threading
from typing import Any

from tests.e2e.conftest import Api, assert_problem, invoice_body, order_body, payment_body


def test_quote_to_cash_over_http(api: Api) -> None:
    customer = api.post("/v1/customers", {"legal_name": "Acme GmbH", "web_domain": "acme.de"})
    assert customer.status_code == 201, customer.text
    cid = customer.json()["id"]
    assert customer.headers["location"] == f"/v1/customers/{cid}"
    assert customer.headers["etag"] == '"1"'
    assert customer.json()["events"][0]["type"] == "CustomerRegistered"
    assert "idempotent-replayed" not in customer.headers

    placed = api.post("/v1/orders", order_body(cid))
    assert placed.status_code == 201, placed.text
    oid = placed.json()["id"]
    totals = placed.json()["state"]["totals"]
    assert totals["total"] == {"amount": "120.00", "currency": "USD"}  # 2 x 50 + 20, exact

    validated = api.post(f"/v1/orders/{oid}/validate", role="erp")  # NoInput: no body at all
    assert validated.status_code == 200, validated.text
    assert validated.headers["etag"] == '"2"'
    accepted = api.post(f"/v1/orders/{oid}/accept", {"erp_order_number": "SO-1001"}, role="erp")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"]["status"] == "accepted"
    assert accepted.json()["state"]["erp_order_number"] == "SO-1001"

    iid = api.invoice(cid, oid, "120.00")
    pid = api.payment(cid, "150.00")
    applied = api.post(
        f"/v1/payments/{pid}/apply",
        {"invoice_id": iid, "amount": {"amount": "120.00", "currency": "USD"}},
        role="billing",
    )
    assert applied.status_code == 200, applied.text
    # One command changed two aggregates: both events are in the response and the store.
    assert {e["aggregate"] for e in applied.json()["events"]} == {"payment", "invoice"}
    invoice = api.get(f"/v1/invoices/{iid}").json()
    assert invoice["state"]["status"] == "paid"
    assert invoice["state"]["balance"] == {"amount": "0.00", "currency": "USD"}
    assert [e.type_name() for e in api.history("invoice", iid)] == [
        "InvoiceIssued",
        "InvoicePaymentApplied",
    ]

    got = api.get(f"/v1/orders/{oid}")
    assert got.status_code == 200
    assert got.headers["etag"] == '"3"'
    assert got.json()["version"] == 3


def test_no_input_command_takes_empty_object_or_nothing_but_not_fields(api: Api) -> None:
    cid = api.customer()
    first, second = api.order(cid), api.order(cid)
    assert api.post(f"/v1/orders/{first}/validate", {}, role="erp").status_code == 200
    assert api.post(f"/v1/orders/{second}/validate", role="erp").status_code == 200
    before = api.total_events()
    refused = api.post(f"/v1/orders/{second}/fulfil", {"force": True}, role="erp")
    assert_problem(refused, 422, "validation-failed", field="body.force")
    assert api.total_events() == before


def test_invalid_transition_is_409_not_retryable_and_writes_nothing(api: Api) -> None:
    """Distinct from a concurrency conflict (also 409): its code and ``retryable: false``
    tell a client that sending it again will never work."""
    oid = api.order(api.customer())
    assert api.post(f"/v1/orders/{oid}/cancel", {"reason": "lost"}).status_code == 200
    refused = api.post(f"/v1/orders/{oid}/accept", {"erp_order_number": "SO-2"}, role="erp")
    body = assert_problem(refused, 409, "invalid-transition", field="status")
    assert "cancelled" in body["detail"]
    assert body["retryable"] is False
    assert len(api.history("order", oid)) == 2


def test_idempotent_replay_returns_same_response_and_writes_nothing(api: Api) -> None:
    cid = api.customer()
    headers = {"Idempotency-Key": "change-1"}
    body = {"display_name": "ACME"}
    first = api.post(f"/v1/customers/{cid}/change_details", body, headers=headers)
    assert first.status_code == 200, first.text
    events = len(api.history("customer", cid))

    again = api.post(f"/v1/customers/{cid}/change_details", body, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["etag"] == first.headers["etag"]
    assert len(api.history("customer", cid)) == events

    other = api.post(
        f"/v1/customers/{cid}/change_details", {"display_name": "Other"}, headers=headers
    )
    problem = assert_problem(other, 422, "idempotency-key-reused", field="header.Idempotency-Key")
    assert "change-1" in problem["detail"]
    assert len(api.history("customer", cid)) == events

    # Keys are per client: another client's identical key is a new request.
    erp = api.post(
        f"/v1/customers/{cid}/change_status", {"status": "on_hold"}, role="erp", headers=headers
    )
    assert erp.status_code == 200, erp.text
    assert len(api.history("customer", cid)) == events + 1


def test_idempotent_creation_creates_one_aggregate(api: Api) -> None:
    headers = {"Idempotency-Key": "register-acme"}
    first = api.post("/v1/customers", {"legal_name": "Acme"}, headers=headers)
    before = api.total_events()
    again = api.post("/v1/customers", {"legal_name": "Acme"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert api.total_events() == before


def test_if_match_current_version_passes_stale_is_412(api: Api) -> None:
    cid = api.customer()
    for header in ('"1"', "1", 'W/"1"'):
        ok = api.post(
            f"/v1/customers/{cid}/change_details",
            {"display_name": header},
            headers={"If-Match": header},
        )
        assert ok.status_code == 200, (header, ok.text)
        cid = api.customer()  # fresh aggregate at version 1 for the next spelling

    stale = api.post(
        f"/v1/customers/{cid}/change_details", {"display_name": "x"}, headers={"If-Match": '"7"'}
    )
    body = assert_problem(stale, 412, "stale-version", field="header.If-Match")
    assert "version 1" in body["detail"]
    assert len(api.history("customer", cid)) == 1


def test_if_match_not_a_version_is_422(api: Api) -> None:
    """The OpenAPI document states the If-Match form, so a bad one is invalid input (422)."""
    cid = api.customer()
    bad = api.post(
        f"/v1/customers/{cid}/change_details", {"display_name": "x"}, headers={"If-Match": '"abc"'}
    )
    assert_problem(bad, 422, "validation-failed", field="header.If-Match")
    assert len(api.history("customer", cid)) == 1


def test_concurrent_writers_one_wins_other_gets_409(api: Api) -> None:
    """Both commands are decided on version 1 before either commits: exactly one may win."""
    cid = api.customer()
    committer = api.runtime.committer
    real_commit = committer.commit
    both_decided = threading.Barrier(2, timeout=10)

    def commit_after_both_decided(change: Any) -> None:
        both_decided.wait()
        real_commit(change)

    committer.commit = commit_after_both_decided  # type: ignore[method-assign]
    responses: list[Any] = []

    def write(name: str) -> None:
        responses.append(api.post(f"/v1/customers/{cid}/change_details", {"display_name": name}))

    threads = [threading.Thread(target=write, args=(n,)) for n in ("First", "Second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    committer.commit = real_commit  # type: ignore[method-assign]

    assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    assert assert_problem(loser, 409, "concurrent-modification")["retryable"] is True
    winner = next(r for r in responses if r.status_code == 200)
    history = api.history("customer", cid)
    assert len(history) == 2
    assert (
        api.get(f"/v1/customers/{cid}").json()["state"]["display_name"]
        == (winner.json()["state"]["display_name"])
    )


def test_ownership_violation_is_403_recorded_and_writes_nothing(api: Api) -> None:
    cid = api.customer()
    refused = api.post(
        f"/v1/customers/{cid}/change_details",
        {"display_name": "New", "tax_id": "DE123"},
        role="crm",
    )
    body = assert_problem(refused, 403, "field-not-owned", field="body.tax_id")
    assert body["field"] == "tax_id"
    assert body["owner"] == "erp"
    assert "tax_id" in body["detail"] and "erp" in body["detail"]
    # Nothing of the command applied, not even the field CRM does own.
    assert len(api.history("customer", cid)) == 1
    assert api.get(f"/v1/customers/{cid}").json()["state"]["display_name"] == "Acme GmbH"

    conflicts = api.get("/v1/conflicts", role="admin")
    assert conflicts.status_code == 200
    [conflict] = conflicts.json()["items"]
    assert conflict["field"] == "tax_id"
    assert conflict["owner"] == "erp"
    assert conflict["client_id"] == "crm-client"
    assert conflict["aggregate_id"] == cid
    assert conflict["command"] == "change_details"

    # The owner may write it.
    assert (
        api.post(f"/v1/customers/{cid}/change_details", {"tax_id": "DE123"}, role="erp").status_code
        == 200
    )


def test_admin_system_is_exempt_from_ownership_and_stamped_api(api: Api) -> None:
    cid = api.customer()
    done = api.post(f"/v1/customers/{cid}/change_details", {"tax_id": "DE1"}, role="admin")
    assert done.status_code == 200, done.text
    assert done.json()["events"][0]["provenance"]["source_system"] == "api"


def test_invoice_and_payment_rules(api: Api) -> None:
    cid = api.customer()
    oid = api.order(cid)
    iid = api.invoice(cid, oid, "100.00")
    pid = api.payment(cid, "500.00")
    before = (len(api.history("invoice", iid)), len(api.history("payment", pid)))

    over = api.post(
        f"/v1/payments/{pid}/apply",
        {"invoice_id": iid, "amount": {"amount": "150.00", "currency": "USD"}},
        role="billing",
    )
    body = assert_problem(over, 422, "over-application", field="body.amount")
    assert "100.00" in body["detail"]

    foreign = api.post(
        f"/v1/payments/{pid}/apply",
        {"invoice_id": iid, "amount": {"amount": "50.00", "currency": "EUR"}},
        role="billing",
    )
    assert_problem(foreign, 422, "currency-mismatch", field="body.amount")

    missing = api.post(
        f"/v1/payments/{pid}/apply",
        {
            "invoice_id": "00000000-0000-4000-8000-000000000000",
            "amount": {"amount": "1.00", "currency": "USD"},
        },
        role="billing",
    )
    assert_problem(missing, 404, "not-found", field="body.invoice_id")
    assert (len(api.history("invoice", iid)), len(api.history("payment", pid))) == before

    bad_invoice = api.post(
        "/v1/invoices", {**invoice_body(cid, oid), "total": "99.00"}, role="billing"
    )
    assert_problem(bad_invoice, 422, "invalid-value", field="body.total")

    bad_payment = api.post("/v1/payments", payment_body(cid, "0.00"), role="billing")
    assert_problem(bad_payment, 422, "invalid-value", field="body.amount")
    assert (len(api.history("invoice", iid)), len(api.history("payment", pid))) == before
