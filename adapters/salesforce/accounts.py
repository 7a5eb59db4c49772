"""Account → customer: register on first sight, change only what the CRM owns and changed.

CRM owns a customer's names, web domain, billing address and hierarchy
(adapters/ownership.yaml); tax id, currency, customer number and payment terms are the
ERP's. An account change therefore sends only those fields, and only the ones the message
reports, so an UPDATE of ``Phone`` or ``CurrencyIsoCode`` causes nothing and one of
``Website`` leaves the name and address as they are.

Registration reads the account's mirror (everything that arrived for it), so an UPDATE that
overtook its CREATE is folded in when the CREATE registers the customer. An UPDATE for an
account Concord has not registered waits for it (the CREATE, or a registration through the
API with ``Concord-Source-Record-Id``), rather than registering a customer from a few fields
whose source time would then shadow the CREATE's older, complete values.

Before registering, the account is matched against the customers Concord holds
(:mod:`adapters.inbound.identity`): a sure match (same web domain, the same legal name) links
the account's id to that customer and applies the account's CRM fields to it instead of
creating a duplicate; an uncertain one (``Acme, Inc.`` for ``ACME Inc``) holds the CREATE for
the match review queue, and the reviewer's decision links it or lets it register.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError

from adapters.inbound.identity import Nobody, identify
from adapters.inbound.matching import Candidate
from adapters.inbound.model import Known, Ref, Step, Translation
from adapters.salesforce.cdc import Change
from hub.domain.customer import Address, normalise_domain
from hub.domain.errors import InvalidValue

CRM = "crm"
_ADDRESS_PARTS = ("Street", "City", "State", "StateCode", "PostalCode", "Country", "CountryCode")


def translate(change: Change, known: Known) -> Translation:
    if change.change_type == "DELETE":
        return Translation.ignore(
            f"account {change.record_id} was deleted in Salesforce: Concord keeps the "
            "customer (close or merge it through the API)"
        )
    record = known.mirror("Account", change.record_id) or dict(change.fields)
    ref = Ref(CRM, "customer", change.record_id)
    customer = known.lookup(ref)
    if customer is None:
        if change.change_type == "UPDATE" or not record.get("Name"):
            return Translation.wait(ref)  # its CREATE (or an initial load) registers it
        return _register(change, record, known)
    data, waits = _details(change.fields.keys(), record, known)
    if waits is not None:
        return Translation.wait(waits)
    if not data:
        return Translation.ignore(
            f"account {change.record_id}: the change touches no field Concord keeps from CRM"
        )
    return Translation(steps=(Step("customer", "change_details", data, target=customer),))


def _register(change: Change, record: dict[str, Any], known: Known) -> Translation:
    data, waits = _details(record.keys(), record, known)
    if waits is not None:
        return Translation.wait(waits)
    for name in ("parent_customer_id", "billing_address", "web_domain"):
        if data.get(name) is None:
            data.pop(name, None)  # nothing to clear on a new customer
    record_id = change.record_id
    candidate = Candidate(legal_name=data["legal_name"], web_domain=data.get("web_domain"))
    parent = data.get("parent_customer_id")
    found = identify(
        known, CRM, record_id, candidate, not_these=frozenset({UUID(str(parent))} if parent else ())
    )
    if isinstance(found, Translation):
        return found
    if isinstance(found, Nobody):
        return Translation(steps=(Step("customer", "register", data, source_record_id=record_id),))
    return Translation(steps=link_and_update(found, record_id, data))


def link_and_update(customer: Any, record_id: str, data: dict[str, Any]) -> tuple[Step, ...]:
    """Link the CRM record to the customer it matched, and apply its CRM-owned fields."""
    link = Step(
        "customer",
        "link",
        {"system": CRM, "external_id": record_id},
        target=customer,
        source_record_id=record_id,
    )
    change = Step("customer", "change_details", data, target=customer)
    return (link, change) if data else (link,)


def _details(
    reported: Any, record: dict[str, Any], known: Known
) -> tuple[dict[str, Any], Ref | None]:
    """Customer detail fields for the account fields in ``reported``, values from
    ``record``; or the parent account this waits for."""
    names = set(reported)
    data: dict[str, Any] = {}
    if "Name" in names and record.get("Name"):
        data["legal_name"] = data["display_name"] = record["Name"]
    if "Website" in names:
        domain = _domain(record.get("Website"))
        if domain is not False:
            data["web_domain"] = domain
    if "ParentId" in names:
        parent = record.get("ParentId")
        if parent is None:
            data["parent_customer_id"] = None
        else:
            found = known.lookup(Ref(CRM, "customer", parent))
            if found is None:
                return {}, Ref(CRM, "customer", parent)  # child before parent: held
            data["parent_customer_id"] = str(found)
    if any(_is_address(name) for name in names):
        send, address = billing_address(record)
        if send:
            data["billing_address"] = address
    return data, None


def _domain(website: Any) -> str | bool | None:
    """The bare host of ``Website``; None to clear; False when it is no web address
    (``n/a``): left out rather than refusing the whole change."""
    if website is None or not str(website).strip():
        return None
    try:
        return normalise_domain(str(website))
    except InvalidValue:
        return False


def _is_address(name: str) -> bool:
    if name.startswith("BillingAddress."):
        return True
    return name.startswith("Billing") and name.removeprefix("Billing") in _ADDRESS_PARTS


def billing_address(record: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """``(send, address)`` from the compound ``BillingAddress.*`` or the flat
    ``BillingStreet``… fields: an address when street, city and an ISO country code are
    known; ``(True, None)`` when every part was cleared; ``(False, None)`` when it is
    incomplete (a country typed as a name in an org without country picklists): left as it
    is rather than stored wrong."""

    def part(name: str) -> str | None:
        value = record.get(f"BillingAddress.{name}", record.get(f"Billing{name}"))
        return str(value).strip() or None if value is not None else None

    parts = {name: part(name) for name in _ADDRESS_PARTS}
    if not any(parts.values()):
        return True, None
    country = parts["CountryCode"] or parts["Country"] or ""
    street = (parts["Street"] or "").splitlines()
    if not street or not parts["City"] or not (len(country) == 2 and country.isalpha()):
        return False, None
    body = {
        "line1": street[0].strip(),
        "line2": ", ".join(s.strip() for s in street[1:] if s.strip()) or None,
        "city": parts["City"],
        "region": parts["StateCode"] or parts["State"],
        "postal_code": parts["PostalCode"],
        "country": country.upper(),
    }
    try:
        return True, Address.model_validate(body).model_dump(mode="json")
    except ValidationError:
        return False, None
