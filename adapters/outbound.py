"""The outbound connectors the subscribers drive, built from settings (composition).

One connector per target system, the system's own API client when it is configured
(``CONCORD_NETSUITE_URL`` → the ERP's NetSuite connector, ``CONCORD_STRIPE_URL`` → billing's
Stripe connector, ``CONCORD_SALESFORCE_URL`` → the CRM's Salesforce connector), else the
generic signed HTTP connector of ``CONCORD_TARGETS``; each call under the target's budget
shared through PostgreSQL (``adapters/connectors/budget.py``); and, per
``CONCORD_OUTBOUND``, observe-only targets wrapped so nothing is sent.
"""

from __future__ import annotations

import threading
from typing import Any

from psycopg_pool import AsyncConnectionPool

from adapters.connectors.budget import PgBudget
from adapters.connectors.hub_reader import HubReader, ServiceHubReader
from adapters.connectors.observe import ObservingConnector
from adapters.connectors.port import Connector
from adapters.nats.registry import DECLARATIONS, check_targets, http_connectors
from adapters.netsuite.outbound import netsuite_connector
from adapters.salesforce.outbound import salesforce_connector
from adapters.settings import Settings
from adapters.stripe.outbound import STRIPE_CONCURRENCY, stripe_connector

__all__ = ["LazyHubReader", "configured_targets", "outbound_connectors"]

#: The system API each target's own connector speaks, and the setting that turns it on.
SYSTEM_URLS = {"erp": "netsuite_url", "crm": "salesforce_url", "billing": "stripe_url"}


def configured_targets(settings: Settings) -> set[str]:
    """Targets with a connector: a system URL set, or a ``CONCORD_TARGETS`` entry."""
    own = {name for name, field in SYSTEM_URLS.items() if getattr(settings, field, None)}
    return own | set(check_targets(settings))


class LazyHubReader:
    """A hub reader for a process that has no runtime yet (``concord subscribe`` alone):
    the hub is opened on the first read, once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._reader: ServiceHubReader | None = None
        self._lock = threading.Lock()

    def _open(self) -> ServiceHubReader:
        with self._lock:
            if self._reader is None:
                from adapters.bootstrap import open_runtime

                runtime = open_runtime(self._settings)
                self._reader = ServiceHubReader(runtime.hub, runtime.xref)
        return self._reader

    def state(self, entity: str, aggregate_id: str) -> dict[str, Any] | None:
        return self._open().state(entity, aggregate_id)

    def external_ids(self, aggregate_id: str) -> dict[str, str]:
        return self._open().external_ids(aggregate_id)


def outbound_connectors(
    settings: Settings, hub: HubReader, pool: AsyncConnectionPool[Any]
) -> dict[str, Connector]:
    """Every configured target's connector, by subscriber name."""
    schema = settings.schema_name
    connectors: dict[str, Connector] = {}
    erp = netsuite_connector(
        settings, hub, PgBudget(pool, schema, "erp", settings.netsuite_concurrency)
    )
    if erp is not None:
        connectors["erp"] = erp
    crm = salesforce_connector(
        settings, hub, PgBudget(pool, schema, "crm", settings.salesforce_concurrency)
    )
    if crm is not None:
        connectors["crm"] = crm
    billing = stripe_connector(
        settings,
        hub,
        PgBudget(pool, schema, "billing", STRIPE_CONCURRENCY, settings.stripe_rate),
    )
    if billing is not None:
        connectors["billing"] = billing
    connectors |= http_connectors(settings, besides=connectors)
    declared = {d.name for d in DECLARATIONS}
    for name, mode in settings.outbound_modes().items():
        if name not in declared:
            raise ValueError(
                f"CONCORD_OUTBOUND names {name!r}; the targets are {', '.join(sorted(declared))}"
            )
        if mode == "observe" and name in connectors:
            connectors[name] = ObservingConnector(name, connectors[name], pool, schema)
    return connectors
