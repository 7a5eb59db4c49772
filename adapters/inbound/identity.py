"""Which customer a source record without a linked id is, before anything is created.

Shared by every translator that meets a customer record carrying no other system's id
(Salesforce and HubSpot accounts on first sight, NetSuite customers without ``externalId``,
Stripe and Chargebee customers without a CRM account id). In this order:

1. a person's decision on the record (``/v1/matches``) stands: linked to a customer, or new;
2. a **sure** match (same tax id, same web domain, the same legal name) is that customer,
   unless that customer is already linked to *another* record of the same system: two
   source records for one customer is for a person to resolve (merge or new), not to guess;
3. an **uncertain** match (a legal-form or punctuation variant, a typo) asks a person:
   the delivery is held for the review queue instead of creating a duplicate;
4. otherwise nobody Concord knows: the caller creates (CRM) or ignores (ERP, billing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from adapters.inbound.matching import Candidate, MatchResult
from adapters.inbound.model import Known, Step, Translation


@dataclass(frozen=True)
class Nobody:
    """No customer Concord knows; ``decided`` when a person said so (``new``)."""

    decided: bool = False


def identify(
    known: Known,
    system: str,
    record_id: str,
    candidate: Candidate | None,
    *,
    not_these: frozenset[UUID] = frozenset(),
) -> UUID | Nobody | Translation:
    """The customer ``system``'s record ``record_id`` is, nobody, or a review to wait for.
    ``candidate`` is None when the record has no name to match by (only a decision links).

    ``not_these``: customers the record cannot be — its own parent in the account
    hierarchy (a subsidiary often shares its parent's web domain: a sure match by domain
    would fold the child into the parent)."""
    decided = known.decision(record_id)
    if decided is not None:
        _, customer_id = decided
        return Nobody(decided=True) if customer_id is None else customer_id
    if candidate is None:
        return Nobody()
    match = known.match(candidate)
    if match.sure and match.customer_id in not_these:
        return Nobody()
    if match.sure:
        assert match.customer_id is not None
        other = _linked(known.state("customer", match.customer_id), system)
        if other is None or other == record_id:
            return match.customer_id
        reason = f"{match.reason}, but linked to {system} record {other} already"
        return Translation.ask(record_id, MatchResult(None, reason, ((match.customer_id, reason),)))
    if match.uncertain:
        return Translation.ask(record_id, match)
    return Nobody()


def _linked(state: dict[str, Any] | None, system: str) -> str | None:
    """The record of ``system`` the customer is linked to (state keeps one per system)."""
    ids = (state or {}).get("external_ids") or {}
    if isinstance(ids, dict):
        found = ids.get(system)
        return None if found is None else str(found)
    for row in ids:  # the listed form ({system, external_id})
        if isinstance(row, dict) and row.get("system") == system:
            return str(row.get("external_id"))
    return None


def link_to(system: str, record_id: str, target: UUID, linked: UUID | None) -> Translation:
    """Link ``system``'s record to the customer ``target``, unless it is linked to it
    already (a repeated customer event changes nothing)."""
    if linked == target:
        return Translation.ignore(f"customer {record_id} is linked already")
    return Translation(
        steps=(
            Step(
                "customer",
                "link",
                {"system": system, "external_id": record_id},
                target=target,
                source_record_id=record_id,
            ),
        )
    )
