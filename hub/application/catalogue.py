"""The full command catalogue: every aggregate module's specs in one table.

Built by a function, not at import time, so each caller (the API, the batch ingest, a test)
gets its own instance and duplicate ``(entity, name)`` pairs fail loudly when it is built.
"""

from __future__ import annotations

from hub.application import contracts, customers, invoices, orders, payments, products
from hub.application.commands import Catalogue


def build_catalogue() -> Catalogue:
    """Every command of the aggregates, in lineage order (customer to payment), then the
    product mappings."""
    catalogue = Catalogue()
    for module in (customers, contracts, orders, invoices, payments, products):
        catalogue.add(*module.SPECS)
    return catalogue
