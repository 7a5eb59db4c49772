"""Finding the canonical SKU of a source's product id, or waiting for its mapping.

A line whose product has no mapping must not be booked under a guessed SKU: the event is
held, waiting for the product's id in the cross-reference, and appears in ``GET
/v1/inbound/held`` naming the id that needs a mapping. Adding the mapping (``PUT
/v1/mappings/{sku}``, ``concord mappings load``) releases it.
"""

from __future__ import annotations

from adapters.inbound.model import Known, Ref, Translation


def sku_or_wait(known: Known, system: str, external_id: str) -> str | Translation:
    """The SKU that ``system`` (crm / erp / billing) calls ``external_id``, or a wait."""
    ref = Ref(system, "product", external_id)
    product = known.lookup(ref)
    if product is None:
        return Translation.wait(ref)
    state = known.state("product", product)
    if state is None:  # pragma: no cover - the cross-reference names an existing product
        return Translation.wait(ref)
    return str(state["sku"])
