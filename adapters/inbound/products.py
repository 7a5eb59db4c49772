"""Finding the canonical SKU of a source's product id, or waiting for its mapping.

A line whose product has no mapping must not be booked under a guessed SKU: the event is
held, waiting for the product's id in the cross-reference, and appears in ``GET
/v1/inbound/held`` naming the id that needs a mapping. Adding the mapping (``PUT
/v1/mappings/{sku}``, ``concord mappings load``) releases it.
"""

from __future__ import annotations

from typing import Any

from adapters.inbound.model import Known, Ref, Translation


def product_or_wait(known: Known, system: str, *external_ids: str) -> dict[str, Any] | Translation:
    """The product (its state: ``sku``, ``charge_type``…) that the first mapped of
    ``external_ids`` names, or a wait for the first of them. Several ids, because a source
    names one product several ways (a Salesforce line's Product2Id and PricebookEntryId, an
    id in 18 and in 15 characters) and a mapping may list any of them."""
    wanted = [i for i in dict.fromkeys(external_ids) if i]
    if not wanted:
        raise ValueError("product_or_wait needs at least one id")
    for external_id in wanted:
        product = known.lookup(Ref(system, "product", external_id))
        if product is None:
            continue
        state = known.state("product", product)
        if state is not None:
            return state
    return Translation.wait(Ref(system, "product", wanted[0]))


def sku_or_wait(known: Known, system: str, external_id: str) -> str | Translation:
    """The SKU that ``system`` (crm / erp / billing) calls ``external_id``, or a wait."""
    found = product_or_wait(known, system, external_id)
    return found if isinstance(found, Translation) else str(found["sku"])
