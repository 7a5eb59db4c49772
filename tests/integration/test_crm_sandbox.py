"""The CRM sandbox: Salesforce REST shapes, upserts, errors, limits, and CDC that Concord's
Salesforce inbound side verifies and reads (echoes of Concord's own writes included)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.inbound.source import Incoming
from adapters.salesforce import to_18
from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.cdc import changes, messages
from adapters.sandbox.base import Sandbox, json_response, serve_in_thread
from adapters.sandbox.crm import CrmSandbox, build, loads

SECRET = "crm-sandbox-secret"
API = "/services/data/v60.0"
AUTH = {"Authorization": "Bearer 00DSb000000TOKEN!sandbox"}


@pytest.fixture
def crm() -> Iterator[tuple[CrmSandbox, httpx.Client]]:
    sandbox = CrmSandbox(SECRET)
    with (
        serve_in_thread(sandbox) as running,
        httpx.Client(base_url=running.url, headers=AUTH) as http,
    ):
        yield sandbox, http


def errors(response: httpx.Response) -> list[tuple[str, list[str]]]:
    body = response.json()
    assert isinstance(body, list), body
    return [(e["errorCode"], e["fields"]) for e in body]


def test_create_get_and_patch_in_salesforce_shapes(crm: tuple[CrmSandbox, httpx.Client]) -> None:
    sandbox, http = crm
    created = http.post(f"{API}/sobjects/Account", json={"Name": "Acme GmbH"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["success"] is True and body["errors"] == []
    account = body["id"]
    assert len(account) == 18 and account.startswith("001") and to_18(account) == account
    assert created.headers["Sforce-Limit-Info"] == "api-usage=1/15000"
    child = http.post(
        f"{API}/sobjects/Account", json={"Name": "Acme Berlin", "ParentId": account[:15]}
    ).json()["id"]
    read = http.get(f"{API}/sobjects/Account/{child}").json()
    assert read["attributes"] == {"type": "Account", "url": f"{API}/sobjects/Account/{child}"}
    assert read["ParentId"] == account  # a 15-character id is stored in its 18-character form
    patched = http.patch(f"{API}/sobjects/Account/{child}", json={"Website": "acme.example"})
    assert patched.status_code == 204 and patched.content == b""
    assert sandbox.get("Account", child)["Website"] == "acme.example"
    assert patched.headers["Sforce-Limit-Info"] == "api-usage=4/15000"


def test_opportunity_derives_won_closed_and_amount_from_lines(
    crm: tuple[CrmSandbox, httpx.Client],
) -> None:
    sandbox, http = crm
    account = sandbox.create_account("Globex AG", currency="EUR")
    product = sandbox.create_product("Platform seat", "PLAT-1", prices={"EUR": "1200.05"})
    opportunity = sandbox.create_opportunity(account, "Globex deal", close_date="2026-03-31")
    assert opportunity.startswith("006")
    first = sandbox.add_line(opportunity, product, quantity=10, service_date="2026-04-01")
    assert first.startswith("00k")
    entry = sandbox.get("OpportunityLineItem", first)["PricebookEntryId"]
    assert entry.startswith("01u") and product.startswith("01t")
    second = http.post(
        f"{API}/sobjects/OpportunityLineItem",
        json={
            "OpportunityId": opportunity,
            "PricebookEntryId": entry,
            "Quantity": 2,
            "TotalPrice": 1000.5,
            "Term_Months__c": 12,
        },
    )
    assert second.status_code == 201, second.text
    line = sandbox.get("OpportunityLineItem", second.json()["id"])
    assert (line["UnitPrice"], line["TotalPrice"]) == (Decimal("500.25"), Decimal("1000.50"))
    deal = sandbox.get("Opportunity", opportunity)
    assert deal["Amount"] == Decimal("13001.00") and deal["HasOpportunityLineItem"] is True
    assert (deal["IsWon"], deal["IsClosed"]) == (False, False)
    refused = http.patch(f"{API}/sobjects/Opportunity/{opportunity}", json={"Amount": 5})
    assert errors(refused) == [("FIELD_INTEGRITY_EXCEPTION", ["Amount"])]
    http.patch(f"{API}/sobjects/OpportunityLineItem/{first}", json={"Quantity": 5})
    assert sandbox.get("Opportunity", opportunity)["Amount"] == Decimal("7000.75")
    sandbox.win(opportunity)
    won = http.get(f"{API}/sobjects/Opportunity/{opportunity}").json()
    assert (won["IsWon"], won["IsClosed"], won["Probability"]) == (True, True, 100)
    assert won["Amount"] == 7000.75
    lost = http.patch(
        f"{API}/sobjects/Opportunity/{opportunity}", json={"StageName": "Closed Lost"}
    )
    assert lost.status_code == 204
    assert sandbox.get("Opportunity", opportunity)["IsWon"] is False
    assert sandbox.get("Opportunity", opportunity)["IsClosed"] is True


def test_upsert_by_external_id(crm: tuple[CrmSandbox, httpx.Client]) -> None:
    sandbox, http = crm
    url = f"{API}/sobjects/Account/External_Id__c/ACME-1"
    created = http.patch(url, json={"Name": "Acme"})
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    again = http.patch(url, json={"Name": "Acme GmbH"})
    assert again.status_code == 204
    assert sandbox.count("Account") == 1
    assert sandbox.all("Account")[0]["Name"] == "Acme GmbH"
    assert http.get(url).json()["Name"] == "Acme GmbH"
    sandbox.create_account("Acme duplicate", External_Id__c="ACME-2")
    sandbox.create_account("Acme duplicate 2", External_Id__c="ACME-2")
    several = http.patch(f"{API}/sobjects/Account/External_Id__c/ACME-2", json={"Name": "X"})
    assert several.status_code == 300
    assert len(several.json()) == 2 and all("/sobjects/Account/001" in u for u in several.json())
    unknown = http.patch(f"{API}/sobjects/Account/Nope__c/1", json={"Name": "X"})
    assert errors(unknown) == [("NOT_FOUND", [])] and unknown.status_code == 404
    mismatch = http.patch(url, json={"Name": "X", "External_Id__c": "OTHER"})
    assert errors(mismatch) == [("INVALID_FIELD", ["External_Id__c"])]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        (
            "POST",
            "Opportunity",
            {"Name": "Deal"},
            400,
            [("REQUIRED_FIELD_MISSING", ["StageName", "CloseDate"])],
        ),
        (
            "POST",
            "Account",
            {"Name": "A", "Colour__c": "red"},
            400,
            [("INVALID_FIELD", ["Colour__c"])],
        ),
        (
            "POST",
            "Opportunity",
            {"Name": "D", "StageName": "Won-ish", "CloseDate": "2026-01-01"},
            400,
            [("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["StageName"])],
        ),
        (
            "POST",
            "Opportunity",
            {"Name": "D", "StageName": "Closed Won", "CloseDate": "2026-02-30"},
            400,
            [("JSON_PARSER_ERROR", ["CloseDate"])],
        ),
        (
            "POST",
            "Opportunity",
            {"Name": "D", "StageName": "Closed Won", "CloseDate": "2026-02-01", "IsWon": True},
            400,
            [("INVALID_FIELD_FOR_INSERT_UPDATE", ["IsWon"])],
        ),
        (
            "POST",
            "Account",
            {"Name": "A", "ParentId": "not-an-id"},
            400,
            [("MALFORMED_ID", ["ParentId"])],
        ),
        (
            "POST",
            "Account",
            {"Name": "A", "ParentId": "001Sb0000000999"},
            400,
            [("INVALID_CROSS_REFERENCE_KEY", ["ParentId"])],
        ),
        ("POST", "Account", [1, 2], 400, [("JSON_PARSER_ERROR", [])]),
        ("POST", "Widget", {"Name": "A"}, 404, [("NOT_FOUND", [])]),
        ("GET", "Account/xyz", None, 400, [("MALFORMED_ID", [])]),
        ("GET", "Account/006Sb0000000001", None, 400, [("MALFORMED_ID", [])]),
        ("GET", "Account/001Sb0000000777", None, 404, [("NOT_FOUND", [])]),
        ("PATCH", "Account/001Sb0000000777", {"Name": "A"}, 404, [("NOT_FOUND", [])]),
    ],
)
def test_refusals_are_salesforce_error_arrays(
    crm: tuple[CrmSandbox, httpx.Client],
    method: str,
    path: str,
    body: Any,
    status: int,
    expected: list[tuple[str, list[str]]],
) -> None:
    sandbox, http = crm
    response = http.request(method, f"{API}/sobjects/{path}", json=body)
    assert response.status_code == status, response.text
    assert errors(response) == expected
    assert "Sforce-Limit-Info" in response.headers
    assert sandbox.count("Account") == 0 and sandbox.count("Opportunity") == 0
    assert sandbox.cdc == []


def test_bad_json_and_missing_session(crm: tuple[CrmSandbox, httpx.Client]) -> None:
    sandbox, http = crm
    bad = http.post(
        f"{API}/sobjects/Account", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert errors(bad) == [("JSON_PARSER_ERROR", [])]
    anonymous = http.post(
        f"{API}/sobjects/Account", json={"Name": "A"}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    assert errors(anonymous) == [("INVALID_SESSION_ID", [])]
    assert sandbox.count("Account") == 0
    wrong_version = http.get(f"{API.replace('v60.0', 'latest')}/limits")
    assert wrong_version.status_code == 404


def test_daily_allocation_runs_out_with_request_limit_exceeded() -> None:
    sandbox = CrmSandbox(daily_limit=3)
    with (
        serve_in_thread(sandbox) as running,
        httpx.Client(base_url=running.url, headers=AUTH) as http,
    ):
        for n in range(3):
            ok = http.post(f"{API}/sobjects/Account", json={"Name": f"A{n}"})
            assert ok.headers["Sforce-Limit-Info"] == f"api-usage={n + 1}/3"
        refused = http.post(f"{API}/sobjects/Account", json={"Name": "A3"})
        assert refused.status_code == 403
        assert errors(refused) == [("REQUEST_LIMIT_EXCEEDED", [])]
        assert refused.headers["Sforce-Limit-Info"] == "api-usage=3/3"
        assert sandbox.count("Account") == 3
        assert http.post("/_admin/limits", json={"max": 10, "used": 9}).json() == {
            "max": 10,
            "used": 9,
        }
        assert http.get(f"{API}/limits").json() == {"DailyApiRequests": {"Max": 10, "Remaining": 0}}
        assert http.post("/_admin/limits", json={"max": -1}).status_code == 422


def test_the_allocation_renews_after_a_day() -> None:
    now = [1_800_000_000.0]
    sandbox = CrmSandbox(daily_limit=1, clock=lambda: now[0])
    with (
        serve_in_thread(sandbox) as running,
        httpx.Client(base_url=running.url, headers=AUTH) as http,
    ):
        assert http.get(f"{API}/limits").status_code == 200
        assert http.get(f"{API}/limits").status_code == 403
        now[0] += 86_400
        renewed = http.get(f"{API}/limits")
        assert renewed.status_code == 200
        assert renewed.headers["Sforce-Limit-Info"] == "api-usage=1/1"


def test_injected_faults_use_the_error_array(crm: tuple[CrmSandbox, httpx.Client]) -> None:
    sandbox, http = crm
    sandbox.faults.add(
        {"kind": "error", "status": 503, "code": "UNABLE_TO_LOCK_ROW", "retry_after": 2}
    )
    locked = http.post(f"{API}/sobjects/Account", json={"Name": "A"})
    assert locked.status_code == 503 and locked.headers["Retry-After"] == "2"
    assert locked.json() == [
        {"message": "injected error", "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}
    ]
    assert "Sforce-Limit-Info" in locked.headers
    assert sandbox.count("Account") == 0


class Receiver(Sandbox):
    """Concord's webhook endpoint stand-in: keeps each delivery's body and headers."""

    name = "receiver"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[bytes, dict[str, str]]] = []

    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/webhooks/salesforce", self._hook, methods=["POST"])]

    async def _hook(self, request: Request) -> Response:
        self.received.append((await request.body(), dict(request.headers)))
        return json_response({"results": []}, 200)


def _wait(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_cdc_is_signed_and_read_by_the_salesforce_inbound_adapter() -> None:
    adapter = SalesforceAdapter()
    receiver = Receiver()
    with serve_in_thread(receiver) as hook:
        sandbox = build(0, f"{hook.url}/v1/webhooks/salesforce", SECRET)
        with (
            serve_in_thread(sandbox) as running,
            httpx.Client(base_url=running.url, headers=AUTH) as http,
        ):
            parent = sandbox.create_account("Acme Holding", website="https://acme.example")
            child = sandbox.create_account("Acme Berlin", parent_id=parent, BillingCity="Berlin")
            product = sandbox.create_product("Seat", "PLAT-1", prices={"USD": "100.00"})
            deal = sandbox.create_opportunity(child, "Deal", close_date="2026-03-31")
            sandbox.add_line(deal, product, quantity=3)
            echo = http.patch(
                f"{API}/sobjects/Opportunity/{deal}",
                json={"Concord_Status__c": "Ordered"},
                headers={"Sforce-Call-Options": "client=concord"},
            )
            assert echo.status_code == 204
            http.patch(f"{API}/sobjects/Account/{child}", json={"BillingCity": "Potsdam"})
            sandbox.win(deal)
            _wait(lambda: sandbox.webhooks.pending == 0 and len(receiver.received) == 10)
    seen: list[tuple[str, str, str, Any]] = []
    for raw, headers in receiver.received:
        incoming = Incoming("POST", hook.url, headers, raw, datetime.now(UTC))
        assert adapter.verify(incoming, [SECRET]).startswith("hmac-sha256")
        for event in adapter.split(incoming):
            (message,) = messages(event.raw)
            (change,) = changes(message.document, "body")
            seen.append(
                (event.event_type, change.record_id, change.header.change_origin or "", change)
            )
    types = [s[0] for s in seen]
    assert types == [
        "Account.CREATE",
        "Account.CREATE",
        "Product2.CREATE",
        "PricebookEntry.CREATE",
        "Opportunity.CREATE",
        "OpportunityLineItem.CREATE",
        "Opportunity.UPDATE",  # Amount = the line's total, in the line's transaction
        "Opportunity.UPDATE",  # Concord's milestone (an echo)
        "Account.UPDATE",
        "Opportunity.UPDATE",  # won
    ]
    by_type = {(s[0], s[1]): s[3] for s in seen}
    created_child = by_type[("Account.CREATE", child)]
    assert created_child.fields["ParentId"] == parent
    assert created_child.fields["BillingAddress.City"] == "Berlin"
    city = by_type[("Account.UPDATE", child)]
    assert city.fields["BillingAddress.City"] == "Potsdam" and "Name" not in city.fields
    assert city.header.changed_fields == ["BillingAddress.City", "LastModifiedDate"]
    echoes = [s for s in seen if "client=concord" in s[2]]
    assert [e[2] for e in echoes] == ["com/salesforce/api/rest/60.0;client=concord"]
    assert echoes[0][3].fields["Concord_Status__c"] == "Ordered"
    won = seen[-1][3]
    assert won.fields["IsWon"] is True and won.fields["StageName"] == "Closed Won"
    line = by_type[("OpportunityLineItem.CREATE", seen[5][1])]
    assert line.fields["TotalPrice"] == Decimal("300.00")  # exact, never a float
    assert line.fields["Product2Id"] == product
    keys = {s[3].header.transaction_key for s in seen}
    assert len(keys) == 9  # the line and its Amount update share one transaction
    assert loads(receiver.received[0][0])["data"]["event"]["replayId"] == 1


def test_deleting_a_line_reprices_the_opportunity(crm: tuple[CrmSandbox, httpx.Client]) -> None:
    sandbox, http = crm
    account = sandbox.create_account("Hooli Inc")
    product = sandbox.create_product("Seat", "SEAT", prices={"USD": "10.00"})
    deal = sandbox.create_opportunity(account, "Hooli deal", close_date="2026-03-31")
    keep = sandbox.add_line(deal, product, quantity=2)
    drop = sandbox.add_line(deal, product, quantity=3)
    assert sandbox.get("Opportunity", deal)["Amount"] == Decimal("50.00")
    assert http.delete(f"{API}/sobjects/OpportunityLineItem/{drop}").status_code == 204
    assert sandbox.get("Opportunity", deal)["Amount"] == Decimal("20.00")
    header = sandbox.cdc[-2]["data"]["payload"]["ChangeEventHeader"]
    assert (header["changeType"], header["recordIds"]) == ("DELETE", [drop])
    assert sandbox.cdc[-1]["data"]["payload"]["Amount"] == Decimal("20.00")
    assert http.get(f"{API}/sobjects/OpportunityLineItem/{drop}").status_code == 404
    assert sandbox.get("OpportunityLineItem", keep)["TotalPrice"] == Decimal("20.00")
    sandbox.reset()
    assert sandbox.count("Account") == 0 and sandbox.cdc == [] and sandbox.api_used == 0
    assert sandbox.count("Pricebook2") == 1  # the standard price book is always there
