"""The ERP sandbox speaks NetSuite: 204 + Location, upserts by externalId, NetSuite's error
shape, the account-wide concurrency limit, tax per line, and signed push-backs that
Concord's NetSuite inbound adapter accepts."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.inbound.model import Ref
from adapters.inbound.source import Incoming, Unverified
from adapters.netsuite.adapter import NetSuiteAdapter, load_exact
from adapters.sandbox.base import Running, Sandbox, json_response, serve_in_thread
from adapters.sandbox.erp import PREFIX, ErpSandbox, build, ns_json

SECRET = "ns_sandbox_secret"


class _Receiver(Sandbox):
    """Concord's webhook endpoint, recording raw bodies and headers."""

    name = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[bytes, dict[str, str]]] = []

    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/webhooks/netsuite", self._hook, methods=["POST"])]

    async def _hook(self, request: Request) -> Response:
        self.received.append((await request.body(), dict(request.headers)))
        return json_response({})


def _wait(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.fixture
def erp() -> Iterator[tuple[Running, httpx.Client]]:
    sandbox = ErpSandbox(secret=SECRET, items={"5001": "PLAT-1", "5002": "IMPL-FEE"})
    with serve_in_thread(sandbox) as running, httpx.Client(base_url=running.url) as http:
        yield running, http


def _id(response: httpx.Response) -> str:
    assert response.status_code == 204, response.text
    assert response.content == b""
    return response.headers["Location"].rsplit("/", 1)[-1]


def _detail(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) >= {"type", "title", "status", "o:errorDetails"}
    assert body["status"] == response.status_code
    detail: dict[str, Any] = body["o:errorDetails"][0]
    return detail


def _order(customer: str, *lines: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"entity": {"externalId": customer}, "item": {"items": list(lines)}, **extra}


def test_create_answers_204_with_the_id_in_location(erp: tuple[Running, httpx.Client]) -> None:
    running, http = erp
    created = http.post(f"{PREFIX}/customer", json={"companyName": "Acme GmbH"})
    customer_id = _id(created)
    assert created.headers["Location"].endswith(f"{PREFIX}/customer/{customer_id}")
    record = http.get(f"{PREFIX}/customer/{customer_id}").json()
    assert record["entityId"] == f"CUST{customer_id}"
    assert record["terms"]["refName"] == "Net 30"
    assert record["links"][0]["href"].endswith(f"/customer/{customer_id}")
    assert running.sandbox.count("customer") == 1


def test_upsert_by_external_id_never_makes_a_second_record(
    erp: tuple[Running, httpx.Client],
) -> None:
    running, http = erp
    first = _id(http.put(f"{PREFIX}/customer/eid:001ACME", json={"companyName": "Acme"}))
    again = _id(http.put(f"{PREFIX}/customer/eid:001ACME", json={"companyName": "Acme AG"}))
    assert first == again
    assert running.sandbox.count("customer") == 1
    record = http.get(f"{PREFIX}/customer/eid:001ACME").json()
    assert record["companyName"] == "Acme AG" and record["externalId"] == "001ACME"
    duplicate = http.post(f"{PREFIX}/customer", json={"companyName": "X", "externalId": "001ACME"})
    assert duplicate.status_code == 400 and _detail(duplicate)["o:errorCode"] == "USER_ERROR"
    listed = http.get(f"{PREFIX}/customer", params={"q": "externalId IS 001ACME"}).json()
    assert listed["totalResults"] == 1 and listed["items"][0]["id"] == first
    assert running.sandbox.count("customer") == 1


def test_errors_have_netsuites_shape(erp: tuple[Running, httpx.Client]) -> None:
    running, http = erp
    http.put(f"{PREFIX}/customer/eid:ACC1", json={"companyName": "Acme"})
    unknown_item = http.post(
        f"{PREFIX}/salesOrder", json=_order("ACC1", {"item": {"id": "9999"}, "quantity": 1})
    )
    assert unknown_item.status_code == 400
    detail = _detail(unknown_item)
    assert detail["o:errorCode"] == "INVALID_KEY_OR_REF"
    assert detail["o:errorPath"] == "item.items[0].item"
    unknown_customer = http.post(
        f"{PREFIX}/salesOrder", json=_order("NOPE", {"item": {"id": "5001"}, "rate": 1})
    )
    assert _detail(unknown_customer)["o:errorPath"] == "entity"
    missing = http.get(f"{PREFIX}/salesOrder/424242")
    assert missing.status_code == 404 and _detail(missing)["o:errorCode"] == "NONEXISTENT_ID"
    for bad in (b"{not json", b"[1]", b'{"companyName": 1}'):
        refused = http.post(f"{PREFIX}/customer", content=bad)
        assert refused.status_code == 400, bad
        assert _detail(refused)["o:errorCode"] in ("INVALID_CONTENT", "USER_ERROR")
    no_number = http.post(
        f"{PREFIX}/salesOrder", json=_order("ACC1", {"item": {"id": "5001"}, "rate": "ten"})
    )
    assert _detail(no_number)["o:errorPath"] == "item.items[0].rate"
    assert http.put(f"{PREFIX}/customer/17", json={}).status_code == 400
    assert http.get(f"{PREFIX}/widget").status_code == 404
    bad_query = http.get(f"{PREFIX}/customer", params={"q": "drop table"})
    assert bad_query.status_code == 400
    http.post("/_admin/faults", json={"kind": "error", "status": 503, "retry_after": 2})
    injected = http.get(f"{PREFIX}/customer/eid:ACC1")
    assert injected.status_code == 503 and injected.headers["Retry-After"] == "2"
    assert _detail(injected)["detail"] == "injected error"
    assert running.sandbox.count("salesOrder") == 0


def test_tax_per_line_from_the_tax_code_table(erp: tuple[Running, httpx.Client]) -> None:
    running, http = erp
    http.put(
        f"{PREFIX}/customer/eid:CA1",
        json={"companyName": "Sunny Inc", "taxCode": {"id": "US-CA"}},
    )
    order = _order(
        "CA1",
        {"item": {"id": "5001"}, "quantity": 3, "rate": Decimal("33.33")},
        {"item": {"id": "5002"}, "quantity": 1, "rate": Decimal("0.10")},
        {"item": {"id": "5002"}, "quantity": 1, "rate": 100, "taxCode": {"id": "EXEMPT"}},
        externalId="OPP1",
    )
    _id(http.put(f"{PREFIX}/salesOrder/eid:OPP1", content=ns_json(order)))
    stored = running.sandbox.by_external_id("salesOrder", "OPP1")
    assert stored is not None
    lines = stored["item"]["items"]
    # 99.99 x 7.25% = 7.249275 -> 7.25; 0.10 x 7.25% = 0.00725 -> 0.01; exempt -> 0
    assert [line["tax1Amt"] for line in lines] == [Decimal("7.25"), Decimal("0.01"), Decimal(0)]
    assert stored["subtotal"] == Decimal("200.09")
    assert stored["taxTotal"] == Decimal("7.26")
    assert stored["total"] == Decimal("207.35")
    assert stored["orderStatus"] == {"id": "B", "refName": "Pending Fulfillment"}
    assert stored["tranId"].startswith("SO")
    shown = http.get(f"{PREFIX}/salesOrder/eid:OPP1", params={"expandSubResources": "true"})
    assert load_exact(shown.content)["total"] == Decimal("207.35")  # a JSON number, exact
    assert "items" not in http.get(f"{PREFIX}/salesOrder/eid:OPP1").json()["item"]
    http.put(
        f"{PREFIX}/customer/eid:JP1",
        json={
            "companyName": "Tokyo KK",
            "currency": {"externalId": "JPY"},
            "taxCode": {"id": "US-CA"},
        },
    )
    yen = _order("JP1", {"item": {"id": "5001"}, "quantity": 1, "rate": 1999})
    _id(http.post(f"{PREFIX}/salesOrder", json=yen))
    (jp,) = [r for r in running.sandbox.all("salesOrder") if r["entity"]["refName"].endswith("KK")]
    assert jp["currency"]["refName"] == "JPY"
    assert jp["taxTotal"] == Decimal("145")  # 1999 x 7.25% = 144.9275 -> 145 yen


def test_tax_failure_refuses_order_and_invoice_saves(erp: tuple[Running, httpx.Client]) -> None:
    running, http = erp
    http.put(f"{PREFIX}/customer/eid:ACC1", json={"companyName": "Acme"})
    set_fail = http.post("/_admin/tax", json={"fail": True, "message": "Avalara timed out"})
    assert set_fail.status_code == 200 and set_fail.json()["fail"] is True
    order = _order("ACC1", {"item": {"id": "5001"}, "rate": 10})
    for kind in ("salesOrder", "invoice"):
        refused = http.post(f"{PREFIX}/{kind}", json=order)
        assert refused.status_code == 400
        detail = _detail(refused)
        assert detail["o:errorCode"] == "USER_ERROR"
        assert detail["detail"] == "Tax calculation failed: Avalara timed out"
    assert running.sandbox.count("salesOrder") == running.sandbox.count("invoice") == 0
    http.post("/_admin/tax", json={"fail": False})
    _id(http.post(f"{PREFIX}/salesOrder", json=order))
    for bad in ({"fail": "yes"}, {"codes": {"X": 150}}, {"codes": [1]}, [1]):
        assert http.post("/_admin/tax", json=bad).status_code == 422, bad
    assert http.post("/_admin/tax", content=b"{").status_code == 422
    assert http.post("/_admin/concurrency", json={"limit": 0}).status_code == 422


def test_concurrency_limit_is_account_wide(erp: tuple[Running, httpx.Client]) -> None:
    running, http = erp
    sandbox = running.sandbox
    assert isinstance(sandbox, ErpSandbox)
    http.post("/_admin/concurrency", json={"limit": 2})
    http.post("/_admin/faults", json={"kind": "latency", "count": 2, "seconds": 1.0})
    answers: list[int] = []

    def slow_call() -> None:
        with httpx.Client(base_url=running.url) as other:
            answers.append(other.get(f"{PREFIX}/customer").status_code)

    threads = [threading.Thread(target=slow_call) for _ in range(2)]
    for thread in threads:
        thread.start()
    _wait(lambda: sandbox.in_flight == 2)
    blocked = http.get(f"{PREFIX}/customer")
    assert blocked.status_code == 429
    detail = _detail(blocked)
    assert detail["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"
    assert detail["detail"] == "Concurrent request limit exceeded. Request blocked."
    for thread in threads:
        thread.join()
    assert answers == [200, 200]
    assert http.get(f"{PREFIX}/customer").status_code == 200
    assert http.get("/_admin/concurrency").json()["refused"] == 1


def test_payment_applies_to_the_invoice(erp: tuple[Running, httpx.Client]) -> None:
    running, http = erp
    http.put(f"{PREFIX}/customer/eid:ACC1", json={"companyName": "Acme"})
    invoice = _order("ACC1", {"item": {"id": "5001"}, "rate": 100, "tax1Amt": 19})
    invoice_id = _id(http.put(f"{PREFIX}/invoice/eid:in_1", json=invoice))
    stored = running.sandbox.by_external_id("invoice", "in_1")
    assert stored is not None and stored["total"] == Decimal(119)
    assert stored["dueDate"] == (dt.date.today() + dt.timedelta(days=30)).isoformat()
    payment = {
        "customer": {"externalId": "ACC1"},
        "payment": 119,
        "apply": {"items": [{"doc": {"externalId": "in_1"}, "apply": True, "amount": 119}]},
    }
    _id(http.put(f"{PREFIX}/customerPayment/eid:pay_1", json=payment))
    _id(http.put(f"{PREFIX}/customerPayment/eid:pay_1", json=payment))
    paid = http.get(f"{PREFIX}/invoice/{invoice_id}").json()
    assert paid["status"]["id"] == "Paid In Full" and paid["amountRemaining"] == 0
    assert running.sandbox.count("customerPayment") == 1
    too_much = {**payment, "payment": 100}
    refused = http.put(f"{PREFIX}/customerPayment/eid:pay_2", json=too_much)
    assert _detail(refused)["o:errorCode"] == "USER_ERROR"


def test_pushes_back_signed_records_concord_accepts() -> None:
    with serve_in_thread(_Receiver()) as concord:
        receiver = concord.sandbox
        assert isinstance(receiver, _Receiver)
        sandbox = build(f"{concord.url}/v1/webhooks/netsuite", SECRET)
        sandbox.webhooks.backoff = (0.05,)
        with serve_in_thread(sandbox) as running, httpx.Client(base_url=running.url) as http:
            http.put(f"{PREFIX}/customer/eid:001ACME", json={"companyName": "Acme"})
            order = _order("001ACME", {"item": {"id": "5001"}, "quantity": 2, "rate": 50})
            _id(http.put(f"{PREFIX}/salesOrder/eid:006OPP", json=order))
            _wait(lambda: sandbox.webhooks.pending == 0 and len(receiver.received) == 2)
    adapter = NetSuiteAdapter()
    order_id = uuid.uuid4()
    translations = []
    for raw, headers in receiver.received:
        incoming = Incoming("POST", "http://concord/v1/webhooks/netsuite", headers, raw, _now())
        assert adapter.verify(incoming, [SECRET]).startswith("hmac-sha256")
        with pytest.raises(Unverified):
            adapter.verify(incoming, ["another secret"])
        (event,) = adapter.split(incoming)
        translations.append((event.event_type, adapter.translate(event, _Known(order_id))))
    kinds = [kind for kind, _ in translations]
    assert kinds == ["customer", "salesOrder"]
    accepted = translations[1][1]
    (step,) = accepted.steps
    stored = sandbox.by_external_id("salesOrder", "006OPP")
    assert stored is not None
    assert (step.entity, step.command, step.target) == ("order", "accept", order_id)
    assert step.data == {"erp_order_number": stored["tranId"]}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Known:
    """The hub as the translator sees it: the opportunity's order is validated."""

    def __init__(self, order_id: UUID) -> None:
        self.order_id = order_id

    def lookup(self, ref: Ref) -> UUID | None:
        if (ref.system, ref.entity, ref.external_id) == ("crm", "order", "006OPP"):
            return self.order_id
        return None

    def state(self, entity: str, aggregate_id: UUID) -> dict[str, Any] | None:
        return {"status": "validated"} if aggregate_id == self.order_id else None

    def match(self, candidate: Any) -> Any:
        raise AssertionError("no matching expected")

    def decision(self, external_id: str) -> None:
        return None

    def mirror(self, object_name: str, record_id: str) -> None:
        return None
