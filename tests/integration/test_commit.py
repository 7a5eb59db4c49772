"""The write path on real PostgreSQL: atomic multi-store commits, optimistic concurrency,
group commit isolation, idempotency receipts, cross-references, snapshots, upcasting and
durability across a restart."""

from __future__ import annotations

import threading
from pathlib import Path
from uuid import UUID, uuid4

import orjson
import psycopg
import pytest
from psycopg import sql

from adapters.bootstrap import Runtime, open_runtime
from adapters.settings import Settings
from hub.application.ports import Change
from hub.application.service import IdempotencyMismatch, Origin
from hub.domain.errors import ConcurrencyConflict, Overapplication, VersionMismatch
from tests.integration.commands import (
    item,
    new_contract,
    new_customer,
    new_invoice,
    new_order,
    new_payment,
    request,
    run,
)


def count_events(runtime: Runtime, table: str) -> int:
    schema = runtime.settings.schema_name
    assert runtime.settings.database_url
    with psycopg.connect(runtime.settings.database_url) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(f"{table}_events")
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_each_aggregate_type_has_its_own_events_table(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    new_order(runtime, customer)
    assert count_events(runtime, "customers") == 1
    assert count_events(runtime, "orders") == 1
    assert count_events(runtime, "payments") == 0


def test_concurrent_writers_on_one_aggregate_exactly_one_wins(runtime: Runtime) -> None:
    order = new_order(runtime, new_customer(runtime))
    accept = request(runtime, "order", "accept", {"erp_order_number": "SO-1"}, aggregate_id=order)
    reject = request(runtime, "order", "reject", {"reasons": ["credit hold"]}, aggregate_id=order)
    # Both decide against version 1 before either commits: a true race, made deterministic.
    change_a, _ = runtime.hub.prepare(accept)
    change_b, _ = runtime.hub.prepare(reject)
    runtime.committer.commit(change_a)
    with pytest.raises(ConcurrencyConflict):
        runtime.committer.commit(change_b)
    state = runtime.hub.get("order", order)
    assert state["version"] == 2
    assert state["state"]["status"] == "accepted"


def test_racing_threads_one_success_one_conflict(runtime: Runtime) -> None:
    order = new_order(runtime, new_customer(runtime))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker(number: str) -> None:
        req = request(runtime, "order", "accept", {"erp_order_number": number}, aggregate_id=order)
        change, _ = runtime.hub.prepare(req)
        barrier.wait()
        try:
            runtime.committer.commit(change)
            outcomes.append("ok")
        except ConcurrencyConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=worker, args=(f"SO-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    assert len(runtime.hub.history("order", order)) == 2


def test_a_conflict_in_a_group_does_not_fail_its_neighbours(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    orders = [new_order(runtime, customer) for _ in range(3)]
    changes: list[Change] = []
    for i, order in enumerate(orders):
        change, _ = runtime.hub.prepare(
            request(runtime, "order", "accept", {"erp_order_number": f"SO-{i}"}, aggregate_id=order)
        )
        changes.append(change)
    # A stale second decision on the middle order: conflicts with the first one for it.
    stale, _ = runtime.hub.prepare(
        request(runtime, "order", "cancel", {"reason": "dup"}, aggregate_id=orders[1])
    )
    outcomes = runtime.committer.commit_many([changes[0], changes[1], stale, changes[2]])
    assert outcomes[0] is None and outcomes[1] is None and outcomes[3] is None
    assert isinstance(outcomes[2], ConcurrencyConflict)
    assert [runtime.hub.get("order", o)["state"]["status"] for o in orders] == ["accepted"] * 3


def test_if_match_with_a_stale_version_is_refused(runtime: Runtime) -> None:
    order = new_order(runtime, new_customer(runtime))
    with pytest.raises(VersionMismatch):
        run(runtime, "order", "validate", {}, aggregate_id=order, expected_version=7)
    assert runtime.hub.get("order", order)["version"] == 1
    assert (
        run(runtime, "order", "validate", {}, aggregate_id=order, expected_version=1).body[
            "version"
        ]
        == 2
    )


def test_idempotency_key_replays_without_new_events(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    data = {"legal_name": "Beta AG", "currency": "CHF"}
    first = run(runtime, "customer", "register", data, key="k-1")
    again = run(runtime, "customer", "register", data, key="k-1")
    assert again.replayed and not first.replayed
    assert again.body == first.body
    assert count_events(runtime, "customers") == 2  # the first customer + Beta AG once
    with pytest.raises(IdempotencyMismatch):
        run(runtime, "customer", "register", {"legal_name": "Gamma"}, key="k-1")
    assert count_events(runtime, "customers") == 2
    assert customer


def test_concurrent_requests_with_one_key_commit_once(runtime: Runtime) -> None:
    data = {"legal_name": "Delta Ltd", "currency": "GBP"}
    bodies: list[dict[str, object]] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        req = request(runtime, "customer", "register", data, key="same-key")
        barrier.wait()
        bodies.append(runtime.hub.execute(req).body)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({orjson.dumps(b, option=orjson.OPT_SORT_KEYS) for b in bodies}) == 1
    assert count_events(runtime, "customers") == 1


def test_receipts_committed_together_keep_one_effect_per_key(runtime: Runtime) -> None:
    """The writer inserts a group's receipts in one statement: a key committed earlier, and
    a key two changes of the batch carry, still leave exactly one effect each."""
    run(runtime, "customer", "register", {"legal_name": "Taken AG"}, key="g-0")
    keyed = [
        ("g-1", "One AG"),
        ("g-1", "One again AG"),
        ("g-0", "Taken again AG"),
        (None, "No key AG"),
        ("g-2", "Two AG"),
    ]
    changes = [
        runtime.hub.prepare(request(runtime, "customer", "register", {"legal_name": n}, key=k))[0]
        for k, n in keyed
    ]
    outcomes = runtime.committer.commit_many(changes)
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "ReceiptExists",
        "ReceiptExists",
        "NoneType",
        "NoneType",
    ]
    assert count_events(runtime, "customers") == 4  # Taken, One, No key, Two
    for key, name in (("g-1", "One AG"), ("g-2", "Two AG")):
        receipt = runtime.hub.ports.receipts.find_receipt("ops", key)
        assert receipt is not None
        customer = runtime.hub.get("customer", UUID(receipt.body["id"]))
        assert customer["state"]["legal_name"] == name


def test_payment_application_commits_both_stores_or_neither(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    invoice = new_invoice(runtime, customer, total="100.00")
    payment = new_payment(runtime, customer, amount="150.00")
    apply = {"invoice_id": str(invoice), "amount": {"amount": "60.00", "currency": "EUR"}}
    run(runtime, "payment", "apply", apply, aggregate_id=payment)
    assert runtime.hub.get("invoice", invoice)["version"] == 2
    assert runtime.hub.get("payment", payment)["version"] == 2
    # Over-application is refused by the invoice; neither store changes.
    with pytest.raises(Overapplication):
        run(runtime, "payment", "apply", apply, aggregate_id=payment)
    # A concurrent change to the invoice makes the payment side roll back too.
    req = request(
        runtime,
        "payment",
        "apply",
        {"invoice_id": str(invoice), "amount": {"amount": "10.00", "currency": "EUR"}},
        aggregate_id=payment,
    )
    change, _ = runtime.hub.prepare(req)
    run(runtime, "invoice", "post", {"erp_document_number": "INV-9"}, aggregate_id=invoice)
    with pytest.raises(ConcurrencyConflict):
        runtime.committer.commit(change)
    assert runtime.hub.get("payment", payment)["version"] == 2
    assert runtime.hub.get("invoice", invoice)["version"] == 3


def test_source_record_ids_are_cross_referenced_and_deterministic(runtime: Runtime) -> None:
    origin = Origin(source_record_id="001ABC", correlation_id="opp-42")
    first = new_customer(runtime, origin=origin)
    assert runtime.hub.lookup("api", "customer", "001ABC") == first
    # Re-ingesting the same source record hits the same aggregate and is refused as a twin.
    from hub.domain.errors import AlreadyExists

    with pytest.raises(AlreadyExists):
        new_customer(runtime, origin=origin)
    history = runtime.hub.history("customer", first)
    assert history[0]["provenance"]["correlation_id"] == "opp-42"
    assert history[0]["provenance"]["source_record_id"] == "001ABC"


def test_long_contract_streams_are_snapshotted(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    order = new_order(runtime, customer)
    contract_id = new_contract(
        runtime, customer, order, [item("API-CALLS", "usage-std", "1", "0.01", "usage")]
    )
    run(
        runtime,
        "contract",
        "activate",
        {"billing_subscription_id": "sub_123"},
        aggregate_id=contract_id,
    )
    for i in range(119):
        run(
            runtime,
            "contract",
            "record_usage",
            {
                "sku": "API-CALLS",
                "quantity": "5",
                "period_start": f"2026-12-0{1 + i % 9}",
                "period_end": f"2026-12-0{1 + i % 9}",
            },
            aggregate_id=contract_id,
        )
    store = runtime.stores["contract"]
    assert store.snapshots is not None
    snapshots = list(store.snapshots.get(contract_id))
    assert [s.originator_version for s in snapshots] == [50, 100]
    from_snapshot = runtime.hub.get("contract", contract_id)
    replayed = None
    for event in runtime.hub.store.history("contract", contract_id):
        replayed = event.mutate(replayed)
    assert replayed is not None
    assert from_snapshot["version"] == 121 == replayed.version
    assert from_snapshot["state"] == {
        k: v
        for k, v in replayed.state().items()
        if k not in {"id", "version", "created_on", "modified_on"}
    }


def test_a_stored_v1_customer_event_reads_as_v2(runtime: Runtime) -> None:
    customer_id = uuid4()
    v1_state = {
        "timestamp": "2025-01-01T00:00:00+00:00",
        "provenance": {"source_system": "crm", "actor": "legacy-import"},
        "name": "Old Shape Inc",
        "web_domain": None,
        "tax_id": None,
        "billing_address": None,
        "currency": "USD",
        "parent_customer_id": None,
    }
    assert runtime.settings.database_url
    with psycopg.connect(runtime.settings.database_url) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.customers_events (originator_id, originator_version, topic, state)"
                " VALUES (%s, 1, %s, %s)"
            ).format(sql.Identifier(runtime.settings.schema_name)),
            (customer_id, "hub.domain.customer:CustomerRegistered", orjson.dumps(v1_state)),
        )
    state = runtime.hub.get("customer", customer_id)["state"]
    assert state["legal_name"] == "Old Shape Inc"
    assert state["display_name"] == "Old Shape Inc"


def test_committed_events_survive_a_restart(
    runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    customer = new_customer(runtime)
    order = new_order(runtime, customer)
    run(runtime, "order", "accept", {"erp_order_number": "SO-77"}, aggregate_id=order)
    schema = runtime.settings.schema_name
    runtime.close()
    again = open_runtime(Settings(database_url=database_url, schema_name=schema, data_dir=tmp_path))
    try:
        state = again.hub.get("order", order)
        assert state["version"] == 2 and state["state"]["erp_order_number"] == "SO-77"
    finally:
        again.close()


def test_several_processes_can_start_on_an_empty_schema_at_once(
    database_url: str, pg_schema: str, tmp_path: Path
) -> None:
    """API workers and relays start together; table creation must not race."""
    runtimes: list[Runtime] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def start() -> None:
        barrier.wait()
        try:
            runtimes.append(
                open_runtime(
                    Settings(database_url=database_url, schema_name=pg_schema, data_dir=tmp_path)
                )
            )
        except BaseException as failed:
            errors.append(failed)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert len(runtimes) == 3
        customer = new_customer(runtimes[0])
        assert runtimes[2].hub.get("customer", customer)["version"] == 1
    finally:
        for rt in runtimes:
            rt.close()


def test_ids_from_links_and_acceptances_are_looked_up(runtime: Runtime) -> None:
    customer = new_customer(runtime)
    run(
        runtime,
        "customer",
        "link",
        {"system": "erp", "external_id": "C-1001"},
        aggregate_id=customer,
    )
    assert runtime.hub.lookup("erp", "customer", "C-1001") == customer
    order = new_order(runtime, customer)
    run(runtime, "order", "accept", {"erp_order_number": "SO-555"}, aggregate_id=order)
    assert runtime.hub.lookup("erp", "order", "SO-555") == order
    # One ERP order number cannot name two orders: refused, and nothing is written.
    other = new_order(runtime, customer)
    from hub.domain.errors import AlreadyExists

    with pytest.raises(AlreadyExists):
        run(runtime, "order", "accept", {"erp_order_number": "SO-555"}, aggregate_id=other)
    assert runtime.hub.get("order", other)["version"] == 1


def test_two_customers_merged_into_each_other_at_once_cannot_both_commit(
    runtime: Runtime,
) -> None:
    """Each merge checks that its target is not merged, but both decide before either
    commits: had only the merged customer been written, both would commit a loop (A into B,
    B into A) and every fact naming either would be refused for ever. The survivor records
    the merge too, so the second merge is a concurrency conflict."""
    first, second = new_customer(runtime, "A GmbH"), new_customer(runtime, "B GmbH")
    a_into_b = request(
        runtime, "customer", "merge", {"target_customer_id": str(second)}, aggregate_id=first
    )
    b_into_a = request(
        runtime, "customer", "merge", {"target_customer_id": str(first)}, aggregate_id=second
    )
    change_a, _ = runtime.hub.prepare(a_into_b)
    change_b, _ = runtime.hub.prepare(b_into_a)
    runtime.committer.commit(change_a)
    with pytest.raises(ConcurrencyConflict):
        runtime.committer.commit(change_b)
    assert runtime.hub.get("customer", first)["state"]["merged_into"] == str(second)
    assert runtime.hub.get("customer", second)["state"]["merged_into"] is None
    survivor = runtime.hub.store.history("customer", second)[-1]
    assert survivor.type_name() == "CustomerAbsorbed"
    assert survivor.merged_customer_id == first
