"""Quote-to-cash end to end: a deal won in the CRM sandbox becomes exactly one customer and
one sales order in the ERP sandbox, one subscription with only the recurring and usage lines
in the billing sandbox, and every milestone back on the CRM opportunity — through the real
``concord serve`` (inbound, relay, NATS, subscribers, connectors, the process manager)."""

from __future__ import annotations

from datetime import UTC, datetime
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
        milestones = ("Ordered", "ERP_Accepted", "Activated", "First_Invoice", "Paid")

        def shown() -> dict[str, Any] | None:
            found = crm.get("Opportunity", deal)
            return found if all(found[f"Concord_{m}_At__c"] for m in milestones) else None

        # The CRM subscriber runs beside the process manager: its last write may come after.
        opportunity = world.wait(shown, "every milestone on the opportunity", deal)
        assert opportunity["Concord_ERP_Order_Number__c"] == process["erp_order_number"]
        assert opportunity["Concord_Status__c"] == "Paid"

        # The reconciled metrics (the metrics projection follows the same events): the deal
        # books its lines' total on its close date (setup 1,500 + seats 10 x 1,200 over the
        # term + usage 1,000 x 0.05), ACV is the seats' 10 x 100.00 x 12; billing's first
        # invoice (the seats' first month, usage billed in arrears) is billed and paid on
        # the day billing issued it.
        (invoice,) = world.billing_sandbox.all("invoice")
        issued = datetime.fromtimestamp(invoice["created"], UTC).strftime("%Y-%m")

        def month(wanted: str) -> dict[str, Any] | None:
            answer = world.api("GET", f"/v1/metrics?from=2026-01&to={issued}&currency=USD")
            rows = {r["month"]: r for r in answer.json()["items"]} if answer.is_success else {}
            row = rows.get(wanted)
            return row if row and (row["bookings"] != "0.00" or row["cash"] != "0.00") else None

        january = world.wait(lambda: month("2026-01"), "January's bookings", deal)
        assert (january["bookings"], january["acv"]) == ("13550.00", "12000.00")
        billed = world.wait(lambda: month(issued), "the invoice month's billings", deal)
        assert (billed["billings"], billed["cash"]) == ("1000.00", "1000.00")
