"""NetSuite's way out: canonical events turned into SuiteTalk REST upserts.

The ERP receives what it owns or needs (Q2C.md, adapters/ownership.yaml) and nothing else:

=====================================  ===================================================
``OrderValidated``                     upsert the customer (its parent first), then the
                                       sales order ``eid:<CRM opportunity id>`` with every
                                       line's ERP item id from the product catalogue
``OrderAmended``                       the sales order's lines replaced (if it was sent)
``OrderCancelled``                     the sales order's ``orderStatus`` set to C Cancelled
``OrderHeld``/``OrderReleased``         the sales order's ``custbody_concord_hold`` (and the
                                       reason) set or cleared: a compensation, so the ERP
                                       stops fulfilling what billing will not bill
``InvoiceIssued``                      upsert the invoice ``eid:<billing invoice id>`` to
                                       post (line taxes as billing computed them)
``PaymentReceived``/``PaymentApplied``  upsert the customer payment ``eid:<payment id>``
                                       applying to the invoices it pays
=====================================  ===================================================

Why upserts by ``externalId`` everywhere: NetSuite has no idempotency key for synchronous
calls, and delivery is at least once; a retried event (a 429, a timeout after NetSuite
applied the call) must find the record it made, never make a second customer or order.
The externalIds are the other systems' ids — the Salesforce account and opportunity ids,
the billing invoice id — because that is what Concord's user-event script sends back
(adapters/netsuite/adapter.py links the saved record by them).

Why the full record from the hub (``HubReader``) and not the event: ``OrderValidated``
carries no lines, and a retry hours later should send the order as it is then.

Events whose ``provenance.source_system`` is ``erp`` are NetSuite's own changes coming back
(an order cancelled in NetSuite): they are not sent again (no ping-pong).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from adapters.connectors.budget import Budget
from adapters.connectors.hub_reader import HubReader
from adapters.connectors.port import Connector, PermanentDeliveryError, TransientDeliveryError
from adapters.netsuite.client import NetSuiteClient, NetSuiteMissing, eid
from adapters.settings import Settings
from hub.domain.product import product_id

__all__ = ["SOURCE_SYSTEM", "InvoiceNotInNetSuiteYet", "NetSuiteConnector", "netsuite_connector"]

SOURCE_SYSTEM = "erp"
#: Custom fields naming Concord's own ids on NetSuite records (so a payment finds the
#: invoice it pays, and a person in NetSuite sees the canonical record).
CONCORD_CUSTOMER_FIELD = "custentity_concord_customer_id"
CONCORD_ORDER_FIELD = "custbody_concord_order_id"
CONCORD_INVOICE_FIELD = "custbody_concord_invoice_id"
OPPORTUNITY_FIELD = "custbody_sf_opportunity_id"
_MAX_PARENTS = 10
#: Records this process sent and NetSuite took, remembered (``_upsert_unless_taken``).
SENT_RECORDS = 10_000
SENT_TTL_S = 300.0
#: Whether the delivery under way skipped a customer NetSuite took before (per delivery:
#: deliveries may run concurrently, each in its own task and so its own context).
_SKIPPED: ContextVar[bool] = ContextVar("netsuite_skipped_customer", default=False)

Handler = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]


#: Custom body fields of the sales order for Concord's hold (a SuiteScript deployment
#: defines them; a workflow can block fulfilment while the box is ticked).
HOLD_FIELD = "custbody_concord_hold"
HOLD_REASON_FIELD = "custbody_concord_hold_reason"


class InvoiceNotInNetSuiteYet(TransientDeliveryError):
    """A payment came before the invoice it pays reached NetSuite: held (retried), and no
    sign that anything remembered of NetSuite is wrong."""


class NetSuiteConnector(Connector):
    """Delivers the ERP's share of the canonical events to one NetSuite account."""

    def __init__(self, client: NetSuiteClient, hub: HubReader) -> None:
        self.client = client
        self.hub = hub
        self._sent: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()
        """(kind, externalId) -> (when, the record NetSuite took from this process)."""
        self._found: dict[str, list[str]] = {}
        """Concord invoice id -> NetSuite's internal ids of its invoice (found, or upserted)."""
        self._handlers: dict[str, Handler] = {
            "OrderValidated": self._order_validated,
            "OrderAmended": self._order_amended,
            "OrderCancelled": self._order_cancelled,
            "OrderHeld": self._order_hold,
            "OrderReleased": self._order_hold,
            "InvoiceIssued": self._invoice_issued,
            "PaymentReceived": self._payment,
            "PaymentApplied": self._payment,
        }

    def wants(self, envelope: dict[str, Any]) -> bool:
        """Events the ERP needs, unless NetSuite said them itself (no ping-pong)."""
        if str(envelope.get("type")) not in self._handlers:
            return False
        return (envelope.get("provenance") or {}).get("source_system") != SOURCE_SYSTEM

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        """Idempotent by construction (upserts by externalId), so ``idempotency_key`` is
        not sent: NetSuite's synchronous API takes none."""
        del idempotency_key
        if not self.wants(envelope):
            return
        handler = self._handlers[str(envelope["type"])]
        skipped = _SKIPPED.set(False)
        try:
            await handler(envelope)
        except InvoiceNotInNetSuiteYet:
            # Concord's own wait, not NetSuite's refusal: forgetting what NetSuite took
            # (for every delivery of the process) would resend each customer and look up
            # each invoice again, and payments often come before their invoice.
            raise
        except Exception as failed:
            self._sent.clear()  # a retry later sends (and looks up) everything again
            self._found.clear()
            if not _SKIPPED.get() or not isinstance(failed, PermanentDeliveryError):
                raise
            # NetSuite may have lost a customer it took (deleted by a person, say, so the
            # order naming it is refused): once more as before the memory, customers first.
            await handler(envelope)
        finally:
            _SKIPPED.reset(skipped)

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- orders -------------------------------------------------------------------------------
    async def _order_validated(self, envelope: dict[str, Any]) -> None:
        order = await self._state("order", envelope["aggregate_id"])
        customer = await self._state("customer", order["customer_id"])
        await self._upsert_customer(customer, order.get("currency"))
        await self._upsert_unless_taken("salesOrder", await self._sales_order(order, customer))

    async def _order_amended(self, envelope: dict[str, Any]) -> None:
        """New lines for a sales order NetSuite has; an order not sent yet is sent whole
        when it is validated again."""
        order = await self._state("order", envelope["aggregate_id"])
        customer = await self._state("customer", order["customer_id"])
        record = await self._sales_order(order, customer)
        changes = {"item": record["item"], CONCORD_ORDER_FIELD: order["id"]}
        try:
            await self._update_order(order, changes, replace="item")
        except NetSuiteMissing:
            return

    async def _order_cancelled(self, envelope: dict[str, Any]) -> None:
        order = await self._state("order", envelope["aggregate_id"])
        memo = str((envelope.get("data") or {}).get("reason") or "cancelled in Concord")
        changes = {"orderStatus": {"id": "C"}, "memo": memo[:999]}
        try:
            await self._update_order(order, changes)
        except NetSuiteMissing:
            return  # never sent to NetSuite (cancelled before validation): nothing to cancel

    async def _order_hold(self, envelope: dict[str, Any]) -> None:
        order = await self._state("order", envelope["aggregate_id"])
        held = envelope.get("type") == "OrderHeld"
        reason = str((envelope.get("data") or {}).get("reason") or "") if held else ""
        changes = {HOLD_FIELD: held, HOLD_REASON_FIELD: reason[:999]}
        try:
            await self._update_order(order, changes)
        except NetSuiteMissing:
            return  # never reached NetSuite: there is nothing to hold

    async def _sales_order(self, order: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
        lines = []
        for index, line in enumerate(order.get("lines") or []):
            item = await self._erp_item(str(line["sku"]), f"order line {index + 1}")
            row: dict[str, Any] = {
                "item": {"id": item},
                "quantity": _decimal(line["quantity"]),
                "rate": _decimal(line["unit_price"]),
                "amount": _decimal(line["amount"]),
                "custcol_concord_charge_type": line.get("charge_type"),
            }
            if line.get("description"):
                row["description"] = str(line["description"])[:999]
            lines.append(row)
        record: dict[str, Any] = {
            "externalId": order_external_id(order),
            "entity": {"externalId": customer_external_id(customer)},
            "currency": {"externalId": order["currency"]},
            "tranDate": order.get("booking_date"),
            "startDate": order.get("start_date"),
            CONCORD_ORDER_FIELD: order["id"],
            "item": {"items": lines},
        }
        if order.get("opportunity_id"):
            record[OPPORTUNITY_FIELD] = order["opportunity_id"]
        return {k: v for k, v in record.items() if v is not None}

    # -- invoices -----------------------------------------------------------------------------
    async def _invoice_issued(self, envelope: dict[str, Any]) -> None:
        invoice = await self._state("invoice", envelope["aggregate_id"])
        customer = await self._state("customer", invoice["customer_id"])
        await self._upsert_customer(customer, invoice.get("currency"))
        external = invoice_external_id(envelope)
        lines = []
        taxes = [line.get("tax") for line in invoice.get("lines") or []]
        untaxed = all(tax is None for tax in taxes)
        for index, line in enumerate(invoice.get("lines") or []):
            item = await self._erp_item(str(line["sku"]), f"invoice line {index + 1}")
            tax = line.get("tax")
            if untaxed:  # billing taxed the invoice, not its lines: the first line carries it
                tax = _money(invoice.get("tax")) if index == 0 else Decimal(0)
            lines.append(
                {
                    "item": {"id": item},
                    "quantity": _decimal(line["quantity"]),
                    "rate": _decimal(line["unit_price"]),
                    "amount": _decimal(line["amount"]),
                    "tax1Amt": _decimal(tax if tax is not None else 0),
                    **(
                        {"description": str(line["description"])[:999]}
                        if line.get("description")
                        else {}
                    ),
                }
            )
        record: dict[str, Any] = {
            "externalId": external,
            "entity": {"externalId": customer_external_id(customer)},
            "currency": {"externalId": invoice["currency"]},
            "tranDate": invoice.get("issue_date"),
            "dueDate": invoice.get("due_date"),
            CONCORD_INVOICE_FIELD: invoice["id"],
            "item": {"items": lines},
        }
        if invoice.get("source_number"):
            record["otherRefNum"] = invoice["source_number"]
        created_from = await self._sales_order_of(invoice)
        if created_from is not None:
            record["createdFrom"] = {"externalId": created_from}
        internal = await self._upsert_unless_taken("invoice", record)
        if internal is not None:
            # NetSuite's answer names the invoice the payment will look for (it carries
            # the Concord invoice id): no search for it when the payment comes.
            self._remember_invoice(str(invoice["id"]), [internal])

    def _remember_invoice(self, invoice_id: str, found: list[str]) -> None:
        if invoice_id not in self._found and len(self._found) >= SENT_RECORDS:
            self._found.clear()
        self._found[invoice_id] = found  # a record's internal id never changes

    async def _sales_order_of(self, invoice: dict[str, Any]) -> str | None:
        """The externalId of the sales order the invoice bills, if NetSuite accepted one."""
        order_id = invoice.get("order_id")
        if order_id is None and invoice.get("contract_id"):
            contract = await asyncio.to_thread(self.hub.state, "contract", invoice["contract_id"])
            order_id = (contract or {}).get("order_id")
        if order_id is None:
            return None
        order = await asyncio.to_thread(self.hub.state, "order", str(order_id))
        if not order or not order.get("erp_order_number"):
            return None
        return order_external_id(order)

    # -- payments -----------------------------------------------------------------------------
    async def _payment(self, envelope: dict[str, Any]) -> None:
        payment = await self._state("payment", envelope["aggregate_id"])
        customer = await self._state("customer", payment["customer_id"])
        amount = payment["amount"]
        applied: dict[str, Decimal] = {}
        for application in payment.get("applications") or []:
            key = str(application["invoice_id"])
            applied[key] = applied.get(key, Decimal(0)) + _money(application["amount"])
        rows = []
        for invoice_id, paid in applied.items():
            if paid <= 0:
                continue
            found = self._found.get(invoice_id)
            if found:
                _SKIPPED.set(True)  # remembered, not asked: a refusal is retried asking
            else:
                found = await self.client.find_ids("invoice", CONCORD_INVOICE_FIELD, invoice_id)
            if found:
                self._remember_invoice(invoice_id, found)
            if not found:
                # Held, not failed: the invoice is posted once billing issued it.
                raise InvoiceNotInNetSuiteYet(
                    f"invoice {invoice_id} is not in NetSuite yet; the payment waits for it"
                )
            rows.append({"doc": {"id": found[0]}, "apply": True, "amount": paid})
        await self._upsert_customer(customer, amount.get("currency"))
        record: dict[str, Any] = {
            "externalId": payment["id"],
            "customer": {"externalId": customer_external_id(customer)},
            "currency": {"externalId": amount["currency"]},
            "payment": _money(amount),
            "tranDate": str(payment.get("received_at") or "")[:10] or None,
            "memo": payment.get("reference"),
            "apply": {"items": rows},
        }
        await self._upsert_unless_taken(
            "customerPayment", {k: v for k, v in record.items() if v is not None}
        )

    # -- customers ----------------------------------------------------------------------------
    async def _upsert_customer(self, customer: dict[str, Any], currency: Any) -> None:
        """The customer, its parents first (NetSuite refuses a parent it does not have)."""
        chain = [customer]
        while chain[-1].get("parent_customer_id") and len(chain) <= _MAX_PARENTS:
            above = await self._state("customer", chain[-1]["parent_customer_id"])
            if any(above["id"] == seen["id"] for seen in chain):
                break
            chain.append(above)
        for index, member in enumerate(reversed(chain)):
            parent = chain[len(chain) - index] if index else None
            record: dict[str, Any] = {
                "externalId": customer_external_id(member),
                "companyName": member.get("legal_name") or member.get("display_name"),
                CONCORD_CUSTOMER_FIELD: member["id"],
            }
            own = member.get("currency") or (currency if member is customer else None)
            if own:
                record["currency"] = {"externalId": own}
            if parent is not None:
                record["parent"] = {"externalId": customer_external_id(parent)}
            await self._upsert_unless_taken("customer", record)

    async def _update_order(
        self, order: dict[str, Any], changes: dict[str, Any], replace: str | None = None
    ) -> None:
        """Change the sales order in place; what was remembered of it no longer holds."""
        external = order_external_id(order)
        self._sent.pop(("salesOrder", external), None)
        await self.client.update("salesOrder", eid(external), changes, replace=replace)

    async def _upsert_unless_taken(self, kind: str, record: dict[str, Any]) -> str | None:
        """Upsert ``record`` unless NetSuite took this very record from this process a
        moment ago; the internal id NetSuite answered (None when skipped).

        Why: every order, invoice and payment needs its customer (and the parents) in
        NetSuite first, and a payment is sent on receipt and again on each application
        (unchanged when the hub already held them all); upserting unchanged records was
        over a third of the ERP's calls per deal under NetSuite's account-wide concurrency
        limit. Skipping is exact while the record is the one NetSuite took; the memory is
        short (``SENT_TTL_S``) so a change made meanwhile by another process is not
        outlived for long, and it is forgotten after any failed delivery."""
        key = (kind, str(record["externalId"]))
        sent = self._sent.get(key)
        if sent is not None and time.monotonic() - sent[0] <= SENT_TTL_S and sent[1] == record:
            _SKIPPED.set(True)
            return None
        internal = await self.client.upsert(kind, key[1], record)
        self._sent[key] = (time.monotonic(), record)
        self._sent.move_to_end(key)
        while len(self._sent) > SENT_RECORDS:
            self._sent.popitem(last=False)
        return internal

    # -- reads --------------------------------------------------------------------------------
    async def _state(self, entity: str, aggregate_id: Any) -> dict[str, Any]:
        found = await asyncio.to_thread(self.hub.state, entity, str(aggregate_id))
        if found is None:
            raise PermanentDeliveryError(f"the hub has no {entity} {aggregate_id}")
        if entity == "customer":
            # A customer the CRM registered is identified by its account id without a link
            # event: that id (the upsert key the user-event script links back by) is in the
            # cross-reference.
            xref = await asyncio.to_thread(self.hub.external_ids, str(aggregate_id))
            found["external_ids"] = {**xref, **(found.get("external_ids") or {})}
        return found

    async def _erp_item(self, sku: str, where: str) -> str:
        product = await asyncio.to_thread(self.hub.state, "product", str(product_id(sku)))
        ids = ((product or {}).get("ids") or {}).get("erp_item_ids") or []
        if not ids:
            raise PermanentDeliveryError(
                f"{where}: SKU {sku} has no ERP item id in the product catalogue "
                "(erp_item_ids, /v1/mappings); map it and retry"
            )
        return str(ids[0])


def customer_external_id(customer: dict[str, Any]) -> str:
    """The CRM account id (what the user-event script links back by), else Concord's id."""
    return str((customer.get("external_ids") or {}).get("crm") or customer["id"])


def order_external_id(order: dict[str, Any]) -> str:
    """The CRM opportunity id the order was placed from, else Concord's order id."""
    return str(order.get("opportunity_id") or order["id"])


def invoice_external_id(envelope: dict[str, Any]) -> str:
    """Billing's invoice id (the ``InvoiceIssued`` provenance's record), else Concord's."""
    provenance = envelope.get("provenance") or {}
    if provenance.get("source_system") == "billing" and provenance.get("source_record_id"):
        return str(provenance["source_record_id"])
    return str(envelope["aggregate_id"])


def _decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _money(value: Any) -> Decimal:
    """A ``Money`` as the hub shows it (``{"amount": "1.00", "currency": …}``) or a number."""
    if isinstance(value, dict):
        return _decimal(value.get("amount", 0))
    return _decimal(value if value is not None else 0)


def netsuite_connector(
    settings: Settings, hub: HubReader, budget: Budget | None = None
) -> NetSuiteConnector | None:
    """The connector ``CONCORD_NETSUITE_URL`` configures (None when unset). ``budget``: the
    shared :class:`~adapters.connectors.budget.PgBudget` of target ``erp`` sized
    ``CONCORD_NETSUITE_CONCURRENCY`` (the composition root makes it; in-process if None)."""
    if settings.netsuite_url is None:
        return None
    shared = budget or Budget("erp", settings.netsuite_concurrency)
    client = NetSuiteClient(settings.netsuite_url, settings.netsuite_token, budget=shared)
    return NetSuiteConnector(client, hub)
