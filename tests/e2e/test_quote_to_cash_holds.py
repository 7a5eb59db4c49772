"""Deals that must wait, and a target that must not be written: a product with no ERP item
or billing price yet holds its deal (the workbench shows the unmapped SKU) until the mapping
is added, then the deal goes through once; with ``CONCORD_OUTBOUND=erp:observe`` the ERP
receives nothing while Concord records what it would have sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.e2e.q2c_checks import Deal, assert_once_everywhere, process_is
from tests.e2e.q2c_support import estate, wait_until


def _exception_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for group in body["groups"] for item in group["items"]]


def test_a_deal_with_an_unmapped_product_waits_and_goes_through_once_when_it_is_mapped(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    with estate(database_url, pg_schema, nats_url, stream_name, tmp_path) as world:
        crm = world.crm_sandbox
        account = crm.create_account("Cyberdyne", website="https://cyberdyne.example")
        deal = world.deal(account, "Cyberdyne premium", extra={"PREMIUM": 4})

        waiting = world.wait(lambda: process_is(world, deal, "waiting"), "the deal to wait", deal)
        assert waiting["waiting_for"] == ["sku:PREMIUM"]
        assert waiting["step"] == "validate"

        def unmapped() -> list[dict[str, Any]]:
            listed = world.api("GET", "/v1/exceptions", params={"reason": "unmapped_sku"})
            return _exception_items(listed.json())

        [item] = world.wait(unmapped, "the unmapped SKU in the workbench", deal)
        assert "PREMIUM" in str(item), item
        # Nothing went anywhere while it waited.
        assert world.erp_sandbox.count("salesOrder") == 0
        assert world.billing_sandbox.count("subscription") == 0

        world.map("PREMIUM")
        assert_once_everywhere(world, [Deal(deal, account, "USD")], accounts=[account])
        [subscription] = world.billing_sandbox.all("subscription")
        prices = {i["price"]["id"]: i["quantity"] for i in subscription["items"]["data"]}
        assert prices[world.prices[("PREMIUM", "USD")]] == 4
        [order] = world.erp_sandbox.all("salesOrder")
        assert "7004" in str(order), order
        wait_until(lambda: not unmapped(), "the unmapped SKU to leave the workbench", 60)


def test_observe_only_sends_the_erp_nothing_and_records_what_it_would_have_sent(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    observe = {"CONCORD_OUTBOUND": "erp:observe"}
    with estate(
        database_url, pg_schema, nats_url, stream_name, tmp_path, extra_env=observe
    ) as world:
        crm, erp = world.crm_sandbox, world.erp_sandbox
        account = crm.create_account("Oscorp", website="https://oscorp.example")
        deal = world.deal(account, "Oscorp platform")

        def at_erp_order() -> dict[str, Any] | None:
            found = world.process(deal)
            steps = {s["step"]: s["status"] for s in (found or {}).get("steps", [])}
            return found if steps.get("erp_order") == "sent" else None

        process = world.wait(at_erp_order, "the deal to wait for the ERP", deal)
        assert (process["status"], process["step"]) == ("running", "erp_order")

        def observed() -> list[tuple[str, str, str]]:
            with psycopg.connect(database_url, autocommit=True) as conn:
                rows = conn.execute(
                    sql.SQL(
                        "SELECT target, event_type, aggregate_id FROM {} ORDER BY observed_at"
                    ).format(sql.Identifier(pg_schema, "concord_observed_deliveries"))
                ).fetchall()
            return [(str(t), str(e), str(a)) for t, e, a in rows]

        order = str(process["process_id"])
        seen = world.wait(
            lambda: [r for r in observed() if r[1] == "OrderValidated"],
            "the validated order recorded for the ERP",
            deal,
        )
        assert seen == [("erp", "OrderValidated", order)]
        # The CRM, told of the order by the same events, was written to: only the ERP is cut.
        world.wait(
            lambda: crm.get("Opportunity", deal)["Concord_Ordered_At__c"],
            "the CRM's ordered milestone",
            deal,
        )
        assert {r[0] for r in observed()} == {"erp"}
        assert list(erp.calls) == []
        assert erp.count("customer") == 0 and erp.count("salesOrder") == 0
        assert world.process(deal)["step"] == "erp_order"
