"""The lineage projection on real PostgreSQL: one whole deal (opportunity to refund) gives
every object, every system's id, every link and every event with its provenance; the
stores applied in reverse order, event by event, and a rebuild give identical rows."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Runtime
from projections.lineage.projection import Lineage, delivery_of
from tests.integration.lineage_support import whole_deal
from tests.integration.projection_support import rebuild, rows, runner

VIEW = Lineage()
TABLES = {
    "lineage_objects": "object_id, kind",
    "lineage_ids": "external_id, system, kind, object_id",
    "lineage_links": "parent_id, child_id, relation",
    "lineage_events": "event_id",
}


class StoresReversed(Lineage):
    """The same projection applying payments first, then invoices, ..., customers last."""

    stores = tuple(reversed(Lineage.stores))


def snapshot(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    return {table: rows(runtime, table, order_by) for table, order_by in TABLES.items()}


def test_a_whole_deal_gives_its_objects_ids_links_and_events(runtime: Runtime) -> None:
    deal = whole_deal(runtime, delivery=41)
    runner(runtime, VIEW, batch=500).catch_up()
    objects = {
        (kind, object_id): customer
        for object_id, kind, customer, *_ in rows(runtime, "lineage_objects", "object_id")
    }
    refund = next(o for k, o in objects if k == "refund")
    credit_note = next(o for k, o in objects if k == "credit_note")
    assert set(objects) == {
        ("customer", str(deal.customer)),
        ("opportunity", deal.opportunity),
        ("order", str(deal.order)),
        ("contract", str(deal.contract)),
        ("invoice", str(deal.invoice)),
        ("payment", str(deal.payment)),
        ("credit_note", credit_note),
        ("refund", refund),
    }
    # Every object but the customer belongs to it, the refund and credit note by their parent.
    assert {c for (k, _), c in objects.items() if k != "customer"} == {deal.customer}

    ids = {(s, e, t, k) for e, s, t, k, *_ in rows(runtime, "lineage_ids", "external_id")}
    assert ids == {
        ("crm", deal.opportunity, "opportunity_id", "opportunity"),
        ("api", deal.opportunity, "source_record_id", "order"),
        ("erp", deal.erp_order, "erp_order_number", "order"),
        ("billing", deal.subscription, "billing_subscription_id", "contract"),
        ("api", deal.invoice_number, "source_number", "invoice"),
        ("erp", deal.erp_invoice, "erp_document_number", "invoice"),
        ("api", deal.payment_reference, "reference", "payment"),
        ("api", deal.credit_note, "credit_note_number", "credit_note"),
        ("api", deal.refund_reference, "reference", "refund"),
    }

    links = {
        (p, pk, c, ck, r) for p, pk, c, ck, r, *_ in rows(runtime, "lineage_links", "parent_id")
    }
    assert links == {
        (deal.opportunity, "opportunity", str(deal.order), "order", "placed_from"),
        (str(deal.order), "order", str(deal.contract), "contract", "contracted"),
        (str(deal.order), "order", str(deal.invoice), "invoice", "invoiced"),
        (str(deal.contract), "contract", str(deal.invoice), "invoice", "invoiced"),
        (str(deal.invoice), "invoice", str(deal.payment), "payment", "paid_by"),
        (str(deal.invoice), "invoice", credit_note, "credit_note", "credited"),
        (str(deal.payment), "payment", refund, "refund", "refunded"),
    }

    events = {row[3]: row for row in rows(runtime, "lineage_events", "recorded_at")}
    placed, accepted = events["OrderPlaced"], events["OrderAcceptedByErp"]
    assert (placed[10], placed[13], placed[15]) == (deal.opportunity, "inbound:41", 41)
    assert (accepted[12], accepted[13], accepted[15]) == (
        deal.opportunity,
        str(placed[0]),
        None,
    )
    expected_types = {
        "CustomerRegistered",
        "OrderPlaced",
        "OrderAcceptedByErp",
        "ContractCreated",
        "ContractActivated",
        "InvoiceIssued",
        "InvoicePosted",
        "PaymentReceived",
        "PaymentApplied",
        "InvoicePaymentApplied",
        "InvoiceCredited",
        "PaymentRefunded",
    }
    assert expected_types <= set(events)
    # Each event sits at its own store's position, recorded with its store's name.
    assert {(row[5], row[2]) for row in events.values()} >= {
        ("orders", "order"),
        ("payments", "payment"),
        ("invoices", "invoice"),
    }


def test_any_store_order_event_by_event_and_a_rebuild_give_identical_rows(
    runtime: Runtime,
) -> None:
    whole_deal(runtime)
    # Payments first: the application, the refund and credit note before their objects.
    runner(runtime, StoresReversed(), batch=1).catch_up()
    reversed_rows = snapshot(runtime)
    assert len(reversed_rows["lineage_links"]) == 7
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500).catch_up()
    assert snapshot(runtime) == reversed_rows
    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=1).catch_up()
    assert snapshot(runtime) == reversed_rows


def test_delivery_of_reads_only_inbound_causations() -> None:
    assert delivery_of("inbound:17") == 17
    assert delivery_of("inbound:x") is None
    assert delivery_of("req-17") is None
    assert delivery_of(None) is None
