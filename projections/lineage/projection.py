"""``lineage``: every business object, every system's id for it, and every event with its
provenance, linked from opportunity to refund, for auditors (``GET /v1/lineage/{id}``).

Follows customers, orders, contracts, invoices and payments, each in its own order. Each
event adds facts only (its event row, the ids it names, the links it names) keyed by what
they say, never an update of a row another store wrote: so a link that arrives before its
object (an invoice applied before its order) is simply there when the object comes, and
every interleaving and a rebuild give the same rows (see ``tables.py``). Times are the
events' own; nothing reads a clock. A merge links the merged-away customer to its survivor
(customer to customer), so the reader can walk from a duplicate's ids to the survivor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from projections.definition import Envelope, Position, Projection, Table, ViewCursor
from projections.lineage.tables import TABLES

_EVENT = (
    "INSERT INTO {lineage_events} (event_id, kind, object_id, type, version, recorded_at, "
    "occurred_at, store, position, source_system, source_record_id, source_event_id, "
    "correlation_id, causation_id, actor) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_ID = (
    "INSERT INTO {lineage_ids} (system, external_id, kind, object_id, event_id, recorded_at) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
_LINK = (
    "INSERT INTO {lineage_links} (child_kind, child_id, parent_kind, parent_id, event_id, "
    "recorded_at) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
#: Event type -> (data field, system or None for the event's source system) of the ids the
#: event gives its own aggregate (the equivalents of ``DomainEvent.external_refs``).
_OWN_IDS: dict[str, tuple[tuple[str, str | None], ...]] = {
    "CustomerNumberAssigned": (("customer_number", "erp"),),
    "OrderAcceptedByErp": (("erp_order_number", "erp"),),
    "ContractActivated": (("billing_subscription_id", "billing"),),
    "InvoiceIssued": (("source_number", None),),
    "InvoicePosted": (("erp_document_number", "erp"),),
    "PaymentReceived": (("reference", None),),
}
#: Event type -> (data field, kind) of the objects the event's aggregate comes from.
_PARENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "OrderPlaced": (("customer_id", "customer"), ("opportunity_id", "opportunity")),
    "ContractCreated": (("order_id", "order"), ("customer_id", "customer")),
    "InvoiceIssued": (
        ("contract_id", "contract"),
        ("order_id", "order"),
        ("customer_id", "customer"),
    ),
    "PaymentReceived": (("customer_id", "customer"),),
    "PaymentApplied": (("invoice_id", "invoice"),),
    # A merge: the merged-away customer comes from (is now) the survivor, and what moved to
    # the survivor (an open invoice, a payment) is linked to it beside its first customer.
    "CustomerMerged": (("target_customer_id", "customer"),),
    "InvoiceMovedToSurvivor": (("customer_id", "customer"),),
    "PaymentMovedToSurvivor": (("customer_id", "customer"),),
}


class _Facts:
    """The rows one event writes, with the event's id and time already filled in."""

    def __init__(self, event: Envelope, cursor: ViewCursor) -> None:
        self.event_id = event["event_id"]
        self.recorded_at = datetime.fromisoformat(event["recorded_at"])
        self.system = str(event["provenance"]["source_system"])
        self.cursor = cursor

    def id(self, system: str | None, external: Any, kind: str, object_id: str) -> None:
        if external:
            row = (system or self.system, str(external), kind, object_id)
            self.cursor.execute(_ID, (*row, self.event_id, self.recorded_at))

    def link(self, child: tuple[str, str], parent_kind: str, parent_id: Any) -> None:
        if parent_id:
            row = (*child, parent_kind, str(parent_id))
            self.cursor.execute(_LINK, (*row, self.event_id, self.recorded_at))


class Lineage(Projection):
    name: ClassVar[str] = "lineage"
    title: ClassVar[str] = "Lineage: ids, links and provenance of every object"
    version: ClassVar[int] = 3
    stores: ClassVar[tuple[str, ...]] = ("customers", "orders", "contracts", "invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = TABLES
    writes_only: ClassVar[bool] = True  # inserts only

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        kind, object_id, data = event["aggregate"], event["aggregate_id"], event["data"]
        provenance = event["provenance"]
        occurred = event.get("occurred_at")
        cursor.execute(
            _EVENT,
            (
                event["event_id"],
                kind,
                object_id,
                event["type"],
                event["version"],
                datetime.fromisoformat(event["recorded_at"]),
                None if occurred is None else datetime.fromisoformat(occurred),
                at.store,
                at.position,
                provenance["source_system"],
                provenance.get("source_record_id"),
                provenance.get("source_event_id"),
                provenance.get("correlation_id"),
                provenance.get("causation_id"),
                provenance["actor"],
            ),
        )
        facts = _Facts(event, cursor)
        if event["version"] == 1:
            facts.id("concord", object_id, kind, object_id)
            record = provenance.get("source_record_id")
            if not (event["type"] == "OrderPlaced" and record == data.get("opportunity_id")):
                # A CRM order's record is its opportunity: that id names the opportunity
                # (linked to the order), or every opportunity id would be ambiguous.
                facts.id(None, record, kind, object_id)
        for field, system in _OWN_IDS.get(event["type"], ()):
            facts.id(system, data.get(field), kind, object_id)
        for field, parent in _PARENTS.get(event["type"], ()):
            facts.link((kind, object_id), parent, data.get(field))
        if event["type"] == "OrderPlaced" and data.get("opportunity_id"):
            opportunity = data["opportunity_id"]
            facts.id("crm", opportunity, "opportunity", opportunity)
        elif event["type"] == "CustomerLinked":
            facts.id(data["system"], data["external_id"], kind, object_id)
        elif event["type"] == "InvoiceCredited":
            self._document(facts, "credit_note", (kind, object_id), data["credit"])
        elif event["type"] == "PaymentRefunded":
            self._document(facts, "refund", (kind, object_id), data)

    @staticmethod
    def _document(facts: _Facts, kind: str, owner: tuple[str, str], source: dict[str, Any]) -> None:
        """A refund or credit note: a node of its own (named by the event that recorded it),
        linked to its payment or invoice, with its reference and credit note number."""
        document = str(facts.event_id)
        facts.id("concord", document, kind, document)
        facts.link((kind, document), *owner)
        facts.id(None, source.get("reference"), kind, document)
        facts.id(None, source.get("credit_note_number"), kind, document)
