"""The CRM sandbox's CDC through Concord's real Salesforce inbound: a deal won in the sandbox
places exactly one order (also when every message arrives twice), the account hierarchy
registers parent and child, and Concord's own milestone writes come back as ignored echoes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.connectors.exact_json import dumps_exact as dumps
from adapters.sandbox.base import serve_in_thread
from adapters.sandbox.crm import CrmSandbox
from tests.e2e.conftest import Api
from tests.e2e.inbound_support import (
    load_catalogue,
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    state,
)
from tests.e2e.salesforce_support import deliver, lookup, statuses


def _deliver_all(api: Api, messages: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for message in messages:
        response = deliver(api, dumps(message))
        assert response.status_code in (200, 202), response.text
        found += statuses(response)
    return found


def _orders_of(api: Api, opportunity: str) -> int:
    order_id = lookup(api, "order", opportunity)
    if order_id is None:
        return 0
    events = api.get(f"/v1/orders/{order_id}/events").json()["events"]
    return sum(1 for e in events if e["type"] == "OrderPlaced")


@pytest.mark.parametrize("twice", [False, True])
def test_a_deal_won_in_the_sandbox_places_one_order(api: Api, twice: bool) -> None:
    sandbox = CrmSandbox()
    parent = sandbox.create_account("Vandelay Holding", website="https://vandelay.example")
    child = sandbox.create_account(
        "Vandelay Berlin", parent_id=parent, website="https://vandelay-berlin.example"
    )
    seat = sandbox.create_product("Seat", "SEAT", prices={"EUR": "120.00"})
    setup = sandbox.create_product("Setup", "SETUP", prices={"EUR": "900.00"})
    load_catalogue(
        api,
        [
            {
                "sku": "SEAT",
                "charge_type": "recurring",
                "billing_period": "month",
                "ids": {"crm_product_ids": [seat]},
            },
            {"sku": "SETUP", "charge_type": "one_time", "ids": {"crm_product_ids": [setup]}},
        ],
    )
    deal = sandbox.create_opportunity(
        child, "Vandelay platform", close_date="2026-03-31", currency="EUR", term_months=24
    )
    sandbox.add_line(deal, seat, quantity=25, service_date="2026-04-01")
    sandbox.add_line(deal, setup, quantity=1, unit_price="750.00")
    before_win = list(sandbox.cdc)
    assert "applied" in _deliver_all(api, before_win)
    assert _orders_of(api, deal) == 0  # not won yet
    sandbox.win(deal)
    won = sandbox.cdc[len(before_win) :]
    _deliver_all(api, won)
    if twice:
        again = _deliver_all(api, sandbox.cdc)
        assert set(again) == {"duplicate"}
    assert _orders_of(api, deal) == 1
    order = state(api, "orders", str(lookup(api, "order", deal)))
    assert order["opportunity_id"] == deal
    assert order["term_months"] == 24 and order["currency"] == "EUR"
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in order["lines"]] == [
        ("SEAT", "25", "120.00"),
        ("SETUP", "1", "750.00"),
    ]
    parent_id, child_id = lookup(api, "customer", parent), lookup(api, "customer", child)
    assert parent_id is not None and order["customer_id"] == child_id
    assert state(api, "customers", str(child_id))["parent_customer_id"] == parent_id


def test_concords_own_milestone_write_is_an_ignored_echo(api: Api) -> None:
    sandbox = CrmSandbox()
    with serve_in_thread(sandbox) as running, httpx.Client(base_url=running.url) as http:
        account = sandbox.create_account("Kramerica Industries")
        deal = sandbox.create_opportunity(account, "Kramerica deal", close_date="2026-03-31")
        start = len(sandbox.cdc)
        patched = http.patch(
            f"/services/data/v60.0/sobjects/Opportunity/{deal}",
            json={"Concord_Status__c": "Ordered", "Concord_Ordered_At__c": "2026-03-31T10:00:00Z"},
            headers={"Authorization": "Bearer t", "Sforce-Call-Options": "client=concord"},
        )
        assert patched.status_code == 204
    _deliver_all(api, sandbox.cdc[:start])
    echo = sandbox.cdc[start:]
    assert len(echo) == 1
    response = deliver(api, dumps(echo[0]))
    assert response.status_code == 202 and statuses(response) == ["ignored"]
    assert "echo" in response.json()["results"][0]["detail"]["reason"]


def test_changing_a_won_deals_lines_amends_its_order(api: Api) -> None:
    sandbox = CrmSandbox()
    account = sandbox.create_account("Pendant Publishing", website="https://pendant.example")
    seat = sandbox.create_product("Seat", "SEAT", prices={"USD": "120.00"})
    load_catalogue(
        api,
        [
            {
                "sku": "SEAT",
                "charge_type": "recurring",
                "billing_period": "month",
                "ids": {"crm_product_ids": [seat]},
            }
        ],
    )
    deal = sandbox.create_opportunity(account, "Pendant seats", close_date="2026-03-31")
    line = sandbox.add_line(deal, seat, quantity=10)
    sandbox.win(deal)
    _deliver_all(api, sandbox.cdc)
    order_id = lookup(api, "order", deal)
    assert order_id is not None
    start = len(sandbox.cdc)
    sandbox.update("OpportunityLineItem", line, {"Quantity": 25})  # the upgrade
    assert "applied" in _deliver_all(api, sandbox.cdc[start:])
    order = state(api, "orders", str(order_id))
    assert [(ln["sku"], ln["quantity"]) for ln in order["lines"]] == [("SEAT", "25")]
    events = api.get(f"/v1/orders/{order_id}/events").json()["events"]
    assert [e["type"] for e in events].count("OrderAmended") == 1
    # The same messages again amend nothing.
    assert set(_deliver_all(api, sandbox.cdc[start:])) == {"duplicate"}


def test_a_subsidiary_on_its_parents_domain_is_a_customer_of_its_own(api: Api) -> None:
    """The same web domain is a sure match — but never to the account's own parent."""
    sandbox = CrmSandbox()
    parent = sandbox.create_account("Globex Holdings", website="https://globex.example")
    child = sandbox.create_account(
        "Globex Europe", parent_id=parent, website="https://globex.example/eu"
    )
    _deliver_all(api, sandbox.cdc)
    parent_id, child_id = lookup(api, "customer", parent), lookup(api, "customer", child)
    assert parent_id is not None and child_id is not None and parent_id != child_id
    assert state(api, "customers", str(child_id))["parent_customer_id"] == parent_id
