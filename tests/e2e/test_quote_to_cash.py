"""Quote-to-cash end to end: a deal won in the CRM sandbox becomes exactly one customer and
one sales order in the ERP sandbox, one subscription with only the recurring and usage lines
in the billing sandbox, and every milestone back on the CRM opportunity — through the real
``concord serve`` (inbound, relay, NATS, subscribers, connectors, the process manager)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.q2c_support import Estate, estate


def _process(world: Estate, any_id: str) -> dict[str, Any] | None:
    answer = world.api("GET", f"/v1/processes/{any_id}")
    return answer.json() if answer.status_code == 200 else None


def test_a_won_deal_reaches_every_system_once(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    with estate(database_url, pg_schema, nats_url, stream_name, tmp_path) as world:
        crm = world.crm_sandbox
        account = crm.create_account("Initech", website="https://initech.example")
        deal = world.deal(account, "Initech platform")

        def paid() -> dict[str, Any] | None:
            found = _process(world, deal)
            return found if found and found["status"] == "done" else None

        process = world.wait(paid, "the deal's process to end paid", deal)
        assert world.erp_sandbox.count("customer") == 1
        assert world.erp_sandbox.count("salesOrder") == 1
        assert world.billing_sandbox.count("subscription") == 1
        (subscription,) = world.billing_sandbox.all("subscription")
        items = subscription["items"]["data"]
        assert sorted(i["price"]["id"] for i in items) == sorted(
            [world.prices[("SEATS", "USD")], world.prices[("API", "USD")]]
        )
        opportunity = crm.get("Opportunity", deal)
        assert opportunity["Concord_ERP_Order_Number__c"] == process["erp_order_number"]
        for milestone in ("Ordered", "ERP_Accepted", "Activated", "First_Invoice", "Paid"):
            assert opportunity[f"Concord_{milestone}_At__c"], milestone
