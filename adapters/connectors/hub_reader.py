"""What an outbound connector may read of the hub: the current state of one aggregate.

Why a port: an event says what changed (``OrderValidated`` carries no lines), a target needs
the whole record (the sales order with its lines, the customer with its address). The
connector reads the aggregate's current state at delivery time — which is what a retry hours
later should send, too. Tests give connectors a dict; the composition root gives them the
hub's command service.
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


class MemoryHubReader:
    """A dict of ``(entity, id) → state`` (unit tests)."""

    def __init__(self, states: Mapping[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.states: dict[tuple[str, str], dict[str, Any]] = dict(states or {})

    def state(self, entity: str, aggregate_id: str) -> dict[str, Any] | None:
        found = self.states.get((entity, str(aggregate_id)))
        return None if found is None else dict(found)


class ServiceHubReader:
    """The hub's own reads (``CommandService.get``)."""

    def __init__(self, service: Any) -> None:
        self._service = service

    def state(self, entity: str, aggregate_id: str) -> dict[str, Any] | None:
        try:
            view = self._service.get(entity, UUID(str(aggregate_id)))
        except NotFound:
            return None
        return {"id": str(view["id"]), "version": view["version"], **view["state"]}
