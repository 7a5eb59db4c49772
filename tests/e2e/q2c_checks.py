"""What "exactly once" means for a set of won deals, checked in the sandboxes' records and
in Concord's own reads (processes, lineage): the assertions the quote-to-cash fault tests
share, so each test says only what it breaks and how.

Why counts and per-deal lookups both: a total alone hides a deal with two orders beside a
deal with none; a per-deal lookup alone hides a stray record nobody asked about.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.e2e.q2c_support import Estate

MILESTONES = ("Ordered", "ERP_Accepted", "Activated", "First_Invoice", "Paid")
#: The kinds a paid deal's lineage links, from the CRM opportunity to the cash.
CHAIN = ("opportunity", "order", "contract", "invoice", "payment")


@dataclass(frozen=True)
class Deal:
    """A won opportunity and what it was won for."""

    opportunity: str
    account: str
    currency: str


def process_is(world: Estate, deal: str, status: str) -> dict[str, Any] | None:
    found = world.process(deal)
    return found if found and found["status"] == status else None


def wait_done(world: Estate, deals: list[Deal], timeout: float = 240) -> dict[str, dict[str, Any]]:
    """Every deal's process ended paid (generous: retries under faults back off for real)."""
    return {
        d.opportunity: world.wait(
            lambda d=d: process_is(world, d.opportunity, "done"),
            f"deal {d.opportunity} to end paid",
            d.opportunity,
            timeout,
        )
        for d in deals
    }


def assert_once_everywhere(
    world: Estate, deals: list[Deal], accounts: list[str], timeout: float = 240
) -> None:
    """Per account one ERP customer and one billing customer; per deal one sales order and
    one subscription in the deal's currency; every milestone on the CRM opportunity; the
    lineage linking opportunity → order → contract → invoice → payment."""
    processes = wait_done(world, deals, timeout)
    erp, billing = world.erp_sandbox, world.billing_sandbox

    customers = Counter(r.get("externalId") for r in erp.all("customer"))
    assert customers == Counter(accounts), customers
    orders = Counter(r.get("externalId") for r in erp.all("salesOrder"))
    assert orders == Counter(d.opportunity for d in deals), orders

    subscriptions = billing.all("subscription")
    by_deal = Counter(s["metadata"].get("sf_opportunity_id") for s in subscriptions)
    assert by_deal == Counter(d.opportunity for d in deals), by_deal
    currency = {s["metadata"]["sf_opportunity_id"]: s["currency"] for s in subscriptions}
    assert currency == {d.opportunity: d.currency.lower() for d in deals}
    for subscription in subscriptions:
        prices = {item["price"]["currency"] for item in subscription["items"]["data"]}
        assert prices == {subscription["currency"]}, subscription["items"]
    billed = {d.account for d in deals}
    assert billing.count("customer") == len(billed), billing.all("customer")

    for deal in deals:
        opportunity = world.wait(
            lambda deal=deal: _shows_every_milestone(world, deal.opportunity),
            f"every milestone on {deal.opportunity}",
            deal.opportunity,
            timeout,
        )
        process = processes[deal.opportunity]
        assert opportunity["Concord_ERP_Order_Number__c"] == process["erp_order_number"]
        assert opportunity["Concord_Status__c"] == "Paid"
        assert_lineage(world, deal.opportunity, timeout)


def _shows_every_milestone(world: Estate, opportunity: str) -> dict[str, Any] | None:
    found = world.crm_sandbox.get("Opportunity", opportunity)
    return found if all(found[f"Concord_{m}_At__c"] for m in MILESTONES) else None


def lineage_kinds(world: Estate, any_id: str) -> dict[str, set[str]]:
    answer = world.api("GET", f"/v1/lineage/{any_id}")
    if answer.status_code != 200:
        return {}
    kinds: dict[str, set[str]] = {}
    for node in answer.json()["nodes"]:
        kinds.setdefault(node["kind"], set()).add(node["id"])
    return kinds


def assert_lineage(world: Estate, opportunity: str, timeout: float = 120) -> dict[str, set[str]]:
    """The deal's lineage (found by the CRM opportunity id) holds the whole chain, one order
    and one contract (the lineage view is a projection: it may trail the process)."""

    def linked() -> dict[str, set[str]] | None:
        kinds = lineage_kinds(world, opportunity)
        return kinds if all(kinds.get(k) for k in CHAIN) else None

    kinds: dict[str, set[str]] = world.wait(
        linked, f"the lineage of {opportunity}", opportunity, timeout
    )
    assert kinds["opportunity"] == {opportunity}, kinds
    assert len(kinds["order"]) == 1 and len(kinds["contract"]) == 1, kinds
    return kinds
