"""Identity and mappings across the inbound adapters: CRM accounts are matched before they
create a customer, ERP and billing customers without linked ids are matched before they
link, and every order, contract and invoice line takes the catalogue's SKU (held until it
is mapped)."""

from __future__ import annotations

from typing import Any

from adapters.salesforce import to_18
from tests.e2e import hubspot_support as hubspot
from tests.e2e import salesforce_support as sf
from tests.e2e.chargebee_support import customer as cb_customer
from tests.e2e.chargebee_support import deliver as cb_deliver
from tests.e2e.chargebee_support import event as cb_event
from tests.e2e.conftest import Api
from tests.e2e.inbound_support import (
    post_webhook,
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    state,
    stripe_event,
    stripe_invoice,
)
from tests.e2e.netsuite_support import envelope, netsuite_signature, ns_customer
from tests.e2e.test_webhooks_stripe import deliver as stripe_deliver
from tests.e2e.test_webhooks_stripe import linked_customer


def held(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get("/v1/inbound/held").json()["items"]
    return items


def statuses(response: Any) -> list[str]:
    return [r["status"] for r in response.json()["results"]]


def customer(api: Api, name: str, role: str = "crm", **fields: Any) -> str:
    response = api.post("/v1/customers", {"legal_name": name, **fields}, role=role)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def customers(api: Api) -> int:
    return len(api.get("/v1/customers", params={"limit": 100}).json()["items"])


def put_mapping(api: Api, sku: str, body: dict[str, Any], role: str = "admin") -> None:
    """Define a product (the ERP owns the item master; an operator defines for everyone)."""
    response = api.http.put(f"/v1/mappings/{sku}", json=body, headers=api.headers(role))
    assert response.status_code in (200, 201), response.text


# -- product mappings -----------------------------------------------------------------------


def test_salesforce_line_of_an_unmapped_product_holds_the_deal_until_it_is_mapped(
    api: Api,
) -> None:
    acct, opp, product = sf.sf_id("001", 61), sf.sf_id("006", 61), sf.sf_id("01t", 61)
    assert sf.deliver(api, sf.account(acct, "Vandelay Industries")).status_code == 200
    sf.deliver(api, sf.opportunity(opp, acct, amount=900.0))
    line = sf.line_item(
        sf.sf_id("00k", 61), opp, product, quantity=3.0, unit_price=300.0, total=900.0
    )
    sf.deliver(api, line)
    response = sf.deliver(api, sf.won(opp))
    assert sf.statuses(response) == ["held"]
    assert response.json()["results"][0]["waiting_for"] == f"crm product {to_18(product)}"
    [waiting] = held(api)
    assert waiting["waiting_for"] == {
        "system": "crm",
        "entity": "product",
        "external_id": to_18(product),
    }
    assert sf.lookup(api, "order", opp) is None  # never booked under a guessed SKU
    put_mapping(
        api,
        "LATEX-1",
        {"charge_type": "one_time", "name": "Latex", "ids": {"crm_product_ids": [to_18(product)]}},
        role="admin",
    )
    order_id = sf.lookup(api, "order", opp)
    assert order_id is not None
    [placed] = state(api, "orders", order_id)["lines"]
    assert (placed["sku"], placed["charge_type"], placed["quantity"]) == (
        "LATEX-1",
        "one_time",
        "3",
    )
    assert held(api) == []


def test_hubspot_line_item_of_an_unmapped_product_holds_the_deal(api: Api) -> None:
    company, deal = 7_100_000, 7_100_100
    events = hubspot.company_events(company, "Kramerica Industries") + hubspot.deal_events(
        deal, company, [(deal + 1, "UNMAPPED-SKU", "2", "50.00")]
    )
    assert hubspot.deliver(api, events).status_code in (200, 202)
    assert hubspot.lookup(api, "order", deal) is None
    assert {h["waiting_for"]["external_id"] for h in held(api)} == {"UNMAPPED-SKU"}
    body = {"charge_type": "recurring", "billing_period": "month", "ids": {}}
    body["ids"] = {"crm_product_ids": ["UNMAPPED-SKU"]}  # its hs_product_id in the support
    put_mapping(api, "KRAM-SEAT", body)
    order_id = hubspot.lookup(api, "order", deal)
    assert order_id is not None
    assert [x["sku"] for x in state(api, "orders", order_id)["lines"]] == ["KRAM-SEAT"]
    assert held(api) == []


def test_stripe_invoice_line_of_an_unmapped_price_is_held_then_issued_with_the_sku(
    api: Api,
) -> None:
    linked_customer(api)
    body = stripe_invoice("in_unmapped", "cus_Acme", subscription="sub_1")
    body["lines"]["data"][0]["pricing"]["price_details"]["price"] = "price_new_tier"
    response = stripe_deliver(
        api, stripe_event("invoice.finalized", body, "evt_inv_new", 1767312000)
    )
    assert statuses(response) == ["held"]
    assert response.json()["results"][0]["waiting_for"] == "billing product price_new_tier"
    mapping = {"charge_type": "recurring", "billing_period": "month"}
    put_mapping(api, "TIER-NEW", mapping | {"ids": {"billing_price_ids": ["price_new_tier"]}})
    found = api.get("/v1/lookup/billing/invoice/in_unmapped")
    assert found.status_code == 200, found.text
    assert [x["sku"] for x in found.json()["aggregate"]["state"]["lines"]] == ["TIER-NEW"]
    assert held(api) == []


# -- customer matching ----------------------------------------------------------------------


def test_salesforce_account_of_a_legal_form_variant_is_reviewed_then_linked(api: Api) -> None:
    acme = customer(api, "Acme GmbH")
    before = customers(api)
    record = sf.sf_id("001", 62)
    response = sf.deliver(api, sf.account(record, "ACME G.m.b.H.", website="https://acme.de"))
    assert sf.statuses(response) == ["held"]
    assert (
        response.json()["results"][0]["waiting_for"]
        == f"review customer salesforce:{to_18(record)}"
    )
    [review] = api.get("/v1/matches").json()["items"]
    assert [c["customer_id"] for c in review["candidates"]] == [acme]
    assert sf.lookup(api, "customer", record) is None  # neither linked on a guess nor created
    decided = api.post(f"/v1/matches/{review['id']}/link", {"customer_id": acme}, role="admin")
    assert decided.status_code == 200, decided.text
    assert sf.lookup(api, "customer", record) == acme
    assert customers(api) == before  # no duplicate
    linked = state(api, "customers", acme)
    assert linked["external_ids"]["crm"] == to_18(record)
    assert linked["legal_name"] == "ACME G.m.b.H."  # the CRM owns names: its account's
    assert linked["web_domain"] == "acme.de"
    assert held(api) == []


def test_salesforce_account_of_a_known_web_domain_links_without_review(api: Api) -> None:
    known = customer(api, "Initrode Ltd", web_domain="initrode.example")
    record = sf.sf_id("001", 63)
    message = sf.account(record, "Initrode UK", website="https://www.initrode.example/")
    assert sf.statuses(sf.deliver(api, message)) == ["applied"]
    assert sf.lookup(api, "customer", record) == known
    assert api.get("/v1/matches").json()["items"] == []
    events = [e["type"] for e in api.get(f"/v1/customers/{known}/events").json()["events"]]
    assert events[-2:] == ["CustomerLinked", "CustomerDetailsChanged"]


def test_salesforce_account_matching_nobody_registers_and_a_new_decision_registers(
    api: Api,
) -> None:
    customer(api, "Hooli Inc.")
    record = sf.sf_id("001", 64)
    assert sf.statuses(sf.deliver(api, sf.account(record, "HOOLI, INC"))) == ["held"]
    [review] = api.get("/v1/matches").json()["items"]
    assert api.post(f"/v1/matches/{review['id']}/new", role="admin").status_code == 200
    registered = sf.lookup(api, "customer", record)
    assert (
        registered is not None and state(api, "customers", registered)["legal_name"] == "HOOLI, INC"
    )
    other = sf.sf_id("001", 65)
    assert sf.statuses(sf.deliver(api, sf.account(other, "Pied Piper GmbH"))) == ["applied"]
    assert sf.lookup(api, "customer", other) is not None


def test_hubspot_company_variant_is_reviewed_and_an_exact_domain_links(api: Api) -> None:
    globex = customer(api, "Globex Corporation", web_domain="globex.example")
    umbrella = customer(api, "Umbrella Corp")
    same_domain = 7_200_000
    # The domain arrives before the name (HubSpot sends properties one event at a time):
    # once a name is there, the company is matched, by its domain.
    events = [
        hubspot.event("company.creation", same_domain),
        hubspot.prop("company", same_domain, "domain", "globex.example", at=hubspot.T0 + 1),
        hubspot.prop("company", same_domain, "name", "Globex", at=hubspot.T0 + 2),
    ]
    assert hubspot.deliver(api, events).status_code in (200, 202)
    assert hubspot.lookup(api, "customer", same_domain) == globex
    variant = 7_200_100
    response = hubspot.deliver(api, hubspot.company_events(variant, "Umbrella Corporation"))
    assert "held" in statuses(response)
    [review] = api.get("/v1/matches").json()["items"]
    assert review["source"] == "hubspot" and review["external_id"] == str(variant)
    decided = api.post(f"/v1/matches/{review['id']}/link", {"customer_id": umbrella}, role="admin")
    assert decided.status_code == 200, decided.text
    assert hubspot.lookup(api, "customer", variant) == umbrella
    assert held(api) == []


def test_netsuite_customer_without_external_id_links_by_exact_tax_id(api: Api) -> None:
    # The ERP owns tax ids: an operator registered the customer with it.
    known = customer(api, "Soylent Corp", role="admin", tax_id="DE 999.888.777")
    record = ns_customer("811", None, vat="DE999888777") | {"companyName": "Soylent Corporation"}
    body = envelope("customer", record, "ns-cus-811")
    response = post_webhook(api, "netsuite", body, "X-Concord-Signature", netsuite_signature(body))
    assert response.status_code in (200, 202), response.text
    found = api.get("/v1/lookup/erp/customer/811")
    assert found.status_code == 200, found.text
    assert found.json()["id"] == known
    assert api.get("/v1/matches").json()["items"] == []


def test_chargebee_customer_without_account_is_reviewed_then_linked(api: Api) -> None:
    acme = customer(api, "Acme GmbH")
    orphan = cb_customer("CbOrphan1", account=None) | {"company": "ACME gmbh."}
    response = cb_deliver(
        api, cb_event("customer_created", "ev_orphan", 1767225600, customer=orphan)
    )
    assert statuses(response) == ["held"]
    [review] = api.get("/v1/matches").json()["items"]
    assert review["source"] == "chargebee"
    api.post(f"/v1/matches/{review['id']}/link", {"customer_id": acme}, role="admin")
    assert state(api, "customers", acme)["external_ids"]["billing"] == "CbOrphan1"
    assert held(api) == []
