"""Every read model Concord runs (``concord projections run`` starts one runner for each)."""

from __future__ import annotations

from projections.billing.subscriptions import BillingSubscriptions
from projections.crm.projection import CrmView
from projections.definition import Projection
from projections.erp.customers import ErpCustomers
from projections.erp.invoices import ErpBilling
from projections.erp.orders import ErpOrders
from projections.lineage.projection import Lineage
from projections.metrics.projection import Metrics
from projections.reconciliation.projection import Reconciliation


def all_projections() -> list[Projection]:
    return [
        ErpCustomers(),
        BillingSubscriptions(),
        ErpOrders(),
        ErpBilling(),
        Reconciliation(),
        CrmView(),
        Metrics(),
        Lineage(),
    ]


def by_name(name: str) -> Projection | None:
    return next((p for p in all_projections() if p.name == name), None)
