"""The lineage projection on real PostgreSQL: an opportunity-to-refund chain gives the ids
of every system, the links between the objects and every event with its provenance; the
stores applied in reverse order, event by event, and a rebuild (batched and folded, or one
statement at a time) give identical rows."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Runtime
from adapters.projections.lineage_graph import LineageReader
from projections.lineage.projection import Lineage
from tests.integration import lineage_chain as deal
from tests.integration.commands import new_customer, new_invoice, new_payment, run
from tests.integration.projection_support import connect, rebuild, rows, runner

VIEW = Lineage()


class StoresReversed(Lineage):
    """The same projection applying payments first, customers last."""

    stores = tuple(reversed(Lineage.stores))


def everything(runtime: Runtime) -> tuple[list[tuple[Any, ...]], ...]:
    return (
        rows(runtime, "lineage_ids", "system, external_id, kind, object_id"),
        rows(runtime, "lineage_links", "child_kind, child_id, parent_kind, parent_id"),
        rows(runtime, "lineage_events", "event_id"),
    )


def test_the_chain_gives_every_id_link_and_event(runtime: Runtime) -> None:
    chain = deal.build_chain(runtime)
    runner(runtime, VIEW, batch=3).catch_up()
    ids, links, events = everything(runtime)

    order, contract = str(chain.order), str(chain.contract)
    invoice, payment, customer = str(chain.invoice), str(chain.payment), str(chain.customer)
    refund = next(e for e in events if e[3] == "PaymentRefunded")[0]
    credit = next(e for e in events if e[3] == "InvoiceCredited")[0]
    found = {(s, x, k, o) for s, x, k, o, *_ in ids}
    assert {
        ("crm", deal.OPPORTUNITY, "opportunity", deal.OPPORTUNITY),
        ("erp", deal.ERP_ORDER, "order", order),
        ("billing", deal.SUBSCRIPTION, "contract", contract),
        ("api", deal.INVOICE_NUMBER, "invoice", invoice),
        ("erp", deal.ERP_DOCUMENT, "invoice", invoice),
        ("api", deal.PAYMENT_REFERENCE, "payment", payment),
        ("api", deal.REFUND_REFERENCE, "refund", str(refund)),
        ("api", deal.CREDIT_NOTE, "refund", str(refund)),
        ("api", deal.INVOICE_CREDIT, "credit_note", str(credit)),
        ("concord", order, "order", order),
        ("concord", payment, "payment", payment),
        ("concord", customer, "customer", customer),
    } <= found
    assert {(ck, ci, pk, pi) for ck, ci, pk, pi, *_ in links} == {
        ("order", order, "customer", customer),
        ("order", order, "opportunity", deal.OPPORTUNITY),
        ("contract", contract, "order", order),
        ("contract", contract, "customer", customer),
        ("invoice", invoice, "contract", contract),
        ("invoice", invoice, "order", order),
        ("invoice", invoice, "customer", customer),
        ("payment", payment, "customer", customer),
        ("payment", payment, "invoice", invoice),
        ("refund", str(refund), "payment", payment),
        ("credit_note", str(credit), "invoice", invoice),
    }
    names = [c.name for c in VIEW.table("lineage_events").columns]
    by_type = {e[3]: dict(zip(names, e, strict=True)) for e in events}
    placed = by_type["OrderPlaced"]
    assert (placed["kind"], placed["object_id"], placed["store"], placed["version"]) == (
        "order",
        order,
        "orders",
        1,
    )
    assert (placed["correlation_id"], placed["causation_id"], placed["source_event_id"]) == (
        deal.OPPORTUNITY,
        "delivery-7001",
        "delivery-7001",
    )
    assert placed["source_system"] == "api" and placed["actor"] == "ops"
    assert placed["source_record_id"] == deal.OPPORTUNITY
    assert [k for _, x, k, _ in found if x == deal.OPPORTUNITY] == ["opportunity"]
    assert by_type["PaymentApplied"]["store"] == "payments"
    assert sorted(by_type) == [
        "ContractActivated",
        "ContractCreated",
        "CustomerRegistered",
        "InvoiceCredited",
        "InvoiceIssued",
        "InvoicePaymentApplied",  # the hub's reactions to the payment's
        "InvoicePaymentUnapplied",
        "InvoicePosted",
        "OrderAcceptedByErp",
        "OrderPlaced",
        "OrderValidated",
        "PaymentApplied",
        "PaymentReceived",
        "PaymentRefunded",
    ]
    assert len(events) == len(by_type)  # one row per event


def test_any_store_order_and_a_rebuild_give_identical_rows(runtime: Runtime) -> None:
    deal.build_chain(runtime)
    runner(runtime, StoresReversed(), batch=1).catch_up()
    reversed_rows = everything(runtime)
    assert all(reversed_rows)
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500).catch_up()
    assert everything(runtime) == reversed_rows
    with connect(runtime) as conn:  # the swap gave the shadow's indexes their live names
        names = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename LIKE %s",
            (runtime.settings.schema_name, "lineage%"),
        ).fetchall()
    assert sorted(n for (n,) in names) == [
        "lineage_events_object_id_idx",
        "lineage_events_pkey",
        "lineage_ids_external_id_idx",
        "lineage_ids_object_id_idx",
        "lineage_ids_pkey",
        "lineage_links_child_id_idx",
        "lineage_links_parent_id_idx",
        "lineage_links_pkey",
    ]
    rebuild(runtime, VIEW)  # and a second rebuild's shadow can use its own names again
    runner(runtime, VIEW, batch=2).catch_up()
    assert everything(runtime) == reversed_rows
    # One statement at a time (no runs of inserts held side by side, nothing folded).
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500, pipelined=False).catch_up()
    assert everything(runtime) == reversed_rows


def test_a_merged_customer_links_to_its_survivor_and_its_ids_reach_the_survivors_graph(
    runtime: Runtime,
) -> None:
    chain = deal.build_chain(runtime)
    survivor = str(chain.customer)
    dupe = new_customer(runtime, "Acme Duplicate")
    run(runtime, "customer", "link", {"system": "crm", "external_id": "001DUPE"}, aggregate_id=dupe)
    owed = str(new_invoice(runtime, dupe, "40.00"))
    cash = str(new_payment(runtime, dupe, "25.00"))
    merge = {"target_customer_id": survivor}
    run(runtime, "customer", "merge", merge, aggregate_id=dupe)
    runner(runtime, VIEW, batch=4).catch_up()

    _, links, _ = everything(runtime)
    found = {(ck, ci, pk, pi) for ck, ci, pk, pi, *_ in links}
    assert {
        ("customer", str(dupe), "customer", survivor),
        ("invoice", owed, "customer", survivor),
        ("invoice", owed, "customer", str(dupe)),
        ("payment", cash, "customer", survivor),
    } <= found
    with connect(runtime) as conn:
        reader = LineageReader(conn, runtime.settings.schema_name, None)
        (candidate,) = reader.candidates("001DUPE")
        assert (candidate.kind, candidate.id) == ("customer", str(dupe))
        graph = reader.graph((candidate.kind, candidate.id))
        # The survivor, its deal and the moved objects; from a deal, customers stay ends.
        assert {
            ("customer", str(dupe)),
            ("customer", survivor),
            ("order", str(chain.order)),
            ("invoice", str(chain.invoice)),
            ("invoice", owed),
            ("payment", cash),
        } <= set(graph.nodes)
        merged = {"from_kind": "customer", "from_id": survivor, "to_kind": "customer"}
        assert any(
            merged.items() <= edge.items() and edge["to_id"] == str(dupe) for edge in graph.edges
        )
        from_deal = reader.graph(("order", str(chain.order)))
        assert ("customer", str(dupe)) not in from_deal.nodes


def _indexes(runtime: Runtime) -> set[tuple[str, str]]:
    with connect(runtime) as conn:
        found = conn.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = %s "
            "AND tablename LIKE 'lineage%%'",
            (runtime.settings.schema_name,),
        ).fetchall()
    return {(str(t), str(d).split(" USING ")[1]) for t, d in found}


def test_a_rebuild_builds_the_deferred_indexes_before_the_swap(runtime: Runtime) -> None:
    """A writes-only projection's shadow is filled without its secondary indexes; the live
    view it becomes has every one of them, under the live names (readers look ids up)."""
    customer = new_customer(runtime, "Indexed Ltd")
    run(runtime, "customer", "assign_number", {"customer_number": "IX-1"}, aggregate_id=customer)
    worker = runner(runtime, Lineage())
    worker.catch_up()
    built = _indexes(runtime)
    assert ("lineage_ids", "btree (external_id)") in built
    with connect(runtime) as conn:
        names = {
            str(r[0])
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s",
                (runtime.settings.schema_name,),
            ).fetchall()
        }
    assert "lineage_ids_external_id_idx" in names
    seen: list[set[tuple[str, str]]] = []
    worker.on_progress = lambda done, total: seen.append(_indexes(runtime))
    rebuild(runtime, Lineage())
    worker.catch_up()
    # While the shadow filled, it had its primary keys only.
    assert seen and all(
        not any(t.endswith("__rebuild") and d == "btree (external_id)" for t, d in s) for s in seen
    )
    assert _indexes(runtime) == built
    with connect(runtime) as conn:
        after = {
            str(r[0])
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s",
                (runtime.settings.schema_name,),
            ).fetchall()
        }
    assert after == names
