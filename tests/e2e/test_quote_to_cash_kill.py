"""``kill -9`` mid-flow: the subscribers and the process manager run as processes of their
own (``concord subscribe``, ``concord process run``) beside ``concord serve --without
subscribers,process``; both are killed while the ERP holds a sales order call, a deal is won
while they are down, the subscriber is killed again while billing holds a subscription call
— and after the restarts every deal still has exactly one of everything."""

from __future__ import annotations

from pathlib import Path

from adapters.sandbox.base import FaultRule
from tests.e2e.q2c_checks import Deal, assert_once_everywhere
from tests.e2e.q2c_support import Estate, estate, wait_until

SALES_ORDERS = "/services/rest/record/v1/salesOrder"


def _held(world: Estate, rule: FaultRule, before: int, what: str) -> None:
    """Wait until a call is held by ``rule`` (its count went down: the call is sleeping)."""
    wait_until(lambda: rule.count is not None and rule.count < before, what, 120)


def test_killing_the_subscriber_and_the_process_manager_mid_flow_makes_nothing_twice(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    with estate(
        database_url, pg_schema, nats_url, stream_name, tmp_path, without="subscribers,process"
    ) as world:
        crm, erp, billing = world.crm_sandbox, world.erp_sandbox, world.billing_sandbox
        subscriber = world.start("subscribe")
        manager = world.start("process", "run")
        acme = crm.create_account("Acme", website="https://acme.example")
        wayne = crm.create_account("Wayne", website="https://wayne.example")
        tyrell = crm.create_account("Tyrell", website="https://tyrell.example")

        hold = erp.faults.add(
            {"kind": "latency", "seconds": 5, "count": 2, "method": "PUT", "path": SALES_ORDERS}
        )
        deals = [
            Deal(world.deal(acme, "Acme platform"), acme, "USD"),
            Deal(world.deal(wayne, "Wayne platform", currency="EUR"), wayne, "EUR"),
            Deal(world.deal(acme, "Acme expansion", setup=False), acme, "USD"),
        ]
        _held(world, hold, 2, "a sales order call held by the ERP")
        subscriber.kill9()
        manager.kill9()
        deals.append(Deal(world.deal(tyrell, "Tyrell platform", seats=3), tyrell, "USD"))

        late = billing.faults.add(
            {
                "kind": "latency",
                "seconds": 5,
                "count": 1,
                "method": "POST",
                "path": "/v1/subscriptions",
            }
        )
        subscriber = world.start("subscribe")
        manager = world.start("process", "run")
        _held(world, late, 1, "a subscription call held by billing")
        subscriber.kill9()
        world.start("subscribe")

        assert_once_everywhere(world, deals, accounts=[acme, wayne, tyrell], timeout=300)
        assert all(s.process.poll() is None for s in world.services[-2:])
