"""The billing sandbox speaks Stripe: idempotency, errors, auth, rate limit, signed
webhooks the inbound Stripe adapter accepts, and the billing cycle."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from adapters.inbound.source import Unverified
from adapters.sandbox.stripe_wire import parse_form
from adapters.stripe.adapter import StripeAdapter
from adapters.stripe.schemas import CreditNote, Invoice, Refund, StripeEvent, Subscription
from tests.integration.billing_support import API_KEY, SECRET, Billing, billing


def _error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == error_type and error["message"]
    return error


def _customer(world: Billing, key: str | None = None, **extra: str) -> dict[str, Any]:
    response = world.post(
        "/v1/customers", {"name": "Acme", "metadata[sf_account_id]": "001A", **extra}, key
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _subscribe(world: Billing, customer: str, **extra: str) -> dict[str, Any]:
    data = {
        "customer": customer,
        "items[0][price]": world.prices["seat"],
        "items[0][quantity]": "2",
        "items[1][price]": world.prices["usage"],
        "metadata[concord_contract_id]": "c-1",
        **extra,
    }
    response = world.post("/v1/subscriptions", data)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _events(world: Billing, event_type: str) -> list[dict[str, Any]]:
    world.settled()
    return [h.event for h in world.receiver.hooks if h.event["type"] == event_type]


def test_form_parameters_nest_like_stripe() -> None:
    parsed = parse_form(
        "items[0][price]=p1&items[1][price]=p2&items[1][quantity]=3&metadata[k]=v&expand[]=a"
        "&expand[]=b&pause_collection="
    )
    assert parsed == {
        "items": [{"price": "p1"}, {"price": "p2", "quantity": "3"}],
        "metadata": {"k": "v"},
        "expand": ["a", "b"],
        "pause_collection": "",
    }


def test_idempotency_replays_refuses_other_params_and_saves_no_validation_error() -> None:
    with billing() as world:
        first = world.post("/v1/customers", {"name": "Acme"}, key="key-1")
        again = world.post("/v1/customers", {"name": "Acme"}, key="key-1")
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["Original-Request"] == first.headers["Request-Id"]
        assert "Idempotent-Replayed" not in first.headers
        other = world.post("/v1/customers", {"name": "Other"}, key="key-1")
        _error(other, 400, "idempotency_error")
        assert world.sandbox.count("customer") == 1
        # A validation error is not saved: the same key works once the params are fixed.
        bad = world.post("/v1/subscriptions", {"customer": "cus_nope"}, key="key-2")
        assert _error(bad, 404, "invalid_request_error")["param"] == "customer"
        customer = first.json()["id"]
        fixed = world.post(
            "/v1/subscriptions",
            {"customer": customer, "items[0][price]": world.prices["seat"]},
            key="key-2",
        )
        assert fixed.status_code == 200, fixed.text
        long_key = world.post("/v1/customers", {"name": "A"}, key="k" * 256)
        _error(long_key, 400, "invalid_request_error")


def test_a_key_in_flight_answers_409() -> None:
    with billing() as world:
        world.sandbox.work_delay_s = 0.5
        answers: list[int] = []

        def create() -> None:
            with httpx.Client(
                base_url=world.running.url, headers={"Authorization": f"Bearer {API_KEY}"}
            ) as http:
                sent = http.post(
                    "/v1/customers", data={"name": "A"}, headers={"Idempotency-Key": "same"}
                )
                answers.append(sent.status_code)

        threads = [threading.Thread(target=create) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [200, 409]
        assert world.sandbox.count("customer") == 1


def test_errors_are_in_stripes_shape_injected_ones_too() -> None:
    with billing() as world:
        gone = world.http.get("/v1/customers/cus_nope")
        error = _error(gone, 404, "invalid_request_error")
        assert error["code"] == "resource_missing" and error["param"] == "id"
        unknown = world.post("/v1/customers", {"nickname": "x"})
        assert _error(unknown, 400, "invalid_request_error")["param"] == "nickname"
        one_time = world.post(
            "/v1/subscriptions",
            {"customer": _customer(world)["id"], "items[0][price]": world.prices["setup"]},
        )
        assert _error(one_time, 400, "invalid_request_error")["param"] == "items[0][price]"
        world.sandbox.faults.add({"kind": "error", "status": 503})
        _error(world.http.get("/v1/customers"), 503, "api_error")
        world.sandbox.faults.add({"kind": "error", "status": 429, "retry_after": 2})
        limited = world.http.get("/v1/customers")
        assert _error(limited, 429, "invalid_request_error")["code"] == "rate_limit"
        assert limited.headers["Retry-After"] == "2"


def test_a_secret_key_is_required() -> None:
    with billing() as world:
        bare = httpx.post(f"{world.running.url}/v1/customers", data={"name": "A"})
        _error(bare, 401, "invalid_request_error")
        wrong = httpx.post(
            f"{world.running.url}/v1/customers",
            data={"name": "A"},
            headers={"Authorization": "Bearer sk_test_wrong_key_123"},
        )
        assert "sk_test_****" in _error(wrong, 401, "invalid_request_error")["message"]
        assert world.sandbox.count("customer") == 0


def test_more_requests_per_second_than_the_limit_answer_429() -> None:
    with billing() as world:
        world.sandbox.rate.per_s = 2
        statuses = [world.http.get("/v1/customers").status_code for _ in range(4)]
        assert statuses[:2] == [200, 200] and 429 in statuses[2:]
        world.sandbox.rate.per_s = 0
        assert world.http.get("/v1/customers").status_code == 200


def test_lists_and_search() -> None:
    with billing() as world:
        ids = [_customer(world)["id"] for _ in range(3)]
        page = world.http.get("/v1/customers", params={"limit": 2}).json()
        assert page["object"] == "list" and page["url"] == "/v1/customers"
        assert [c["id"] for c in page["data"]] == ids[::-1][:2] and page["has_more"]
        rest = world.http.get(
            "/v1/customers", params={"limit": 2, "starting_after": page["data"][-1]["id"]}
        ).json()
        assert [c["id"] for c in rest["data"]] == [ids[0]] and not rest["has_more"]
        found = world.http.get(
            "/v1/customers/search", params={"query": "metadata['sf_account_id']:'001A'"}
        ).json()
        assert found["object"] == "search_result" and len(found["data"]) == 3
        bad = world.http.get("/v1/customers/search", params={"query": "name~'x'"})
        assert _error(bad, 400, "invalid_request_error")["param"] == "query"
        assert world.http.get("/v1/customers", params={"limit": 500}).status_code == 400


def test_webhooks_are_signed_for_the_inbound_adapter() -> None:
    with billing() as world:
        _customer(world, key="cus-key")
        world.settled()
        [hook] = world.receiver.hooks
        adapter = StripeAdapter()
        assert adapter.verify(hook.incoming(), [SECRET]).startswith("stripe-signature v1")
        with pytest.raises(Unverified):
            adapter.verify(hook.incoming(), ["whsec_other"])
        event = StripeEvent.model_validate(hook.event)
        assert event.type == "customer.created" and event.api_version == "2025-03-31.basil"
        assert hook.event["object"] == "event"
        assert hook.event["request"] == {
            "id": hook.event["request"]["id"],  # type: ignore[index]
            "idempotency_key": "cus-key",
        }


def test_a_subscription_bills_its_first_period_at_once() -> None:
    with billing() as world:
        customer = _customer(world)["id"]
        sub = _subscribe(world, customer)
        assert sub["status"] == "active" and sub["items"]["data"][1]["quantity"] is None
        world.settled()
        kinds = world.receiver.types()
        assert kinds[:2] == ["customer.created", "customer.subscription.created"]
        assert {"invoice.finalized", "invoice.paid"} <= set(kinds)
        listed = world.http.get("/v1/events", params={"limit": 100}).json()["data"]
        assert [e["type"] for e in reversed(listed)][-len(kinds) :] == kinds  # newest first
        created = Subscription.model_validate(
            _events(world, "customer.subscription.created")[0]["data"]["object"]
        )  # type: ignore[index]
        assert created.metadata == {"concord_contract_id": "c-1"} and created.status == "active"
        [paid] = _events(world, "invoice.paid")
        invoice = Invoice.model_validate(paid["data"]["object"])
        assert invoice.subscription == sub["id"] and invoice.payment_intent
        assert invoice.amount_paid == invoice.total == 5000  # 2 seats; usage in arrears
        [line] = invoice.lines.data
        assert line.pricing and line.pricing.price_details
        assert line.pricing.price_details.price == world.prices["seat"] and line.period


def test_a_cycle_that_fails_then_a_retry_that_pays() -> None:
    with billing() as world:
        sub = _subscribe(world, _customer(world)["id"])
        world.settled()
        world.receiver.hooks.clear()
        usage = {world.prices["usage"]: 1000}
        failed = world.http.post(
            "/_admin/bill", json={"subscription": sub["id"], "fail_payment": True, "usage": usage}
        )
        assert failed.status_code == 200, failed.text
        invoice = failed.json()["invoice"]
        assert invoice["status"] == "open" and invoice["attempt_count"] == 1
        assert invoice["total"] == 5000 + 50_000  # 1000 calls at 0.50 EUR
        assert failed.json()["subscription"]["status"] == "past_due"
        [event] = _events(world, "invoice.payment_failed")
        assert event["request"] == {"id": None, "idempotency_key": None}
        retried = world.http.post("/_admin/retry_payment", json={"subscription": sub["id"]})
        assert retried.json()["invoice"]["status"] == "paid"
        updates = _events(world, "customer.subscription.updated")
        assert updates[-1]["data"]["object"]["status"] == "active"  # type: ignore[index]
        pi = retried.json()["invoice"]["payments"]["data"][0]["payment"]["payment_intent"]
        refund = world.post("/v1/refunds", {"payment_intent": pi, "amount": "1000"})
        assert refund.status_code == 200, refund.text
        assert Refund.model_validate(_events(world, "refund.created")[0]["data"]["object"])
        assert _events(world, "charge.refunded")
        too_much = world.post("/v1/refunds", {"payment_intent": pi, "amount": "99999"})
        assert _error(too_much, 400, "invalid_request_error")["param"] == "amount"
        note = world.post("/v1/credit_notes", {"invoice": invoice["id"], "amount": "500"})
        assert note.status_code == 200, note.text
        created = _events(world, "credit_note.created")[0]["data"]["object"]
        assert CreditNote.model_validate(created).invoice == invoice["id"]


def test_a_declined_first_payment_leaves_the_subscription_incomplete() -> None:
    with billing() as world:
        world.http.post("/_admin/fail_payments", json={"count": 1})
        sub = _subscribe(world, _customer(world)["id"])
        assert sub["status"] == "incomplete"
        assert _events(world, "invoice.payment_failed")
        world.http.post("/_admin/retry_payment", json={"invoice": sub["latest_invoice"]})
        assert world.http.get(f"/v1/subscriptions/{sub['id']}").json()["status"] == "active"
        world.http.post("/_admin/fail_payments", json={"count": 1})
        strict = world.post(
            "/v1/subscriptions",
            {
                "customer": sub["customer"],
                "items[0][price]": world.prices["seat"],
                "payment_behavior": "error_if_incomplete",
            },
            key="strict",
        )
        assert _error(strict, 402, "card_error")["code"] == "card_declined"


def test_refused_subscriptions_and_changes() -> None:
    with billing() as world:
        customer = _customer(world)["id"]
        world.http.post("/_admin/refuse_subscriptions", json={"message": "account under review"})
        refused = world.post(
            "/v1/subscriptions", {"customer": customer, "items[0][price]": world.prices["seat"]}
        )
        assert _error(refused, 400, "invalid_request_error")["message"] == "account under review"
        assert world.sandbox.count("subscription") == 0
        world.http.post("/_admin/refuse_subscriptions", json={"message": None})
        sub = _subscribe(world, customer)
        seat = sub["items"]["data"][0]["id"]
        more = world.post(
            f"/v1/subscriptions/{sub['id']}",
            {
                "items[0][id]": seat,
                "items[0][quantity]": "4",
                "proration_behavior": "always_invoice",
            },
        )
        assert more.status_code == 200 and more.json()["items"]["data"][0]["quantity"] == 4
        invoice = world.http.get(f"/v1/invoices/{more.json()['latest_invoice']}").json()
        assert invoice["billing_reason"] == "subscription_update"
        assert all(
            line["parent"]["subscription_item_details"]["proration"]
            for line in invoice["lines"]["data"]
        )
        end = sub["items"]["data"][0]["current_period_end"]
        ending = world.post(f"/v1/subscriptions/{sub['id']}", {"cancel_at_period_end": "true"})
        assert ending.json()["cancel_at"] == end
        paused = world.post(
            f"/v1/subscriptions/{sub['id']}", {"pause_collection[behavior]": "keep_as_draft"}
        )
        assert paused.json()["pause_collection"]["behavior"] == "keep_as_draft"
        ended = world.http.post("/_admin/bill", json={"subscription": sub["id"]})
        assert ended.json()["invoice"] is None
        assert ended.json()["subscription"]["status"] == "canceled"
        assert _events(world, "customer.subscription.deleted")
        after = world.post(f"/v1/subscriptions/{sub['id']}", {"cancel_at_period_end": "false"})
        _error(after, 400, "invalid_request_error")


def test_admin_bad_input_is_422() -> None:
    with billing() as world:
        for path, body in (
            ("/_admin/bill", {"subscription": 5}),
            ("/_admin/bill", {"subscription": "sub_x", "usage": {"p": -1}}),
            ("/_admin/bill", {"nope": 1}),
            ("/_admin/retry_payment", {}),
            ("/_admin/fail_payments", {"count": "many"}),
            ("/_admin/refuse_subscriptions", {"message": 3}),
            ("/_admin/limits", {"rate_per_s": -1}),
        ):
            answer = world.http.post(path, json=body)
            assert answer.status_code == 422, (path, answer.text)
        assert world.http.post("/_admin/bill", content=b"[").status_code == 422
        missing = world.http.post("/_admin/bill", json={"subscription": "sub_missing"})
        assert missing.status_code == 404
        assert world.http.post("/_admin/limits", json={"rate_per_s": 5}).json()["rate_per_s"] == 5


def test_malformed_requests_are_4xx_never_500() -> None:
    with billing() as world:
        customer = _customer(world)["id"]
        seat = world.prices["seat"]
        bad_forms: list[tuple[str, dict[str, str]]] = [
            ("/v1/subscriptions", {"customer": customer, "items": "x"}),
            ("/v1/subscriptions", {"customer": customer, "items[0]": "x"}),
            (
                "/v1/subscriptions",
                {"customer": customer, "items[0][price]": seat, "items[0][quantity]": "two"},
            ),
            (
                "/v1/subscriptions",
                {"customer": customer, "items[0][price]": seat, "items[0][quantity]": "-1"},
            ),
            (
                "/v1/subscriptions",
                {"customer": customer, "items[0][price]": seat, "items[1][price]": seat},
            ),
            (
                "/v1/subscriptions",
                {
                    "customer": customer,
                    "items[0][price]": world.prices["usage"],
                    "items[0][quantity]": "3",
                },
            ),
            (
                "/v1/subscriptions",
                {"customer": customer, "items[0][price]": seat, "collection_method": "cash"},
            ),
            (
                "/v1/subscriptions",
                {"customer": customer, "items[0][price]": seat, "cancel_at": "1"},
            ),
            ("/v1/customers", {"metadata": "x"}),
            ("/v1/customers", {"metadata[k]": "v" * 501}),
            ("/v1/customers", {"name": "a", "name[x]": "b"}),
            ("/v1/prices", {"product": "prod_missing", "currency": "eur", "unit_amount": "1"}),
            ("/v1/prices", {"product": "x", "currency": "euro"}),
            ("/v1/refunds", {}),
            ("/v1/credit_notes", {"invoice": "in_missing"}),
            ("/v1/invoices/in_missing/pay", {}),
        ]
        for path, data in bad_forms:
            answer = world.post(path, data)
            assert 400 <= answer.status_code < 500, (path, data, answer.text)
            assert answer.json()["error"]["type"] == "invalid_request_error", answer.text
        raw = world.http.post(
            "/v1/customers",
            content=b"name=\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert raw.status_code == 400
        sub = _subscribe(world, customer)
        paid = world.http.get(f"/v1/invoices/{sub['latest_invoice']}").json()
        for path in ("pay", "void", "finalize"):
            again = world.post(f"/v1/invoices/{paid['id']}/{path}", {})
            assert again.status_code == 400, (path, again.text)
        assert world.sandbox.count("subscription") == 1
