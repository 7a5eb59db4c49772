"""What one event says for the lineage, as plain values: the objects it creates or
touches, the ids it ties to them and the links it states.

Why a pure function of the envelope: the same event must always yield the same facts (a
rebuild gives identical rows), and the facts never depend on another store's events having
been applied (any interleaving of the stores converges). The ids follow what the events'
``external_refs()`` tie to their aggregate (the creation's source record id, the ERP's
order and document numbers, the billing subscription id, linked and customer numbers) plus
the business references auditors also search by (opportunity, invoice source number,
payment, refund and credit note references).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.definition import Envelope


@dataclass(frozen=True)
class Node:
    kind: str
    object_id: str
    customer_id: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class Ref:
    system: str
    external_id: str
    id_type: str
    kind: str
    object_id: str


@dataclass(frozen=True)
class Link:
    parent_kind: str
    parent_id: str
    child_kind: str
    child_id: str
    relation: str


@dataclass(frozen=True)
class Facts:
    nodes: tuple[Node, ...] = ()
    refs: tuple[Ref, ...] = ()
    links: tuple[Link, ...] = ()


#: Data fields that are another system's id of the event's aggregate: (field, system or
#: None for the event's source system, id type).
_ID_FIELDS: dict[str, tuple[str, str | None, str]] = {
    "OrderAcceptedByErp": ("erp_order_number", "erp", "erp_order_number"),
    "ContractActivated": ("billing_subscription_id", "billing", "billing_subscription_id"),
    "InvoicePosted": ("erp_document_number", "erp", "erp_document_number"),
    "InvoiceIssued": ("source_number", None, "source_number"),
    "PaymentReceived": ("reference", None, "reference"),
    "CustomerNumberAssigned": ("customer_number", "erp", "customer_number"),
}

#: Link data fields of a creation event: event type -> (field, parent kind, relation).
_PARENT_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "ContractCreated": (("order_id", "order", "contracted"),),
    "InvoiceIssued": (("order_id", "order", "invoiced"), ("contract_id", "contract", "invoiced")),
}


def facts_of(event: Envelope) -> Facts:
    """The lineage facts of one event (nothing for events that state none)."""
    kind, own, data = event["aggregate"], event["aggregate_id"], event["data"]
    nodes: list[Node] = []
    refs: list[Ref] = []
    links: list[Link] = []
    source = event["provenance"]["source_system"]
    if event["version"] == 1:
        customer = None if kind == "customer" else data.get("customer_id")
        nodes.append(Node(kind, own, customer))
        record = event["provenance"].get("source_record_id")
        if record:
            refs.append(Ref(source, record, "source_record_id", kind, own))
    if event["type"] in _ID_FIELDS:
        field, system, id_type = _ID_FIELDS[event["type"]]
        if data.get(field):
            refs.append(Ref(system or source, data[field], id_type, kind, own))
    for field, parent_kind, relation in _PARENT_FIELDS.get(event["type"], ()):
        if data.get(field):
            links.append(Link(parent_kind, data[field], kind, own, relation))
    _special(event, source, nodes, refs, links)
    return Facts(tuple(nodes), tuple(refs), tuple(links))


def _special(
    event: Envelope, source: str, nodes: list[Node], refs: list[Ref], links: list[Link]
) -> None:
    """Facts with a shape of their own: opportunities, applications, refunds, credits."""
    kind, own, data = event["aggregate"], event["aggregate_id"], event["data"]
    kind_of_event = event["type"]
    if kind_of_event == "OrderPlaced" and data.get("opportunity_id"):
        opportunity = data["opportunity_id"]
        nodes.append(Node("opportunity", opportunity, data["customer_id"]))
        refs.append(Ref("crm", opportunity, "opportunity_id", "opportunity", opportunity))
        links.append(Link("opportunity", opportunity, kind, own, "placed_from"))
    elif kind_of_event == "CustomerLinked":
        refs.append(Ref(str(data["system"]), data["external_id"], "linked_id", kind, own))
    elif kind_of_event == "CustomerMerged":
        target = data["target_customer_id"]
        links.append(Link("customer", own, "customer", target, "merged_into"))
    elif kind_of_event in ("PaymentApplied", "InvoicePaymentApplied"):
        payment, invoice = (
            (own, data["invoice_id"]) if kind == "payment" else (data["payment_id"], own)
        )
        links.append(Link("invoice", invoice, "payment", payment, "paid_by"))
    elif kind_of_event == "PaymentRefunded":
        _part(event, source, "refund", data.get("reference"), "refunded", nodes, refs, links)
    elif kind_of_event == "InvoiceCredited":
        number = data["credit"].get("credit_note_number")
        _part(event, source, "credit_note", number, "credited", nodes, refs, links)


def _part(
    event: Envelope,
    source: str,
    kind: str,
    number: Any,
    relation: str,
    nodes: list[Node],
    refs: list[Ref],
    links: list[Link],
) -> None:
    """A refund or credit note: an object of its own (named by the event's id) under the
    payment or invoice, found by its reference or credit note number."""
    own, parent = event["event_id"], event["aggregate_id"]
    nodes.append(Node(kind, own, None, parent))  # its customer: the parent's (see projection)
    links.append(Link(event["aggregate"], parent, kind, own, relation))
    if number:
        id_type = "reference" if kind == "refund" else "credit_note_number"
        refs.append(Ref(source, str(number), id_type, kind, own))
