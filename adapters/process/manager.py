"""The quote-to-cash process manager: one process per deal, following the canonical events
with tracking (exactly once) and deciding the hub commands that move the deal on.

The steps, in order (``q2c_steps``)::

    validate              hierarchy known, customer active, every line mapped → order
                          validate (or reject with reasons; waits, held, for a parent or a
                          mapping that is missing — released when it arrives)
    erp_order             the ERP subscriber creates customer and sales order; done when the
                          ERP accepts (its order number recorded)
    contract              → contract create with the recurring and usage lines only
    billing_subscription  the billing subscriber creates the subscription; done when billing
                          reports it active
    first_invoice         billing's first invoice for the deal
    payment               that invoice paid in full: the process is done

The connectors are never called from here: the subscribers push what the events say, the
systems' answers come back as inbound facts, and this follower sees them as events like any
other. Waiting is therefore the normal state of a step (``sent``: with the target system,
due by ``deadline_at``); a payment or invoice that arrives before its subscription is simply
recorded when it comes (the steps do not have to complete in order).

Everything it writes is a function of the events (times are the events' business times),
so a rebuild comes out identical; the commands it decides carry deterministic ids and the
dispatcher executes each once (:mod:`adapters.process.dispatcher`).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from adapters.process.contract_items import (
    ItemProblem,
    apply_changes,
    contract_items,
    item_changes,
    term_end,
)
from adapters.process.ids import contract_id_for
from adapters.process.tables import (
    COMMANDS,
    CUSTOMERS,
    EVENTS,
    INVOICES,
    PROCESSES,
    PRODUCTS,
    STEPS,
    TABLES,
)
from projections.definition import Envelope, Position, Projection, ViewCursor
from projections.rows import business_time

__all__ = ["STEP_NAMES", "QuoteToCash", "contract_id_for"]

STEP_NAMES = (
    "validate",
    "erp_order",
    "contract",
    "billing_subscription",
    "first_invoice",
    "payment",
)
_ORDINAL = {name: index + 1 for index, name in enumerate(STEP_NAMES)}


class QuoteToCash(Projection):
    name = "q2c"
    version = 4
    title = "Quote-to-cash process manager"
    stores: ClassVar[tuple[str, ...]] = (
        "customers",
        "products",
        "orders",
        "contracts",
        "invoices",
    )
    tables = TABLES

    def __init__(self, step_timeout: timedelta = timedelta(hours=1)) -> None:
        self.step_timeout = step_timeout

    def readable(self) -> list[str]:
        """BI may read the processes and their steps, not the outbox or the copies."""
        return [PROCESSES.name, STEPS.name, EVENTS.name]

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        handler = getattr(self, _handler_name(event["type"]), None)
        if handler is not None:
            handler(event, cursor)

    # --- what it knows of customers and products --------------------------------------------
    def _customer_registered(self, event: Envelope, cursor: ViewCursor) -> None:
        data = event["data"]
        cursor.execute(
            f"INSERT INTO {{{CUSTOMERS.name}}} (customer_id, parent_customer_id, status) "
            "VALUES (%s, %s, 'active') ON CONFLICT (customer_id) DO NOTHING",
            (event["aggregate_id"], data.get("parent_customer_id")),
        )
        self._wake(cursor, f"customer:{event['aggregate_id']}", event)

    def _customer_details_changed(self, event: Envelope, cursor: ViewCursor) -> None:
        data = event["data"]
        if "parent_customer_id" in data.get("changed", []):
            cursor.execute(
                f"UPDATE {{{CUSTOMERS.name}}} SET parent_customer_id = %s WHERE customer_id = %s",
                (data["details"].get("parent_customer_id"), event["aggregate_id"]),
            )

    def _customer_status_changed(self, event: Envelope, cursor: ViewCursor) -> None:
        cursor.execute(
            f"UPDATE {{{CUSTOMERS.name}}} SET status = %s WHERE customer_id = %s",
            (event["data"]["status"], event["aggregate_id"]),
        )

    def _customer_merged(self, event: Envelope, cursor: ViewCursor) -> None:
        cursor.execute(
            f"UPDATE {{{CUSTOMERS.name}}} SET status = 'merged', merged_into = %s "
            "WHERE customer_id = %s",
            (event["data"]["target_customer_id"], event["aggregate_id"]),
        )

    def _product_defined(self, event: Envelope, cursor: ViewCursor) -> None:
        data = event["data"]
        ids = data["ids"]
        cursor.execute(
            f"INSERT INTO {{{PRODUCTS.name}}} (product_id, sku, erp_item_id, billing_price_id, "
            "billing_period, retired) VALUES (%s, %s, %s, %s, %s, false) "
            "ON CONFLICT (product_id) DO NOTHING",
            (
                event["aggregate_id"],
                data["sku"],
                _first(ids.get("erp_item_ids")),
                _first(ids.get("billing_price_ids")),
                data.get("billing_period"),
            ),
        )
        self._wake(cursor, f"sku:{data['sku']}", event)

    def _product_mapping_changed(self, event: Envelope, cursor: ViewCursor) -> None:
        added = event["data"]["added_ids"]
        row = cursor.fetchone(
            f"UPDATE {{{PRODUCTS.name}}} SET "
            "erp_item_id = COALESCE(erp_item_id, %s), "
            "billing_price_id = COALESCE(billing_price_id, %s), "
            "billing_period = %s WHERE product_id = %s RETURNING sku",
            (
                _first(added.get("erp_item_ids")),
                _first(added.get("billing_price_ids")),
                event["data"].get("billing_period"),
                event["aggregate_id"],
            ),
        )
        if row is not None:
            self._wake(cursor, f"sku:{row[0]}", event)

    def _product_retired(self, event: Envelope, cursor: ViewCursor) -> None:
        cursor.execute(
            f"UPDATE {{{PRODUCTS.name}}} SET retired = true WHERE product_id = %s",
            (event["aggregate_id"],),
        )

    # --- the deal ---------------------------------------------------------------------------
    def _order_placed(self, event: Envelope, cursor: ViewCursor) -> None:
        data = event["data"]
        at = business_time(event)
        cursor.execute(
            f"INSERT INTO {{{PROCESSES.name}}} (process_id, opportunity_id, customer_id, "
            "status, step, currency, lines, start_date, term_months, ordered_at, started_at, "
            "changed_at, revision) VALUES (%s, %s, %s, 'running', 'validate', %s, %s, %s, %s, %s, "
            "%s, %s, 0)",
            (
                event["aggregate_id"],
                data.get("opportunity_id"),
                data["customer_id"],
                data["currency"],
                orjson.dumps(data["lines"]).decode(),
                data["start_date"],
                data["term_months"],
                at,
                at,
                at,
            ),
        )
        for name in STEP_NAMES:
            cursor.execute(
                f"INSERT INTO {{{STEPS.name}}} (process_id, step, ordinal, status) "
                "VALUES (%s, %s, %s, 'pending')",
                (event["aggregate_id"], name, _ORDINAL[name]),
            )
        self._log(cursor, event["aggregate_id"], "started", None, {}, event)
        self._step(cursor, event["aggregate_id"], "validate", "started", "checking", event)
        self._validate(cursor, event["aggregate_id"], event)

    def _order_amended(self, event: Envelope, cursor: ViewCursor) -> None:
        """New lines. An amendment after the ERP accepted reopens the order (the hub's rule):
        it is validated and accepted anew, and on that acceptance the contract is amended
        to the new recurring and usage lines (:meth:`_order_accepted_by_erp`)."""
        pid = event["aggregate_id"]
        data = event["data"]
        cursor.execute(
            f"UPDATE {{{PROCESSES.name}}} SET lines = %s, changed_at = %s, "
            "revision = revision + %s WHERE process_id = %s",
            (
                orjson.dumps(data["lines"]).decode(),
                business_time(event),
                1 if data.get("reopened") else 0,
                pid,
            ),
        )
        self._log(cursor, pid, "amended", None, {"reopened": bool(data.get("reopened"))}, event)
        if not data.get("reopened"):
            return
        for step in ("validate", "erp_order"):
            cursor.execute(
                f"UPDATE {{{STEPS.name}}} SET status = 'pending', done_at = NULL "
                "WHERE process_id = %s AND step = %s",
                (pid, step),
            )
        self._set(cursor, pid, event, status="running", step="validate", reason=None)
        self._step(cursor, pid, "validate", "started", "checking the amendment", event)
        self._validate(cursor, pid, event)

    def _order_validated(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = event["aggregate_id"]
        self._step(cursor, pid, "validate", "done", "order validated", event)
        self._step(
            cursor,
            pid,
            "erp_order",
            "sent",
            "with the ERP: customer and sales order",
            event,
            deadline=business_time(event) + self.step_timeout,
        )
        self._set(
            cursor, pid, event, status="running", step="erp_order", reason=None, waiting_for=None
        )

    def _order_rejected(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = event["aggregate_id"]
        reasons = "; ".join(event["data"]["reasons"])
        self._step(cursor, pid, "validate", "failed", reasons, event)
        self._set(cursor, pid, event, status="rejected", reason=reasons, waiting_for=None)

    def _order_accepted_by_erp(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = event["aggregate_id"]
        number = event["data"]["erp_order_number"]
        at = business_time(event)
        self._step(cursor, pid, "erp_order", "done", f"accepted by the ERP as {number}", event)
        self._set(cursor, pid, event, erp_order_number=number, accepted_at=at, step="contract")
        self._log(cursor, pid, "milestone", "erp_order", {"accepted": number}, event)
        row = cursor.fetchone(
            f"SELECT customer_id, currency, lines, start_date, term_months, contract_id "
            f"FROM {{{PROCESSES.name}}} WHERE process_id = %s",
            (pid,),
        )
        if row is None:
            return
        if row[5] is not None:
            self._amend_contract(cursor, pid, event)
            self._resume(cursor, pid, event)
            return
        customer_id, currency, lines, start, months, _ = row
        prices = self._prices(cursor, [line["sku"] for line in lines])
        try:
            items = contract_items(lines, prices, currency)
        except (ItemProblem, KeyError) as problem:
            self._step(cursor, pid, "contract", "failed", str(problem), event)
            self._set(cursor, pid, event, status="failed", reason=str(problem))
            return
        if not items:
            for step in ("contract", "billing_subscription"):
                self._step(cursor, pid, step, "skipped", "no recurring or usage lines", event)
            self._set(cursor, pid, event, step="first_invoice")
            return
        payload = {
            "order_id": pid,
            "customer_id": str(customer_id),
            "items": items,
            "currency": currency,
            "term_start": start.isoformat(),
            "term_end": term_end(start, int(months)).isoformat(),
        }
        self._command(
            cursor, pid, "contract", "create", contract_id_for(pid), payload, event, "contract"
        )
        self._step(cursor, pid, "contract", "started", "contract decided", event)

    def _resume(self, cursor: ViewCursor, pid: str, event: Envelope) -> None:
        """After an amendment was validated and accepted anew: the process is at its first
        step not yet over again (``done`` when every one is)."""
        row = cursor.fetchone(
            f"SELECT step FROM {{{STEPS.name}}} WHERE process_id = %s "
            "AND status NOT IN ('done', 'skipped') ORDER BY ordinal LIMIT 1",
            (pid,),
        )
        if row is None:
            self._set(cursor, pid, event, status="done", step=None, reason=None)
        else:
            self._set(cursor, pid, event, step=row[0])

    def _amend_contract(self, cursor: ViewCursor, pid: str, event: Envelope) -> None:
        """The ERP accepted an amended order whose deal has a contract: the contract follows
        the new recurring and usage lines (quantity, price, rate plan), from the day of the
        acceptance. A SKU the contract does not carry cannot be added by an amendment (it is
        billing's to add an item): the process records it for the workbench."""
        row = cursor.fetchone(
            f"SELECT lines, currency, contract_items, revision, contract_id "
            f"FROM {{{PROCESSES.name}}} WHERE process_id = %s",
            (pid,),
        )
        if row is None or row[2] is None:
            return
        lines, currency, held, revision, contract_id = row
        prices = self._prices(cursor, [line["sku"] for line in lines])
        try:
            wanted = contract_items(lines, prices, currency)
        except (ItemProblem, KeyError) as problem:
            self._step(cursor, pid, "contract", "failed", str(problem), event)
            return
        changes, added = item_changes(held, wanted)
        if added:
            self._log(
                cursor,
                pid,
                "needs_attention",
                "contract",
                {"not_on_the_contract": added, "detail": "new items need an amendment in billing"},
                event,
            )
        if not changes:
            return
        payload = {"changes": changes, "effective_date": business_time(event).date().isoformat()}
        self._command(
            cursor,
            pid,
            "contract",
            "amend",
            str(contract_id),
            payload,
            event,
            _round("amend", revision),
        )

    def _contract_amended(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = self._process_of_contract(cursor, event["aggregate_id"])
        if pid is None:
            return
        row = cursor.fetchone(
            f"SELECT contract_items FROM {{{PROCESSES.name}}} WHERE process_id = %s", (pid,)
        )
        items = apply_changes((row[0] if row else None) or [], event["data"]["changes"])
        self._set(cursor, pid, event, contract_items=orjson.dumps(items).decode())
        self._log(
            cursor,
            pid,
            "contract_amended",
            "contract",
            {
                "changes": event["data"]["changes"],
                "effective_date": event["data"]["effective_date"],
            },
            event,
        )

    def _order_cancelled(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = event["aggregate_id"]
        reason = event["data"].get("reason")
        self._set(cursor, pid, event, status="cancelled", reason=reason)
        self._log(cursor, pid, "cancelled", None, {"reason": reason}, event)

    def _order_held(self, event: Envelope, cursor: ViewCursor) -> None:
        """The declared compensation ran (or the ERP holds the order itself): the step that
        was with a target system failed, and the process is on hold with the reason."""
        pid = event["aggregate_id"]
        reason = event["data"]["reason"]
        row = cursor.fetchone(
            f"SELECT step FROM {{{STEPS.name}}} WHERE process_id = %s AND status = 'sent' "
            "ORDER BY ordinal LIMIT 1",
            (pid,),
        )
        if row is not None:
            self._step(cursor, pid, row[0], "failed", reason, event)
        self._set(cursor, pid, event, status="on_hold", reason=reason)
        self._log(cursor, pid, "compensated", row[0] if row else None, {"hold": reason}, event)

    def _order_released(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = event["aggregate_id"]
        self._set(cursor, pid, event, status="running", reason=None)
        self._log(cursor, pid, "released", None, {"note": event["data"].get("note")}, event)

    def _contract_created(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = event["data"]["order_id"]
        if not self._exists(cursor, pid):
            return  # a subscription billing runs for an order Concord did not orchestrate
        self._set(
            cursor,
            pid,
            event,
            contract_id=event["aggregate_id"],
            step="billing_subscription",
            contract_items=orjson.dumps(event["data"]["items"]).decode(),
        )
        self._step(cursor, pid, "contract", "done", f"contract {event['aggregate_id']}", event)
        self._step(
            cursor,
            pid,
            "billing_subscription",
            "sent",
            "with billing: the subscription",
            event,
            deadline=business_time(event) + self.step_timeout,
        )

    def _contract_activated(self, event: Envelope, cursor: ViewCursor) -> None:
        pid = self._process_of_contract(cursor, event["aggregate_id"])
        if pid is None:
            return
        subscription = event["data"]["billing_subscription_id"]
        self._set(
            cursor,
            pid,
            event,
            billing_subscription_id=subscription,
            activated_at=business_time(event),
            step="first_invoice",
        )
        self._step(
            cursor,
            pid,
            "billing_subscription",
            "done",
            f"active in billing as {subscription}",
            event,
        )
        self._step(cursor, pid, "first_invoice", "sent", "waiting for billing's invoice", event)
        self._log(
            cursor, pid, "milestone", "billing_subscription", {"activated": subscription}, event
        )

    def _invoice_issued(self, event: Envelope, cursor: ViewCursor) -> None:
        data = event["data"]
        pid = data.get("order_id")
        if pid is None or not self._exists(cursor, pid):
            pid = self._process_of_contract(cursor, data.get("contract_id"))
        if pid is None:
            return
        cursor.execute(
            f"INSERT INTO {{{INVOICES.name}}} (invoice_id, process_id, total, paid) "
            "VALUES (%s, %s, %s, 0) ON CONFLICT DO NOTHING",
            (event["aggregate_id"], pid, Decimal(str(data["total"]["amount"]))),
        )
        row = cursor.fetchone(
            f"SELECT first_invoice_at FROM {{{PROCESSES.name}}} WHERE process_id = %s", (pid,)
        )
        if row is not None and row[0] is None:
            self._set(cursor, pid, event, first_invoice_at=business_time(event), step="payment")
            self._step(
                cursor,
                pid,
                "first_invoice",
                "done",
                f"invoice {data.get('source_number') or event['aggregate_id']}",
                event,
            )
            self._step(cursor, pid, "payment", "sent", "waiting for the customer's payment", event)
            self._log(
                cursor,
                pid,
                "milestone",
                "first_invoice",
                {"invoice_id": event["aggregate_id"]},
                event,
            )

    def _invoice_payment_applied(self, event: Envelope, cursor: ViewCursor) -> None:
        amount = Decimal(str(event["data"]["amount"]["amount"]))
        row = cursor.fetchone(
            f"UPDATE {{{INVOICES.name}}} SET paid = paid + %s WHERE invoice_id = %s "
            "RETURNING process_id, paid >= total",
            (amount, event["aggregate_id"]),
        )
        if row is None or not row[1]:
            return
        pid = str(row[0])
        done = cursor.fetchone(
            f"SELECT paid_at FROM {{{PROCESSES.name}}} WHERE process_id = %s", (pid,)
        )
        if done is not None and done[0] is None:
            self._set(
                cursor,
                pid,
                event,
                paid_at=business_time(event),
                status="done",
                step=None,
                reason=None,
            )
            self._step(cursor, pid, "payment", "done", "paid in full", event)
            self._log(cursor, pid, "milestone", "payment", {"paid": event["aggregate_id"]}, event)

    # --- deciding ---------------------------------------------------------------------------
    def _validate(self, cursor: ViewCursor, pid: str, event: Envelope) -> None:
        """Decide the ``validate`` step: validate, reject with reasons, or wait."""
        done = cursor.fetchone(
            f"SELECT 1 FROM {{{STEPS.name}}} WHERE process_id = %s AND step = 'validate' "
            "AND status IN ('done', 'failed')",
            (pid,),
        )
        if done is not None:
            return  # the order's own events said how validation ended (seen first)
        row = cursor.fetchone(
            f"SELECT p.customer_id, p.lines, c.status, c.parent_customer_id, p.revision, "
            f"(SELECT count(*) FROM {{{CUSTOMERS.name}}} pc WHERE pc.customer_id = "
            f"c.parent_customer_id) FROM {{{PROCESSES.name}}} p LEFT JOIN {{{CUSTOMERS.name}}} c "
            "ON c.customer_id = p.customer_id WHERE p.process_id = %s",
            (pid,),
        )
        if row is None:
            return
        customer_id, lines, status, parent, revision, parent_known = row
        waits: list[str] = []
        reasons: list[str] = []
        if status is None:
            waits.append(f"customer:{customer_id}")
        elif status in ("closed", "merged"):
            reasons.append(f"the customer is {status}")
        if parent is not None and not parent_known:
            waits.append(f"customer:{parent}")
        products = self._products(cursor, [line["sku"] for line in lines])
        for line in lines:
            sku = line["sku"]
            product = products.get(sku)
            if product is None or product[0] is None:
                waits.append(f"sku:{sku}")
            elif product[2]:
                reasons.append(f"{sku} is retired")
            elif line["charge_type"] != "one_time" and product[1] is None:
                waits.append(f"sku:{sku}")
        if reasons:
            self._command(
                cursor,
                pid,
                "order",
                "reject",
                pid,
                {"reasons": reasons},
                event,
                _round("reject", revision),
            )
            self._step(cursor, pid, "validate", "started", "rejection decided", event)
            return
        if waits:
            unique = sorted(set(waits))
            detail = "waiting for " + ", ".join(_explain(w) for w in unique)
            self._step(cursor, pid, "validate", "waiting", detail, event)
            self._set(cursor, pid, event, status="waiting", waiting_for=unique, reason=detail)
            return
        self._command(
            cursor, pid, "order", "validate", pid, {}, event, _round("validate", revision)
        )
        self._set(cursor, pid, event, status="running", waiting_for=None, reason=None)

    def _wake(self, cursor: ViewCursor, what: str, event: Envelope) -> None:
        """A dependency arrived: re-decide every process waiting for it."""
        row = cursor.fetchone(
            f"SELECT array_agg(process_id::text ORDER BY process_id) FROM {{{PROCESSES.name}}} "
            "WHERE status = 'waiting' AND %s = ANY(waiting_for)",
            (what,),
        )
        for pid in (row[0] if row else None) or []:
            self._log(cursor, pid, "released", "validate", {"arrived": what}, event)
            self._validate(cursor, pid, event)

    # --- writing ----------------------------------------------------------------------------
    def _command(
        self,
        cursor: ViewCursor,
        pid: str,
        entity: str,
        name: str,
        aggregate_id: str,
        payload: dict[str, Any],
        event: Envelope,
        action: str,
    ) -> None:
        # One id per process and action, whatever event led to it: a rebuild (which may see
        # the stores interleaved differently) decides the same commands under the same ids,
        # and the dispatcher knows them as done.
        command_id = f"q2c:{pid}:{action}"
        correlation = cursor.fetchone(
            f"SELECT opportunity_id FROM {{{PROCESSES.name}}} WHERE process_id = %s", (pid,)
        )
        cursor.execute(
            f"INSERT INTO {{{COMMANDS.name}}} (command_id, process_id, entity, name, "
            "aggregate_id, payload, cause_event_id, correlation_id, decided_at, "
            "cause_recorded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            (
                command_id,
                pid,
                entity,
                name,
                aggregate_id,
                orjson.dumps(payload).decode(),
                event["event_id"],
                correlation[0] if correlation else None,
                business_time(event),
                datetime.fromisoformat(event["recorded_at"]),
            ),
        )
        self._log(
            cursor,
            pid,
            "command_decided",
            None,
            {"command_id": command_id, "command": f"{entity}.{name}", "payload": payload},
            event,
        )

    def _step(
        self,
        cursor: ViewCursor,
        pid: str,
        step: str,
        status: str,
        detail: str,
        event: Envelope,
        *,
        deadline: datetime | None = None,
    ) -> None:
        at = business_time(event)
        ended = status in ("done", "failed", "skipped", "compensated")
        cursor.execute(
            f"UPDATE {{{STEPS.name}}} SET status = %s, detail = %s, "
            "started_at = COALESCE(started_at, %s), done_at = %s, "
            "deadline_at = COALESCE(%s, deadline_at) WHERE process_id = %s AND step = %s",
            (status, detail, at, at if ended else None, deadline, pid, step),
        )
        self._log(cursor, pid, f"step_{status}", step, {"detail": detail}, event)

    def _set(self, cursor: ViewCursor, pid: str, event: Envelope, **changes: Any) -> None:
        sets = [f"{column} = %s" for column in changes]
        cursor.execute(
            f"UPDATE {{{PROCESSES.name}}} SET {', '.join(sets)}, changed_at = %s "
            "WHERE process_id = %s",
            (*changes.values(), business_time(event), pid),
        )

    def _log(
        self,
        cursor: ViewCursor,
        pid: str,
        kind: str,
        step: str | None,
        detail: dict[str, Any],
        event: Envelope,
    ) -> None:
        cursor.execute(
            f"INSERT INTO {{{EVENTS.name}}} (process_id, seq, type, step, detail, "
            "cause_event_id, at) SELECT %s, COALESCE(max(seq), 0) + 1, %s, %s, %s, %s, %s "
            f"FROM {{{EVENTS.name}}} WHERE process_id = %s",
            (
                pid,
                kind,
                step,
                orjson.dumps(detail).decode(),
                event["event_id"],
                business_time(event),
                pid,
            ),
        )

    # --- reading ----------------------------------------------------------------------------
    def _exists(self, cursor: ViewCursor, pid: str) -> bool:
        return (
            cursor.fetchone(f"SELECT 1 FROM {{{PROCESSES.name}}} WHERE process_id = %s", (pid,))
            is not None
        )

    def _process_of_contract(self, cursor: ViewCursor, contract_id: str | None) -> str | None:
        if contract_id is None:
            return None
        row = cursor.fetchone(
            f"SELECT process_id FROM {{{PROCESSES.name}}} WHERE contract_id = %s", (contract_id,)
        )
        return None if row is None else str(row[0])

    def _products(
        self, cursor: ViewCursor, skus: list[str]
    ) -> dict[str, tuple[str | None, str | None, bool]]:
        row = cursor.fetchone(
            "SELECT COALESCE(jsonb_object_agg(sku, jsonb_build_array(erp_item_id, "
            f"billing_price_id, retired)), jsonb_build_object()) FROM {{{PRODUCTS.name}}} "
            "WHERE sku = ANY(%s)",
            (skus,),
        )
        found: dict[str, list[Any]] = row[0] if row else {}
        return {sku: (v[0], v[1], bool(v[2])) for sku, v in found.items()}

    def _prices(self, cursor: ViewCursor, skus: list[str]) -> dict[str, str]:
        return {
            sku: price
            for sku, (_, price, _) in self._products(cursor, skus).items()
            if price is not None
        }


def _round(action: str, revision: int) -> str:
    """The action's name in the revision it belongs to (``validate``, ``validate:2``): an
    amended order is validated anew, under a new command id."""
    return action if not revision else f"{action}:{revision}"


def _handler_name(event_type: str) -> str:
    """``OrderPlaced`` → ``_order_placed``: one method per event type the process follows."""
    return "_" + re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _explain(what: str) -> str:
    kind, _, name = what.partition(":")
    if kind == "sku":
        return f"a mapping of {name} (ERP item and billing price)"
    return f"customer {name} (parent or account not known yet)"
