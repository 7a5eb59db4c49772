"""What an outbound connector may read of the hub: the current state of one aggregate.

Why a port: an event says what changed (``OrderValidated`` carries no lines), a target needs
the whole record (the sales order with its lines, the customer with its address). The
connector reads the aggregate's current state at delivery time — which is what a retry hours
later should send, too. Tests give connectors a dict; the composition root gives them the
hub's command service.

Other systems' ids of an aggregate live in the cross-reference, not in its state (a customer
the CRM registered knows its account id only there): :meth:`HubReader.external_ids` reads
them, for a target that must name a record the way another system does (Stripe's
``metadata.sf_account_id``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID

from hub.domain.errors import NotFound

__all__ = ["HubReader", "MemoryHubReader", "ServiceHubReader"]


class HubReader(Protocol):
    def state(self, entity: str, aggregate_id: str) -> dict[str, Any] | None:
        """The aggregate's current state (``aggregate_view(...)["state"]`` plus ``id`` and
        ``version``), or None when it does not exist. Synchronous: call it in a thread."""

    def external_ids(self, aggregate_id: str) -> dict[str, str]:
        """``system → id`` of the aggregate in the cross-reference (the first id when a
        system has several); empty when none. Synchronous: call it in a thread."""


class MemoryHubReader:
    """A dict of ``(entity, id) → state`` (unit tests)."""

    def __init__(
        self,
        states: Mapping[tuple[str, str], dict[str, Any]] | None = None,
        ids: Mapping[str, dict[str, str]] | None = None,
    ) -> None:
        self.states: dict[tuple[str, str], dict[str, Any]] = dict(states or {})
        self.ids: dict[str, dict[str, str]] = dict(ids or {})

    def state(self, entity: str, aggregate_id: str) -> dict[str, Any] | None:
        found = self.states.get((entity, str(aggregate_id)))
        return None if found is None else dict(found)

    def external_ids(self, aggregate_id: str) -> dict[str, str]:
        return dict(self.ids.get(str(aggregate_id), {}))


class ServiceHubReader:
    """The hub's own reads (``CommandService.get``; ``xref``: the runtime's cross-reference,
    ``PostgresCrossReference.external_ids``)."""

    def __init__(self, service: Any, xref: Any = None) -> None:
        self._service = service
        self._xref = xref

    def state(self, entity: str, aggregate_id: str) -> dict[str, Any] | None:
        try:
            view = self._service.get(entity, UUID(str(aggregate_id)))
        except NotFound:
            return None
        return {"id": str(view["id"]), "version": view["version"], **view["state"]}

    def external_ids(self, aggregate_id: str) -> dict[str, str]:
        if self._xref is None:
            return {}
        found: dict[str, str] = {}
        for row in self._xref.external_ids(UUID(str(aggregate_id))):
            found.setdefault(str(row["system"]), str(row["external_id"]))
        return found
