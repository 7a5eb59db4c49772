"""Salesforce CDC end to end: accounts and hierarchy, won deals assembled from mirrors,
dedupe, holds, signatures, malformed messages, 15 → 18 character ids."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.salesforce import to_18
from tests.e2e.conftest import Api, assert_problem
from tests.e2e.inbound_support import (
    SALESFORCE_OLD_SECRET,
    mapped,  # noqa: F401  (the catalogue fixture)
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    unique_name,
)
from tests.e2e.salesforce_support import (
    JAN_1_MS,
    account,
    body_of,
    cdc,
    deliver,
    line_item,
    lookup,
    opportunity,
    product,
    sf_id,
    signature,
    state,
    statuses,
    update,
    won,
)

pytestmark = pytest.mark.usefixtures("mapped")

ACME = sf_id("001", 1)
GLOBEX = sf_id("001", 2)
PLATFORM = sf_id("01t", 1)
SUPPORT = sf_id("01t", 2)


def held(api: Api) -> list[dict[str, Any]]:
    response = api.get("/v1/inbound/held")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def catalogue(api: Api) -> None:
    """The products exist before anyone sells them (CDC delivers them first)."""
    messages = [
        product(PLATFORM, "PLAT-1", "Platform seat"),
        product(SUPPORT, "SUP-SETUP", "Onboarding", charge="One-Time"),
    ]
    response = deliver(api, messages)
    assert response.status_code == 202, response.text
    assert statuses(response) == ["ignored", "ignored"]  # mirrored only


def test_account_create_registers_the_customer_with_crm_fields_only(api: Api) -> None:
    response = deliver(api, account(ACME, "Acme GmbH"))
    assert response.status_code == 200, response.text
    assert statuses(response) == ["applied"]
    customer_id = lookup(api, "customer", ACME)
    assert customer_id is not None
    customer = state(api, "customers", customer_id)
    assert customer["legal_name"] == "Acme GmbH"
    assert customer["web_domain"] == "acme.example"
    assert customer["billing_address"] == {
        "line1": "Hauptstraße 1",
        "line2": "Gebäude B",
        "city": "Berlin",
        "region": None,
        "postal_code": "10115",
        "country": "DE",
    }
    assert customer["currency"] is None  # the ERP's field: CRM's CurrencyIsoCode not sent
    events = api.get(f"/v1/customers/{customer_id}/events").json()["events"]
    assert [e["type"] for e in events] == ["CustomerRegistered"]
    provenance = events[0]["provenance"]
    assert provenance["occurred_at"].startswith("2026-01-01T00:00:00")  # commitTimestamp
    assert provenance["source_record_id"] == to_18(ACME)
    logged = api.get(f"/v1/inbound/{provenance['causation_id'].split(':')[1]}").json()
    assert logged["event_id"] == f"tx-{ACME}:1:{to_18(ACME)}"
    assert logged["event_type"] == "Account.CREATE"
    assert logged["verification"].startswith("hmac-sha256")
    assert "x-concord-signature" not in logged["headers"]


def test_update_with_only_changed_fields_keeps_the_others(api: Api) -> None:
    assert deliver(api, account(ACME, "Acme GmbH")).status_code == 200
    customer_id = lookup(api, "customer", ACME)
    assert customer_id is not None
    website = update(
        "Account", to_18(ACME), {"Website": "acme-group.example"}, after_ms=5000, tx="tx-web"
    )
    city = update(
        "Account",
        ACME,
        {"BillingAddress": {"City": "Potsdam"}},
        after_ms=6000,
        tx="tx-city",
        changed=["BillingAddress.City", "LastModifiedDate"],
    )
    response = deliver(api, [website, city])
    assert response.status_code == 200, response.text
    customer = state(api, "customers", customer_id)
    assert customer["web_domain"] == "acme-group.example"
    assert customer["legal_name"] == "Acme GmbH"  # not in the UPDATE: kept
    assert customer["billing_address"]["city"] == "Potsdam"
    assert customer["billing_address"]["line1"] == "Hauptstraße 1"  # from the mirror
    before = api.total_events()
    phone = update("Account", ACME, {"Phone": "+49 30 7654321"}, after_ms=7000, tx="tx-phone")
    response = deliver(api, phone)
    assert response.status_code == 202
    assert statuses(response) == ["ignored"]
    # An older change arriving late never regresses the newer value.
    late = update("Account", ACME, {"Website": "old-acme.example"}, after_ms=4000, tx="tx-late")
    assert deliver(api, late).status_code == 200
    assert state(api, "customers", customer_id)["web_domain"] == "acme-group.example"
    assert api.total_events() == before
    renamed = update("Account", ACME, {"Name": "Acme Group GmbH"}, after_ms=8000, tx="tx-name")
    assert deliver(api, renamed).status_code == 200
    customer = state(api, "customers", customer_id)
    assert (customer["legal_name"], customer["display_name"]) == ("Acme Group GmbH",) * 2
    assert customer["web_domain"] == "acme-group.example"


def test_child_account_before_its_parent_is_held_then_applied(api: Api) -> None:
    child = deliver(api, account(GLOBEX, "Globex Berlin", parent=ACME, at_ms=JAN_1_MS + 10))
    assert child.status_code == 202, child.text
    assert statuses(child) == ["held"]
    waiting = held(api)
    assert [h["waiting_for"] for h in waiting] == [
        {"system": "crm", "entity": "customer", "external_id": to_18(ACME)}
    ]
    assert lookup(api, "customer", GLOBEX) is None
    parent = deliver(api, account(ACME, "Acme Holding"))
    assert parent.status_code == 200, parent.text
    parent_id, child_id = lookup(api, "customer", ACME), lookup(api, "customer", GLOBEX)
    assert parent_id is not None and child_id is not None
    assert state(api, "customers", child_id)["parent_customer_id"] == parent_id
    assert held(api) == []
    # Re-parenting to nothing: ParentId nulled in an UPDATE detaches the child.
    detach = update(
        "Account", GLOBEX, {}, after_ms=20, tx="tx-detach", changed=["ParentId", "LastModifiedDate"]
    )
    assert deliver(api, detach).status_code == 200
    assert state(api, "customers", child_id)["parent_customer_id"] is None


def test_update_before_create_waits_for_the_create(api: Api) -> None:
    early = update("Account", ACME, {"Name": "Acme Renamed GmbH"}, after_ms=5000, tx="tx-early")
    assert statuses(deliver(api, early)) == ["held"]
    assert deliver(api, account(ACME, "Acme GmbH")).status_code == 200
    customer_id = lookup(api, "customer", ACME)
    assert customer_id is not None
    customer = state(api, "customers", customer_id)
    assert customer["legal_name"] == "Acme Renamed GmbH"  # the newer value, from the mirror
    assert customer["billing_address"]["city"] == "Berlin"  # the CREATE's, not lost
    assert held(api) == []


_deal_numbers = itertools.count(100)


def deal_messages(n: int) -> tuple[str, str, list[dict[str, Any]]]:
    """A whole deal: account, opportunity (Amount = its lines), two lines, closed won."""
    acct, opp = sf_id("001", n), sf_id("006", n)
    lines = [sf_id("00k", n * 10 + 1), sf_id("00k", n * 10 + 2)]
    return (
        acct,
        opp,
        [
            account(acct, unique_name(n)),
            opportunity(opp, acct, amount=12500.5, term=24),
            line_item(lines[0], opp, PLATFORM, quantity=10.0, unit_price=1200.05, total=12000.5),
            line_item(
                lines[1],
                opp,
                SUPPORT,
                quantity=1.0,
                unit_price=500.0,
                total=500.0,
                service_date="2026-03-15",
                seq=2,
            ),
            won(opp),
        ],
    )


def assert_deal_ordered(api: Api, acct: str, opp: str) -> None:
    order_id = lookup(api, "order", opp)
    assert order_id is not None
    order = state(api, "orders", order_id)
    assert order["customer_id"] == lookup(api, "customer", acct)
    assert order["opportunity_id"] == to_18(opp)
    lines = [(x["sku"], x["quantity"], x["unit_price"], x["charge_type"]) for x in order["lines"]]
    assert lines == [
        ("PLAT-1", "10", "1200.05", "recurring"),
        ("SUP-SETUP", "1", "500.00", "one_time"),
    ]
    assert order["currency"] == "EUR"
    assert order["totals"]["total"] == {"amount": "12500.50", "currency": "EUR"}
    assert order["booking_date"] == "2026-03-31"  # CloseDate
    assert order["start_date"] == "2026-03-15"  # the earliest ServiceDate
    assert order["term_months"] == 24
    events = api.get(f"/v1/orders/{order_id}/events").json()["events"]
    assert [e["type"] for e in events] == ["OrderPlaced"]


def test_a_won_deal_in_order_places_one_order_with_every_line(api: Api) -> None:
    catalogue(api)
    acct, opp, messages = deal_messages(1)
    for message in messages:
        assert deliver(api, message).status_code in (200, 202)
    assert_deal_ordered(api, acct, opp)
    # Another won-side update after the order: nothing more.
    again = won(opp, at_ms=JAN_1_MS + 20_000, stage="Closed Won - Signed", tx="tx-again")
    assert statuses(deliver(api, again)) == ["ignored"]
    assert held(api) == []


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_shuffled_deliveries_of_a_deal_reach_the_same_order(api: Api, data: st.DataObject) -> None:
    catalogue_once(api)
    acct, opp, messages = deal_messages(next(_deal_numbers))
    shuffled = data.draw(st.permutations(messages))
    for message in shuffled:
        response = deliver(api, message)
        assert response.status_code in (200, 202), response.text
    assert_deal_ordered(api, acct, opp)
    assert held(api) == []


def catalogue_once(api: Api) -> None:
    """The catalogue for every example (already there after the first: duplicates)."""
    messages = [
        product(PLATFORM, "PLAT-1", "Platform seat"),
        product(SUPPORT, "SUP-SETUP", "Onboarding", charge="One-Time"),
    ]
    assert deliver(api, messages).status_code in (200, 202)


def test_line_item_update_with_only_changed_fields_and_a_late_line(api: Api) -> None:
    catalogue(api)
    acct, opp = sf_id("001", 7), sf_id("006", 7)
    first, second = sf_id("00k", 71), sf_id("00k", 72)
    deliver(api, account(acct, "Initech GmbH"))
    deliver(api, opportunity(opp, acct, amount=3000.0))
    deliver(api, line_item(first, opp, PLATFORM, quantity=1.0, unit_price=1000.0, total=1000.0))
    more = update(
        "OpportunityLineItem",
        first,
        {"Quantity": 2.0, "TotalPrice": 2000.0},
        after_ms=3000,
        tx="tx-qty",
    )
    deliver(api, more)
    response = deliver(api, won(opp))
    assert statuses(response) == ["ignored"]  # lines add up to 2000, Amount is 3000
    assert "waiting for the other line items" in response.json()["results"][0]["detail"]["reason"]
    assert lookup(api, "order", opp) is None
    late = line_item(second, opp, SUPPORT, quantity=1.0, unit_price=1000.0, total=1000.0, seq=2)
    assert statuses(deliver(api, late)) == ["applied"]  # the last piece places the order
    order_id = lookup(api, "order", opp)
    assert order_id is not None
    lines = state(api, "orders", order_id)["lines"]
    assert [(x["sku"], x["quantity"]) for x in lines] == [("PLAT-1", "2"), ("SUP-SETUP", "1")]


def test_won_deal_of_an_unknown_account_waits_for_it(api: Api) -> None:
    catalogue(api)
    acct, opp = sf_id("001", 8), sf_id("006", 8)
    deliver(api, opportunity(opp, acct, amount=100.0))
    deliver(
        api, line_item(sf_id("00k", 81), opp, PLATFORM, quantity=1.0, unit_price=100.0, total=100.0)
    )
    response = deliver(api, won(opp))
    assert statuses(response) == ["held"]
    assert response.json()["results"][0]["waiting_for"] == f"crm customer {to_18(acct)}"
    assert deliver(api, account(acct, "Umbrella GmbH")).status_code == 200
    assert lookup(api, "order", opp) is not None
    assert held(api) == []


def test_zero_and_three_decimal_currencies(api: Api) -> None:
    catalogue(api)
    cases = {"JPY": (125000.0, "125000"), "KWD": (12.345, "12.345")}
    for n, (currency, (price, expected)) in enumerate(cases.items(), start=20):
        acct, opp = sf_id("001", n), sf_id("006", n)
        deliver(api, account(acct, f"{currency} customer"))
        deliver(api, opportunity(opp, acct, amount=price, currency=currency))
        line = line_item(
            sf_id("00k", n), opp, PLATFORM, quantity=1.0, unit_price=price, total=price
        )
        deliver(api, line)
        assert statuses(deliver(api, won(opp))) == ["applied"]
        order_id = lookup(api, "order", opp)
        assert order_id is not None
        order = state(api, "orders", order_id)
        assert order["lines"][0]["unit_price"] == expected
        assert order["totals"]["total"] == {"amount": expected, "currency": currency}


def test_duplicate_and_cross_channel_deliveries_have_one_effect(api: Api) -> None:
    message = account(ACME, "Acme GmbH")
    assert statuses(deliver(api, message)) == ["applied"]
    before = api.total_events()
    assert statuses(deliver(api, message)) == ["duplicate"]
    # The same change heard on /data/ChangeEvents (another replayId): the same event.
    other = {**message, "channel": "/data/ChangeEvents"}
    other["data"] = {**message["data"], "event": {"replayId": 999_999}}
    assert statuses(deliver(api, other)) == ["duplicate"]
    assert api.total_events() == before


def test_one_message_naming_several_records_is_one_event_each(api: Api) -> None:
    deliver(api, [account(ACME, "Acme GmbH"), account(GLOBEX, "Globex GmbH")])
    bulk = update(
        "Account", [ACME, GLOBEX], {"Website": "shared.example"}, after_ms=5000, tx="tx-bulk"
    )
    response = deliver(api, bulk)
    assert response.status_code == 200, response.text
    assert [r["event_id"] for r in response.json()["results"]] == [
        f"tx-bulk:1:{to_18(ACME)}",
        f"tx-bulk:1:{to_18(GLOBEX)}",
    ]
    for record in (ACME, GLOBEX):
        customer_id = lookup(api, "customer", record)
        assert customer_id is not None
        assert state(api, "customers", customer_id)["web_domain"] == "shared.example"


def test_signature_matrix_and_nothing_logged_when_refused(api: Api) -> None:
    body = body_of(account(ACME, "Acme GmbH"))
    refused = {
        "wrong secret": signature(body, "not-the-secret"),
        "tampered body": signature(body.replace(b"Acme GmbH", b"Evil GmbH")),
        "missing header": "",
        "garbage header": "zz-not-hex",
    }
    answers = {case: deliver(api, body, sig) for case, sig in refused.items()}
    assert {case: r.status_code for case, r in answers.items()} == dict.fromkeys(refused, 401)
    assert_problem(answers["tampered body"], 401, "webhook-unverified")
    assert api.get("/v1/inbound").json()["items"] == []
    rotated = deliver(api, body, signature(body, SALESFORCE_OLD_SECRET))
    assert rotated.status_code == 200, rotated.text
    upper = deliver(api, body, signature(body).upper())  # hex is case-insensitive
    assert statuses(upper) == ["duplicate"]


def test_malformed_messages_name_the_field_and_store_nothing(api: Api) -> None:
    before = api.total_events()
    bad_date = opportunity(sf_id("006", 9), ACME, amount=1.0)
    bad_date["data"]["payload"]["CloseDate"] = "31/03/2026"
    response = deliver(api, [account(ACME, "Acme GmbH"), bad_date])
    assert_problem(response, 422, "validation-failed", field="body.1.data.payload.CloseDate")
    no_time = account(ACME, "Acme GmbH")
    del no_time["data"]["payload"]["ChangeEventHeader"]["commitTimestamp"]
    assert_problem(
        deliver(api, no_time),
        422,
        "validation-failed",
        field="body.data.payload.ChangeEventHeader.commitTimestamp",
    )
    bad_id = account("001-not-an-id", "Acme GmbH")
    assert_problem(
        deliver(api, bad_id),
        422,
        "validation-failed",
        field="body.data.payload.ChangeEventHeader.recordIds.0",
    )
    bad_type = account(ACME, "Acme GmbH")
    bad_type["data"]["payload"]["ChangeEventHeader"]["changeType"] = "UPSERT"
    assert_problem(
        deliver(api, bad_type),
        422,
        "validation-failed",
        field="body.data.payload.ChangeEventHeader.changeType",
    )
    assert_problem(deliver(api, b"[{]"), 422, "validation-failed", field="body.0")
    assert_problem(deliver(api, b"[]"), 422, "validation-failed", field="body")
    assert api.get("/v1/inbound").json()["items"] == []
    assert api.total_events() == before


def test_objects_and_events_concord_does_not_follow_are_ignored(api: Api) -> None:
    contact = cdc(
        "Contact", "CREATE", [sf_id("003", 1)], {"LastName": "Doe"}, at_ms=JAN_1_MS, tx="c"
    )
    gap = cdc("Account", "GAP_UPDATE", [ACME], {}, at_ms=JAN_1_MS, tx="gap")
    echo = account(ACME, "Acme GmbH")
    echo["data"]["payload"]["ChangeEventHeader"]["changeOrigin"] = (
        "com/salesforce/api/rest/62.0;client=concord"
    )
    contract = cdc(
        "Contract",
        "CREATE",
        [sf_id("800", 1)],
        {"AccountId": ACME, "Status": "Draft", "StartDate": "2026-04-01", "ContractTerm": 12},
        at_ms=JAN_1_MS,
        tx="ctr",
    )
    response = deliver(api, [contact, gap, echo, contract])
    assert response.status_code == 202, response.text
    assert statuses(response) == ["ignored"] * 4
    reasons = [r["detail"]["reason"] for r in response.json()["results"]]
    assert "Contact" in reasons[0] and "gap event" in reasons[1] and "echo" in reasons[2]
    assert lookup(api, "customer", ACME) is None
