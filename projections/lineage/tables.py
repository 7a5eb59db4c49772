"""The lineage tables: ids, links and events, each a set of facts keyed by what made it.

Why facts keyed by their natural key and written with ``ON CONFLICT DO NOTHING``: the
projection follows five stores, each in its own order, so a link (an invoice naming its
order) may arrive before the order itself. Nothing here updates a row written from another
store, so any interleaving of the stores, and a rebuild, give the same rows; the graph is
assembled when it is read. Every row keeps the time the hub recorded the event that made
it, so a reader can ask what the graph looked like at an instant (``as_of``).
"""

from __future__ import annotations

from projections.definition import Column, Table

KIND = (
    "customer, opportunity, order, contract, invoice, payment, refund or credit_note "
    "(refunds and credit notes are documents inside a payment or an invoice)."
)
OBJECT_ID = (
    "Canonical id of the object (UUID text); for an opportunity the CRM's opportunity id, for "
    "a refund or credit note the event_id of the event that recorded it."
)
RECORDED = "When the hub recorded the event that made this row (the hub's clock)."

IDS = Table(
    name="lineage_ids",
    comment=(
        "Concord lineage: every id any system (and Concord itself, system 'concord') has for "
        "an object. Built by the lineage projection."
    ),
    primary_key=("system", "external_id", "kind", "object_id"),
    indexes=(("external_id",), ("object_id",)),
    columns=(
        Column(
            "system",
            "text",
            "The system that uses the id: crm, erp, billing, api, hub or concord (the canonical "
            "id).",
            not_null=True,
        ),
        Column("external_id", "text", "The id in that system.", not_null=True),
        Column("kind", "text", KIND, not_null=True),
        Column("object_id", "text", OBJECT_ID, not_null=True),
        Column("event_id", "uuid", "The event that recorded the id (lineage_events).", True),
        Column("recorded_at", "timestamptz", RECORDED, not_null=True),
    ),
)

LINKS = Table(
    name="lineage_links",
    comment=(
        "Concord lineage: which object came from which (order from opportunity and customer, "
        "contract from order, invoice from contract and order, payment applied to invoice, "
        "refund of payment, credit note of invoice, merged-away customer of its survivor, "
        "invoice or payment moved to the survivor). Built by the lineage projection."
    ),
    primary_key=("child_kind", "child_id", "parent_kind", "parent_id"),
    indexes=(("parent_id",), ("child_id",)),
    columns=(
        Column("child_kind", "text", "Kind of the later object. " + KIND, not_null=True),
        Column("child_id", "text", "Id of the later object. " + OBJECT_ID, not_null=True),
        Column("parent_kind", "text", "Kind of the object it came from.", not_null=True),
        Column("parent_id", "text", "Id of the object it came from.", not_null=True),
        Column(
            "event_id",
            "uuid",
            "The first event that made the link (a payment applied twice keeps the first).",
            not_null=True,
        ),
        Column("recorded_at", "timestamptz", RECORDED, not_null=True),
    ),
)

EVENTS = Table(
    name="lineage_events",
    comment=(
        "Concord lineage: every event of customers, orders, contracts, invoices and payments "
        "with its provenance (source system, record and event, correlation, causation, actor). "
        "Built by the lineage projection."
    ),
    primary_key=("event_id",),
    indexes=(("object_id",),),
    columns=(
        Column("event_id", "uuid", "The event's id (as published and listed).", not_null=True),
        Column("kind", "text", "customer, order, contract, invoice or payment.", not_null=True),
        Column("object_id", "text", "Canonical id of the aggregate (UUID text).", True),
        Column("type", "text", "Event type, e.g. OrderPlaced.", not_null=True),
        Column("version", "bigint", "Version of the aggregate this event made.", True),
        Column("recorded_at", "timestamptz", "When the hub recorded the event.", True),
        Column("occurred_at", "timestamptz", "When it happened in the source (source clock)."),
        Column("store", "text", "The store (orders, invoices ...) holding the event.", True),
        Column(
            "position",
            "bigint",
            "Position of the event in its store's log (<store>_events.notification_id).",
            not_null=True,
        ),
        Column("source_system", "text", "crm, erp, billing, api or hub.", not_null=True),
        Column("source_record_id", "text", "The source's id of the record; may be NULL."),
        Column(
            "source_event_id",
            "text",
            "The source's id of the change (the inbound delivery's event id); may be NULL.",
        ),
        Column("correlation_id", "text", "The business transaction, e.g. the opportunity."),
        Column("causation_id", "text", "The event or request (delivery) that caused this one."),
        Column("actor", "text", "The API client or user that acted.", not_null=True),
    ),
)

TABLES = (IDS, LINKS, EVENTS)
