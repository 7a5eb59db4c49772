"""HubSpot companies → canonical customers, from the company's merged mirror.

HubSpot sends a company's properties one event at a time, in any order, so each event is
answered from the *whole* record as merged so far: the customer is registered once the
mirror has a ``name``, and afterwards every event sends the fields where the mirror and the
customer differ (``change_details``). Re-deriving from the mirror rather than from the one
property makes the result independent of the order of arrival, and a repeated or older
event a no-op.

Before registering, the company is matched against the customers Concord holds
(:mod:`adapters.inbound.identity`): a sure match (same domain, the same name) links the
company's id to that customer and applies the company's fields to it; an uncertain one (a
legal-form variant, a typo) holds the event for the match review queue.
"""

from __future__ import annotations

from typing import Any

from adapters.hubspot.schemas import as_of
from adapters.hubspot.schemas import text as _text
from adapters.inbound.identity import Nobody, identify
from adapters.inbound.matching import Candidate
from adapters.inbound.model import Known, Ref, Step, Translation
from hub.domain.customer import normalise_domain
from hub.domain.errors import InvalidValue

CRM = "crm"


def company(record_id: str, known: Known) -> Translation:
    """Register or update the customer of company ``record_id`` (HubSpot ``objectId``)."""
    fields = known.mirror("company", record_id) or {}
    name = _text(fields.get("name"))
    if name is None:
        return Translation.ignore(
            f"company {record_id} has no name yet: it is registered once its name arrives"
        )
    wanted: dict[str, Any] = {"legal_name": name, "web_domain": _text(fields.get("domain"))}
    parent = _text(fields.get("hs_parent_company_id"))
    if parent is not None and parent != record_id:
        parent_id = known.lookup(Ref(CRM, "customer", parent))
        if parent_id is None:
            return Translation.wait(Ref(CRM, "customer", parent))
        wanted["parent_customer_id"] = str(parent_id)
    else:
        wanted["parent_customer_id"] = None
    steps: list[Step] = []
    customer_id = known.lookup(Ref(CRM, "customer", record_id))
    if customer_id is None:
        data = {k: v for k, v in wanted.items() if v is not None}
        candidate = Candidate(legal_name=name, web_domain=_domain(wanted["web_domain"]))
        found = identify(known, CRM, record_id, candidate)
        if isinstance(found, Translation):
            return found
        if isinstance(found, Nobody):
            register = Step(
                "customer", "register", data, source_record_id=record_id, occurred_at=as_of(fields)
            )
            return Translation(steps=(register,))
        customer_id = found
        wanted = data  # what the company says; nothing cleared on the customer it matched
        link = {"system": CRM, "external_id": record_id}
        steps.append(Step("customer", "link", link, target=found, source_record_id=record_id))
    current = known.state("customer", customer_id) or {}
    changes = {k: v for k, v in wanted.items() if _differs(k, current.get(k), v)}
    if changes:
        steps.append(
            Step(
                "customer",
                "change_details",
                changes,
                target=customer_id,
                occurred_at=as_of(fields),
            )
        )
    if not steps:
        return Translation.ignore(f"customer of company {record_id} is up to date")
    return Translation(steps=tuple(steps))


def _domain(value: str | None) -> str | None:
    """The bare host to match by; None when it is no web address (matched by name only)."""
    if value is None:
        return None
    try:
        return normalise_domain(value)
    except InvalidValue:
        return None


def _differs(field: str, current: Any, wanted: Any) -> bool:
    """Compare as the hub stores values (names collapsed, domains bare hosts)."""
    if wanted is None or current is None:
        return (wanted is None) != (current is None)
    if field == "web_domain":
        try:
            return bool(normalise_domain(wanted) != current)
        except InvalidValue:
            return True  # the hub refuses it, naming the field
    if field == "legal_name":
        return bool(" ".join(str(wanted).split()) != current)
    return bool(current != wanted)
