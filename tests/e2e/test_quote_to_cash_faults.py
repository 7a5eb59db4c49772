"""Quote-to-cash under the faults real systems have: six deals (a parent/child hierarchy,
USD and EUR, one account winning twice) through an ERP outage of 429s, billing 5xx and a
billing call applied but answered too late, duplicated webhooks from billing and the CRM,
and ERP webhooks retried after Concord could not be reached — and still, per deal, one ERP
customer per account, one sales order, one subscription, every CRM milestone and the whole
lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from adapters.netsuite.outbound import HOLD_FIELD, HOLD_REASON_FIELD
from tests.e2e.q2c_checks import Deal, assert_once_everywhere, process_is
from tests.e2e.q2c_support import estate, wait_until
from tests.e2e.serving import free_port


def test_six_deals_through_outages_errors_timeouts_and_duplicates_reach_each_system_once(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    with estate(database_url, pg_schema, nats_url, stream_name, tmp_path) as world:
        crm, erp, billing = world.crm_sandbox, world.erp_sandbox, world.billing_sandbox
        parent = crm.create_account("Globex Holdings", website="https://globex.example")
        child = crm.create_account(
            "Globex Europe", parent_id=parent, website="https://globex-europe.example"
        )
        initech = crm.create_account("Initech", website="https://initech.example")
        umbrella = crm.create_account("Umbrella", website="https://umbrella.example")
        hooli = crm.create_account("Hooli", website="https://hooli.example")

        # The ERP says no for a few seconds, as NetSuite does when the account is busy.
        erp.faults.add(
            {
                "kind": "outage",
                "seconds": 3,
                "status": 429,
                "code": "CONCURRENCY_LIMIT_EXCEEDED",
                "retry_after": 1,
            }
        )
        # Billing: two 503s, then a subscription created but answered after the client gave
        # up (10 s), and a customer likewise: the retries must find what was made.
        billing.faults.add(
            {"kind": "error", "status": 503, "count": 2, "path": "/v1/subscriptions"}
        )
        billing.faults.add(
            {
                "kind": "timeout",
                "seconds": 12,
                "count": 1,
                "method": "POST",
                "path": "/v1/subscriptions",
            }
        )
        billing.faults.add(
            {
                "kind": "timeout",
                "seconds": 12,
                "count": 1,
                "method": "POST",
                "path": "/v1/customers",
            }
        )
        billing.faults.add({"kind": "duplicate_webhook", "count": 6})
        crm.faults.add({"kind": "duplicate_webhook", "count": 6})
        # Concord unreachable for the ERP's first push-backs: NetSuite retries them.
        erp_hooks = erp.webhooks.url
        erp.webhooks.configure(f"http://127.0.0.1:{free_port()}/v1/webhooks/netsuite")

        deals = [
            Deal(world.deal(parent, "Globex platform"), parent, "USD"),
            Deal(world.deal(child, "Globex EU platform", currency="EUR"), child, "EUR"),
            Deal(world.deal(initech, "Initech platform", seats=25), initech, "USD"),
            Deal(world.deal(umbrella, "Umbrella", currency="EUR", setup=False), umbrella, "EUR"),
            Deal(world.deal(hooli, "Hooli year one", seats=5), hooli, "USD"),
            Deal(world.deal(hooli, "Hooli expansion", usage=50, setup=False), hooli, "USD"),
        ]

        wait_until(
            lambda: any(d.error and not d.delivered for d in erp.webhooks.deliveries.values()),
            "an ERP push-back that could not reach Concord",
            120,
        )
        erp.webhooks.configure(erp_hooks)

        assert_once_everywhere(
            world, deals, accounts=[parent, child, initech, umbrella, hooli], timeout=240
        )
        outage = [c for c in erp.calls if c.status == 429]
        late = [c for c in billing.calls if c.fault in ("error", "timeout")]
        assert outage and len(late) == 4, (outage, late)
        assert any(d.duplicated for d in billing.webhooks.deliveries.values())
        assert any(d.duplicated for d in crm.webhooks.deliveries.values())
        assert any(d.attempts > 1 and d.delivered for d in erp.webhooks.deliveries.values())
        exceptions = world.api("GET", "/v1/exceptions").json()
        assert _items(exceptions) == [], exceptions


def _items(body: dict[str, object]) -> list[object]:
    items = body.get("items", [])
    assert isinstance(items, list)
    return items


REFUSAL = "This account cannot create subscriptions: no payment method on file"


def test_billing_refusing_the_subscription_holds_the_order_in_the_erp_and_tells_the_crm(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    with estate(database_url, pg_schema, nats_url, stream_name, tmp_path) as world:
        crm, erp, billing = world.crm_sandbox, world.erp_sandbox, world.billing_sandbox
        refused = httpx.post(
            f"{world.billing.url}/_admin/refuse_subscriptions", json={"message": REFUSAL}
        )
        assert refused.status_code == 200, refused.text
        account = crm.create_account("Soylent", website="https://soylent.example")
        deal = world.deal(account, "Soylent platform")

        process = world.wait(
            lambda: process_is(world, deal, "on_hold"), "the order held", deal, 180
        )
        assert process["reason"].startswith("billing refused the subscription")
        assert REFUSAL in process["reason"]
        steps = {s["step"]: s for s in process["steps"]}
        assert steps["billing_subscription"]["status"] == "failed"
        assert steps["erp_order"]["status"] == "done"
        # The dead letter, and the hold of the contract behind it (later events wait).
        dead = [d for d in process["deliveries"] if d.get("dead_letter_id") is not None]
        assert [(d["target"], d["event_type"]) for d in dead] == [("billing", "ContractCreated")]
        assert REFUSAL in dead[0]["error"]

        def held_in_erp() -> dict[str, Any] | None:
            found = erp.by_external_id("salesOrder", deal)
            return found if found and found.get(HOLD_FIELD) is True else None

        order = world.wait(held_in_erp, "the sales order on hold in the ERP", deal)
        assert REFUSAL in order[HOLD_REASON_FIELD]

        def held_in_crm() -> dict[str, Any] | None:
            found = crm.get("Opportunity", deal)
            return found if found["Concord_Status__c"] == "On hold" else None

        opportunity = world.wait(held_in_crm, "the opportunity showing the hold", deal)
        assert opportunity["Concord_Status_Reason__c"] == process["reason"]
        assert opportunity["Concord_ERP_Accepted_At__c"]  # what happened before stays shown

        assert billing.count("subscription") == 0
        assert erp.count("salesOrder") == 1 and erp.count("customer") == 1
        listed = world.api("GET", "/v1/exceptions", params={"reason": "dead_letter"}).json()
        items = [i for g in listed["groups"] for i in g["items"]]
        assert len(items) == 1, listed
        assert REFUSAL in str(items[0]), items
