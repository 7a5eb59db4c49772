"""The lineage projection's tables: objects, their ids in every system, links, events.

Why four narrow tables keyed for lookups rather than one graph document per deal: the
stores arrive each in its own order (an invoice may name an order not yet seen), so every
row is a fact written by one event and never needs the other side to exist; the graph is
assembled when asked, by walking ``lineage_links`` from both ends (indexed), which stays a
handful of index lookups however many events are stored.
"""

from __future__ import annotations

from projections.definition import Column, Table

KINDS = "customer, opportunity, order, contract, invoice, payment, credit_note or refund"

OBJECTS = Table(
    name="lineage_objects",
    comment=(
        "Concord lineage: one row per business object (customer, CRM opportunity, order, "
        "contract, invoice, payment, credit note, refund). Built by the lineage projection."
    ),
    primary_key=("object_id", "kind"),
    indexes=(("customer_id",),),
    columns=(
        Column(
            "object_id",
            "text",
            "Canonical id: the aggregate's uuid; for an opportunity the CRM opportunity id; "
            "for a credit note or refund the id of the event that recorded it.",
            not_null=True,
        ),
        Column("kind", "text", f"One of {KINDS}.", not_null=True),
        Column(
            "customer_id",
            "uuid",
            "Canonical customer of the object (its survivor after a merge); NULL for a "
            "customer itself.",
        ),
        Column(
            "parent_id",
            "uuid",
            "For a credit note or refund, the invoice or payment it belongs to; else NULL.",
        ),
        Column(
            "created_at",
            "timestamptz",
            "When Concord recorded the object's first event (an opportunity: its first order).",
            not_null=True,
        ),
        Column(
            "last_event_at",
            "timestamptz",
            "When Concord recorded the object's latest event (an opportunity: its latest order).",
            not_null=True,
        ),
    ),
)

IDS = Table(
    name="lineage_ids",
    comment=(
        "Concord lineage: every system's id of every object (the cross-reference an "
        "auditor looks an object up by)."
    ),
    primary_key=("external_id", "system", "kind", "object_id"),
    indexes=(("object_id",),),
    columns=(
        Column("external_id", "text", "The id in that system.", not_null=True),
        Column(
            "system",
            "text",
            "crm, erp, billing, api or hub: the system the id belongs to (for record ids, "
            "numbers and references, the source system of the event that carried it).",
            not_null=True,
        ),
        Column(
            "id_type",
            "text",
            "What the id is: source_record_id, opportunity_id, erp_order_number, "
            "billing_subscription_id, erp_document_number, source_number, customer_number, "
            "linked_id, reference or credit_note_number.",
            not_null=True,
        ),
        Column("kind", "text", "Kind of the object (lineage_objects.kind).", not_null=True),
        Column("object_id", "text", "The object (lineage_objects.object_id).", not_null=True),
        Column(
            "seen_at",
            "timestamptz",
            "When Concord recorded the first event that carried the id.",
            not_null=True,
        ),
    ),
)

LINKS = Table(
    name="lineage_links",
    comment=(
        "Concord lineage: how objects lead to one another, upstream (parent) to downstream "
        "(child): opportunity to order, order to contract and invoice, contract to invoice, "
        "invoice to payment, invoice to credit note, payment to refund, customer merges."
    ),
    primary_key=("parent_id", "child_id", "relation"),
    indexes=(("child_id",),),
    columns=(
        Column("parent_id", "text", "Upstream object (lineage_objects.object_id).", True),
        Column("parent_kind", "text", "Its kind.", not_null=True),
        Column("child_id", "text", "Downstream object (lineage_objects.object_id).", True),
        Column("child_kind", "text", "Its kind.", not_null=True),
        Column(
            "relation",
            "text",
            "placed_from (opportunity to order), contracted (order to contract), invoiced "
            "(order or contract to invoice), paid_by (invoice to payment, by an application), "
            "credited (invoice to credit note), refunded (payment to refund), merged_into "
            "(customer to its survivor).",
            not_null=True,
        ),
        Column(
            "linked_at",
            "timestamptz",
            "When Concord recorded the earliest event stating the link (either side).",
            not_null=True,
        ),
        Column("event_id", "uuid", "That event (lineage_events.event_id).", not_null=True),
    ),
)

EVENTS = Table(
    name="lineage_events",
    comment=(
        "Concord lineage: every canonical event of the followed stores with its provenance "
        "and, when an inbound delivery caused it, that delivery's id."
    ),
    primary_key=("event_id",),
    indexes=(("object_id", "recorded_at"),),
    columns=(
        Column("event_id", "uuid", "The event's id (envelope event_id, Nats-Msg-Id).", True),
        Column("object_id", "text", "Its aggregate (lineage_objects.object_id).", True),
        Column("kind", "text", "Kind of the aggregate.", not_null=True),
        Column("type", "text", "Event type, e.g. OrderPlaced.", not_null=True),
        Column("version", "bigint", "Version of the aggregate the event made.", True),
        Column("store", "text", "The store it is in (its table is <store>_events).", True),
        Column("position", "bigint", "Its position in that store's log (notification_id).", True),
        Column("recorded_at", "timestamptz", "When Concord recorded it.", not_null=True),
        Column("occurred_at", "timestamptz", "When it happened by the source's clock; or NULL."),
        Column("source_system", "text", "Provenance: crm, erp, billing, api or hub.", True),
        Column("source_record_id", "text", "Provenance: the source record's id; or NULL."),
        Column("source_event_id", "text", "Provenance: the source's event id; or NULL."),
        Column("correlation_id", "text", "Provenance: the business transaction; or NULL."),
        Column(
            "causation_id",
            "text",
            "Provenance: what caused it (inbound:<delivery id>, an event id, a request).",
        ),
        Column("actor", "text", "Provenance: the API client or user that acted.", True),
        Column(
            "delivery_id",
            "bigint",
            "The inbound delivery (concord_inbound id, GET /v1/inbound/<id>) named by "
            "causation_id inbound:<id>; NULL when none.",
        ),
    ),
)
