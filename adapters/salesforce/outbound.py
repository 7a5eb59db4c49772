"""The CRM connector: canonical events → milestone fields on the Opportunity a deal came from.

Why only PATCHes of one Opportunity: the CRM owns the deal, Concord owns what happened to it
afterwards. The connector never creates a CRM record; it finds the opportunity the order was
placed from (the order's ``opportunity_id``, else its CRM provenance) and writes the
milestone fields (:mod:`adapters.salesforce.milestones`). Writes are idempotent by nature:
the connector reads the opportunity first and PATCHes only the fields that differ, so a
redelivered event changes nothing and costs no write.

No ping-pong: the CRM's own events (``OrderPlaced`` from a won opportunity) are still
milestones the CRM needs — Concord's derived status — so they are sent; the write carries
``Sforce-Call-Options: client=<echo client>`` and the CDC echo of it is ignored inbound.
Every other event type is none of the CRM's business: returned at once, nothing called.

Events of orders that did not come from the CRM (placed through the API, from HubSpot ...)
have no opportunity: nothing to tell. An opportunity deleted in the CRM is a permanent error
(the workbench shows it; nothing can be written).
"""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.connectors.budget import Budget
from adapters.connectors.hub_reader import HubReader
from adapters.connectors.port import Connector, PermanentDeliveryError
from adapters.salesforce.client import SalesforceClient
from adapters.salesforce.milestones import changes as milestone_changes
from adapters.salesforce.milestones import milestone_of
from adapters.settings import Settings
from projections.rows import business_time

__all__ = ["SalesforceConnector", "salesforce_connector"]

_PAID = "paid"
_OPPORTUNITY_PREFIX = "006"


class SalesforceConnector(Connector):
    """``deliver(envelope, key)`` for the ``crm`` subscriber."""

    def __init__(self, client: SalesforceClient, hub: HubReader) -> None:
        self.client = client
        self.hub = hub

    def wants(self, envelope: dict[str, Any]) -> bool:
        """Milestone events only (the CRM's own included: Concord's status is news to it)."""
        return milestone_of(str(envelope.get("type")), envelope.get("data") or {}) is not None

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        del idempotency_key  # idempotent by construction: only differing fields are PATCHed
        data: dict[str, Any] = envelope.get("data") or {}
        milestone = milestone_of(str(envelope.get("type")), data)
        if milestone is None:
            return
        if milestone.status == "Paid" and not await self._paid(envelope, data):
            return
        order_id = await self._order_id(envelope, data)
        if order_id is None:
            return
        opportunity = await self._opportunity(order_id, envelope, data)
        if opportunity is None:
            return
        current = await self.client.get("Opportunity", opportunity)
        if current is None:
            raise PermanentDeliveryError(
                f"opportunity {opportunity} (order {order_id}) does not exist in Salesforce"
            )
        fields = milestone_changes(milestone, business_time(envelope), current)
        if fields:
            await self.client.update("Opportunity", opportunity, fields)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _state(self, entity: str, aggregate_id: Any) -> dict[str, Any] | None:
        if not aggregate_id:
            return None
        return await asyncio.to_thread(self.hub.state, entity, str(aggregate_id))

    async def _order_id(self, envelope: dict[str, Any], data: dict[str, Any]) -> str | None:
        """The order an event is about, through its contract or invoice when needed."""
        aggregate = envelope.get("aggregate")
        aggregate_id = envelope.get("aggregate_id")
        if aggregate == "order":
            return str(aggregate_id)
        if aggregate == "contract":
            contract = data if data.get("order_id") else await self._state("contract", aggregate_id)
            return _text((contract or {}).get("order_id"))
        invoice: dict[str, Any] | None = None
        if aggregate == "invoice":
            invoice = data if "order_id" in data else await self._state("invoice", aggregate_id)
        elif aggregate == "payment":
            invoice = await self._state("invoice", data.get("invoice_id"))
        if invoice is None:
            return None
        if invoice.get("order_id"):
            return str(invoice["order_id"])
        contract = await self._state("contract", invoice.get("contract_id"))
        return _text((contract or {}).get("order_id"))

    async def _opportunity(
        self, order_id: str, envelope: dict[str, Any], data: dict[str, Any]
    ) -> str | None:
        """The order's opportunity: ``opportunity_id`` (the event's, else the order's),
        else the CRM record the order was placed from."""
        placed = envelope.get("type") == "OrderPlaced"
        if placed and data.get("opportunity_id"):
            return str(data["opportunity_id"])
        order = await self._state("order", order_id) or {}
        if order.get("opportunity_id"):
            return str(order["opportunity_id"])
        provenance = (envelope.get("provenance") if placed else order.get("provenance")) or {}
        record = str(provenance.get("source_record_id") or "")
        if provenance.get("source_system") == "crm" and record.startswith(_OPPORTUNITY_PREFIX):
            return record
        return None

    async def _paid(self, envelope: dict[str, Any], data: dict[str, Any]) -> bool:
        """Whether the invoice a payment was applied to is paid in full now."""
        invoice_id = (
            envelope.get("aggregate_id")
            if envelope.get("aggregate") == "invoice"
            else data.get("invoice_id")
        )
        invoice = await self._state("invoice", invoice_id)
        return invoice is not None and invoice.get("status") == _PAID


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def salesforce_connector(
    settings: Settings, hub: HubReader, budget: Budget | None = None
) -> SalesforceConnector | None:
    """The connector ``CONCORD_SALESFORCE_URL`` configures (None when unset). ``budget``: the
    shared :class:`~adapters.connectors.budget.PgBudget` of target ``crm`` sized
    ``CONCORD_SALESFORCE_CONCURRENCY`` (the composition root makes it; in-process if None)."""
    if settings.salesforce_url is None:
        return None
    if not settings.salesforce_token:
        raise ValueError("CONCORD_SALESFORCE_URL is set: CONCORD_SALESFORCE_TOKEN is needed too")
    client = SalesforceClient(
        settings.salesforce_url,
        settings.salesforce_token,
        echo_client=settings.salesforce_echo_client,
        budget=budget or Budget("crm", settings.salesforce_concurrency),
    )
    return SalesforceConnector(client, hub)
