"""``metrics``: bookings, ACV, billings, cash, recognised and deferred revenue, receivables.

Follows orders, contracts, invoices and payments, each in its own order, and writes dated
facts (``tables.py``) that the views (``views.py``) sum per month, currency, customer and
contract. Every date is the source's business date; every amount an integer of minor units.

Why the facts converge whatever the interleaving of the stores: each fact is written from
its own store's events only (an invoice's lines, a payment's moves), and what links across
stores is a header column filled by whichever side arrives second (the contract of an
order-only invoice), or, for one-time lines recognised on the activation of their order's
contract, a schedule row written by whichever side (the invoice's document, the contract's
activation) finds both known.

Why nothing is read back per event: what a handler needs of earlier rows (an order's
highest totals, the smallest contract of an order, the invoices billing a contract, an
invoice's lines, a payment's currency) is kept in the cursor's memo (``state.py``), read
from the tables only on a miss, and every write is a plain row computed here; the writes
of one store's events share their statement texts, so a batch goes as a few multi-row
inserts instead of a round trip per event. An order's and a contract's header change with
several of their events (placed, upsold, given its contract; created, activated): each is
held in the memo and written once per run in its final state (``write_held``), a new row
as a plain insert, the older rows as one update per table.

Decisions (also in the README, "Tables for BI", Finance metrics): an order amendment
books only what raises the total above the highest total booked before, on its business
date; a failed payment is taken back on its own receipt date (it counts nothing in any
month); a chargeback (PaymentReversed) takes the cash back on its own date, the invoice
reopens then; a refund takes cash back on its refund date and reduces applied cash by what
it takes back off invoices (a refund of unapplied credit reduces cash only); a void is a
credit of every line on its date; a credit note without lines credits the lines in
proportion to their amounts; receivables count billings with tax (cash applied has it).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, ClassVar

import orjson

from hub.domain.money import exponent
from projections.definition import Envelope, Table, View, ViewCursor
from projections.metrics import state
from projections.metrics.recognition import Entry, month_start, monthly_schedule, share
from projections.metrics.tables import TABLES
from projections.metrics.views import VIEWS
from projections.rows import PerAggregate, business_time

PERIODS_PER_YEAR = {"month": 12, "quarter": 4, "year": 1}


def minor(value: Any, currency: str) -> int:
    """A decimal string of ``currency`` as an integer of minor units (exact)."""
    if isinstance(value, str):
        return _minor_text(value, currency)
    scaled = Decimal(str(value)).scaleb(exponent(currency))
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


@lru_cache(maxsize=4096)
def _minor_text(value: str, currency: str) -> int:
    """:func:`minor` of an event's decimal string, remembered: a store repeats its prices
    and amounts, and the decimal arithmetic is a good part of an event's cost."""
    scaled = Decimal(value).scaleb(exponent(currency))
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN))


def business_day(event: Envelope) -> date:
    return business_time(event).date()


def acv(lines: list[dict[str, Any]], currency: str) -> int:
    """Σ recurring lines: quantity x billing unit price x billing periods per year, each line
    rounded half-even to minor units. A line without a billing price: its amount spread over
    its term in months, times 12."""
    total = 0
    for line in lines:
        if line["charge_type"] != "recurring":
            continue
        per_year = PERIODS_PER_YEAR.get(line.get("billing_frequency") or "", 0)
        price = line.get("billing_unit_price")
        if price is not None and per_year:
            value = Decimal(str(line["quantity"])) * Decimal(str(price)) * per_year
        elif line.get("term_months"):
            value = Decimal(str(line["amount"])) * 12 / Decimal(line["term_months"])
        else:
            continue
        total += minor(value, currency)
    return total


def line_rule(line: dict[str, Any], issued: date) -> dict[str, Any]:
    """How an invoice line is recognised (see ``recognition.py``), as stored on the header."""
    start, end = line.get("service_period_start"), line.get("service_period_end")
    kind = line.get("charge_type")
    if kind == "one_time":
        return {"rule": "activation"}
    if start is None or end is None:
        return {"rule": "point", "day": issued.isoformat()}
    if kind == "usage":  # on the last served day of [start, end)
        last = date.fromisoformat(end) - timedelta(days=1)
        return {"rule": "point", "day": last.isoformat()}
    return {"rule": "ratable", "start": start, "end": end}


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


_ENTRY = (
    "INSERT INTO {metrics_revenue_entries} (invoice_id, entry, rule, amount, period_start, "
    "period_end, point_day, not_before) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
_MONTH = "INSERT INTO {metrics_revenue} (invoice_id, entry, month, amount) VALUES (%s, %s, %s, %s)"
_BOOKING = (
    "INSERT INTO {metrics_bookings} (order_id, version, kind, booked_on, amount, acv) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
#: Header rows, written once per run of their store by :meth:`Metrics.write_held`: a row
#: new since the last write as one plain insert (the runner folds them into multi-row
#: inserts), the older ones in one update per table.
_NEW_ORDER = (
    "INSERT INTO {metrics_orders} (order_id, customer_id, currency, contract_id, booked, "
    "booked_acv) VALUES (%s, %s, %s, %s, %s, %s)"
)
#: The older rows' updates of a run as one statement, their values as arrays (an
#: ``executemany`` would still be a statement per row, most of a contracts run's cost).
_OLD_ORDERS = (
    "UPDATE {metrics_orders} o SET contract_id = v.contract_id, booked = v.booked, "
    "booked_acv = v.booked_acv FROM unnest(%s::uuid[], %s::uuid[], %s::bigint[], "
    "%s::bigint[]) AS v (order_id, contract_id, booked, booked_acv) WHERE o.order_id = v.order_id"
)
_NEW_CONTRACT = (
    "INSERT INTO {metrics_contracts} (contract_id, order_id, customer_id, activated_on) "
    "VALUES (%s, %s, %s, %s)"
)
_OLD_CONTRACTS = (
    "UPDATE {metrics_contracts} c SET activated_on = v.activated_on FROM "
    "unnest(%s::uuid[], %s::date[]) AS v (contract_id, activated_on) "
    "WHERE c.contract_id = v.contract_id"
)
_INVOICE = (
    "INSERT INTO {metrics_invoices} (invoice_id, customer_id, order_id, contract_id, "
    "contract_named, currency, issue_date, lines) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
)
_BILLING = (
    "INSERT INTO {metrics_billings} (invoice_id, version, kind, billed_on, amount, gross) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_CASH = (
    "INSERT INTO {metrics_cash} (payment_id, version, part, moved_on, invoice_id, cash, "
    "applied) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


class Metrics(PerAggregate):
    name: ClassVar[str] = "metrics"
    title: ClassVar[str] = "Finance metrics"
    version: ClassVar[int] = 3
    stores: ClassVar[tuple[str, ...]] = ("orders", "contracts", "invoices", "payments")
    tables: ClassVar[tuple[Table, ...]] = TABLES
    views: ClassVar[tuple[View, ...]] = VIEWS

    # -- bookings -----------------------------------------------------------------------

    def _order(self, event: Envelope, cursor: ViewCursor) -> None:
        data, order_id, kind = event["data"], event["aggregate_id"], event["type"]
        if kind not in ("OrderPlaced", "OrderAmended"):
            return
        links = state.order_links(cursor, order_id)
        header = links.header
        if kind == "OrderPlaced":
            if header is not None:
                raise ValueError(f"metrics_orders has a row for order {order_id} already")
            currency = data["currency"]
            total = minor(data["totals"]["total"]["amount"], currency)
            value = acv(data["lines"], currency)
            links.header = state.OrderHeader(data["customer_id"], currency, total, value)
            booked_on = date.fromisoformat(data.get("close_date") or data["booking_date"])
            self._book(cursor, event, "placed", booked_on, total, value)
            return
        if header is None:
            raise LookupError(f"metrics_orders has no row for order {order_id}")
        total = minor(data["totals"]["total"]["amount"], header.currency)
        value = acv(data["lines"], header.currency)
        more, more_acv = max(0, total - header.booked), max(0, value - header.booked_acv)
        if more or more_acv:
            header.booked, header.booked_acv = (
                max(header.booked, total),
                max(header.booked_acv, value),
            )
            self._book(cursor, event, "upsell", business_day(event), more, more_acv)

    @staticmethod
    def _book(
        cursor: ViewCursor,
        event: Envelope,
        kind: str,
        day: date,
        amount: int,
        value: int,
    ) -> None:
        """One booking fact; the order's header (its new highest totals) is held and
        written once at the run's end (:meth:`write_held`)."""
        order_id = event["aggregate_id"]
        state.hold_order(cursor, order_id, kind == "placed")
        cursor.execute(_BOOKING, (order_id, event["version"], kind, day, amount, value))

    # -- contracts ----------------------------------------------------------------------

    def _contract(self, event: Envelope, cursor: ViewCursor) -> None:
        data, contract_id, kind = event["data"], event["aggregate_id"], event["type"]
        if kind == "ContractCreated":
            order_id = state.canonical(data["order_id"])
            # Read before writing: a miss reads the tables, which must not hold this yet.
            order = state.order_links(cursor, order_id)
            links = state.contract_links(cursor, contract_id)
            if links.header is not None:
                raise ValueError(f"metrics_contracts has a row for contract {contract_id}")
            links.header = state.ContractHeader(order_id, data["customer_id"], None)
            # The smallest contract id of the order, whichever arrived first (converges).
            replaced = order.contract
            smallest = replaced is None or state.before(contract_id, replaced)
            state.hold_contract(cursor, contract_id, new=True)
            if not smallest:
                return
            order.contract = contract_id
            if order.header is not None:  # else the order's insert will carry it
                state.hold_order(cursor, order_id)
            if order.unnamed:
                cursor.execute(
                    "UPDATE {metrics_invoices} SET contract_id = %s WHERE order_id = %s "
                    "AND NOT contract_named",
                    (contract_id, order_id),
                )
                old = None if replaced is None else state.known_contract_links(cursor, replaced)
                for invoice_id in order.unnamed:
                    known = cursor.memo.get(("metrics.invoice", invoice_id))
                    if known is not None:
                        known.contract_id = contract_id
                    if old is not None:
                        old.invoices.discard(invoice_id)
                    links.invoices.add(invoice_id)
        elif kind == "ContractActivated":
            links = state.contract_links(cursor, contract_id)
            header = links.header
            if header is None:
                raise LookupError(f"metrics_contracts has no row for contract {contract_id}")
            header.activated_on = business_day(event)
            state.hold_contract(cursor, contract_id)
            for invoice_id in sorted(links.invoices):
                invoice = state.invoice(cursor, invoice_id)
                if invoice is not None:
                    self._on_activation(cursor, invoice_id, invoice)

    def write_held(self, cursor: ViewCursor) -> None:
        """The order and contract headers touched since the last call, each written once in
        its final state (the memo's): the older rows first, as one update per table, then
        the new rows' inserts (one run of one statement text per table). The facts went out
        as they came (plain inserts). Holding is safe for the reads on a miss (``state.py``):
        a held header is in the memo, and so is the order of a held contract (its creation
        asked for it first)."""
        orders, contracts = state.take_held(cursor)
        old_orders: tuple[list[str], list[str | None], list[int], list[int]] = ([], [], [], [])
        new_orders = []
        for order_id, new in orders.items():
            order = state.order_links(cursor, order_id)
            header = order.header
            assert header is not None
            if new:
                new_orders.append(
                    (
                        order_id,
                        header.customer_id,
                        header.currency,
                        order.contract,
                        header.booked,
                        header.booked_acv,
                    )
                )
            else:
                old_orders[0].append(order_id)
                old_orders[1].append(order.contract)
                old_orders[2].append(header.booked)
                old_orders[3].append(header.booked_acv)
        if old_orders[0]:
            cursor.execute(_OLD_ORDERS, old_orders)
        for order_row in new_orders:
            cursor.execute(_NEW_ORDER, order_row)
        old_contracts: tuple[list[str], list[date | None]] = ([], [])
        new_contracts = []
        for contract_id, new in contracts.items():
            contract = state.contract_links(cursor, contract_id).header
            assert contract is not None
            if new:
                new_contracts.append(
                    (contract_id, contract.order_id, contract.customer_id, contract.activated_on)
                )
            else:
                old_contracts[0].append(contract_id)
                old_contracts[1].append(contract.activated_on)
        if old_contracts[0]:
            cursor.execute(_OLD_CONTRACTS, old_contracts)
        for contract_row in new_contracts:
            cursor.execute(_NEW_CONTRACT, contract_row)

    def _on_activation(
        self, cursor: ViewCursor, invoice_id: str, invoice: state.InvoiceState
    ) -> None:
        """One-time entries of an invoice whose contract is activated: all in the month of
        the activation (or of the credit note, if later), a row per (entry, month) written
        once. Run from both sides (the invoice's documents, the contract's activation)."""
        if not invoice.activation or invoice.contract_id is None:
            return
        contract = state.contract_links(cursor, invoice.contract_id).header
        if contract is None or contract.activated_on is None:
            return
        activated = contract.activated_on
        for entry, amount, not_before in invoice.activation:
            day = activated if not_before is None else max(activated, not_before)
            month = month_start(day)
            if (entry, month) not in invoice.scheduled:
                invoice.scheduled.add((entry, month))
                cursor.execute(_MONTH, (invoice_id, entry, month, amount))

    # -- billings and revenue -----------------------------------------------------------

    def _invoice(self, event: Envelope, cursor: ViewCursor) -> None:
        kind, invoice_id = event["type"], event["aggregate_id"]
        if kind == "InvoiceIssued":
            self._issue(event, cursor)
        elif kind in ("InvoiceCredited", "InvoiceVoided"):
            self._credit(event, cursor)
        elif kind == "InvoiceMovedToSurvivor":
            cursor.execute(
                "UPDATE {metrics_invoices} SET customer_id = %s WHERE invoice_id = %s",
                (event["data"]["customer_id"], invoice_id),
            )

    def _issue(self, event: Envelope, cursor: ViewCursor) -> None:
        data, invoice_id = event["data"], event["aggregate_id"]
        currency, issued = data["currency"], date.fromisoformat(data["issue_date"])
        lines = [
            {
                "amount": minor(line["amount"], currency),
                "tax": minor(line.get("tax") or 0, currency),
                **line_rule(line, issued),
            }
            for line in data["lines"]
        ]
        named = data.get("contract_id")
        order_id = None if data.get("order_id") is None else state.canonical(data["order_id"])
        contract_id = None if named is None else state.canonical(named)
        if named is None and order_id is not None:
            order = state.order_links(cursor, order_id)
            contract_id = order.contract
            order.unnamed.add(invoice_id)
        if contract_id is not None:
            state.contract_links(cursor, contract_id).invoices.add(invoice_id)
        invoice = state.InvoiceState(order_id, contract_id, named is not None, lines, [], set())
        state.remember_invoice(cursor, invoice_id, invoice)
        cursor.execute(
            _INVOICE,
            (
                invoice_id,
                data["customer_id"],
                order_id,
                contract_id,
                named is not None,
                currency,
                issued,
                orjson.dumps(lines).decode(),
            ),
        )
        subtotal = minor(data["subtotal"]["amount"], currency)
        gross = minor(data["total"]["amount"], currency)
        self._bill(cursor, event, "invoice", issued, subtotal, gross)
        for index, line in enumerate(lines):
            self._entry(cursor, invoice_id, invoice, f"line:{index}", line, line["amount"], None)
        self._on_activation(cursor, invoice_id, invoice)

    def _credit(self, event: Envelope, cursor: ViewCursor) -> None:
        """A credit note (or a void: a credit of every line) reverses, from its date, the
        credited lines' tax-excluded amounts by each line's own rule."""
        invoice_id = event["aggregate_id"]
        invoice = state.invoice(cursor, invoice_id)
        if invoice is None:
            raise LookupError(f"metrics_invoices has no row for invoice {invoice_id}")
        lines = invoice.lines
        if event["type"] == "InvoiceVoided":
            day, kind = business_day(event), "void"
            parts = {index: line["amount"] for index, line in enumerate(lines)}
            gross = sum(line["amount"] + line["tax"] for line in lines)
        else:
            note = event["data"]["credit"]
            currency = note["amount"]["currency"]
            day = _date(note.get("issue_date")) or business_day(event)
            kind = "credit_note"
            parts = credited_parts(lines, note, currency)
            gross = minor(note["amount"]["amount"], currency)
        self._bill(cursor, event, kind, day, -sum(parts.values()), -gross)
        for index, net in sorted(parts.items()):
            entry = f"credit:{event['version']}:{index}"
            self._entry(cursor, invoice_id, invoice, entry, lines[index], -net, day)
        self._on_activation(cursor, invoice_id, invoice)

    @staticmethod
    def _bill(
        cursor: ViewCursor, event: Envelope, kind: str, day: date, amount: int, gross: int
    ) -> None:
        cursor.execute(
            _BILLING, (event["aggregate_id"], event["version"], kind, day, amount, gross)
        )

    @staticmethod
    def _entry(
        cursor: ViewCursor,
        invoice_id: str,
        invoice: state.InvoiceState,
        key: str,
        line: dict[str, Any],
        amount: int,
        not_before: date | None,
    ) -> None:
        rule = line["rule"]
        start, end, day, schedule = _recognised(
            rule, line.get("start"), line.get("end"), line.get("day"), amount, not_before
        )
        cursor.execute(_ENTRY, (invoice_id, key, rule, amount, start, end, day, not_before))
        if rule == "activation":
            if amount != 0:  # scheduled by _on_activation once the activation is known
                invoice.activation.append((key, amount, not_before))
            return
        for month, value in schedule:
            cursor.execute(_MONTH, (invoice_id, key, month, value))

    # -- cash ---------------------------------------------------------------------------

    def _payment(self, event: Envelope, cursor: ViewCursor) -> None:
        data, payment_id, kind = event["data"], event["aggregate_id"], event["type"]
        if kind == "PaymentReceived":
            currency = data["amount"]["currency"]
            amount = minor(data["amount"]["amount"], currency)
            received = date.fromisoformat(data["received_at"][:10])
            cursor.execute(
                "INSERT INTO {metrics_payments} (payment_id, customer_id, currency, amount, "
                "received_on) VALUES (%s, %s, %s, %s, %s)",
                (payment_id, data["customer_id"], currency, amount, received),
            )
            state.remember_payment(
                cursor, payment_id, state.PaymentState(currency, amount, received)
            )
            self._move(cursor, event, received, amount, [])
            return
        if kind == "PaymentMovedToSurvivor":
            cursor.execute(
                "UPDATE {metrics_payments} SET customer_id = %s WHERE payment_id = %s",
                (data["customer_id"], payment_id),
            )
            return
        paid = state.payment(cursor, payment_id)
        if paid is None:
            raise LookupError(f"metrics_payments has no row for payment {payment_id}")
        currency, amount, received = paid.currency, paid.amount, paid.received_on
        back = [
            (u["invoice_id"], -minor(u["amount"]["amount"], currency))
            for u in data.get("unapplied", [])
        ]
        if kind == "PaymentApplied":
            applied = [(data["invoice_id"], minor(data["amount"]["amount"], currency))]
            self._move(cursor, event, received, 0, applied)
        elif kind == "PaymentRefunded":
            day = date.fromisoformat((data.get("refunded_at") or event["recorded_at"])[:10])
            self._move(cursor, event, day, -minor(data["amount"]["amount"], currency), back)
        elif kind == "PaymentFailed":
            self._move(cursor, event, received, -amount, back)
        elif kind == "PaymentReversed":
            cash = -minor(data["amount"]["amount"], currency)
            self._move(cursor, event, business_day(event), cash, back)

    @staticmethod
    def _move(
        cursor: ViewCursor, event: Envelope, day: date, cash: int, applied: list[tuple[str, int]]
    ) -> None:
        key = (event["aggregate_id"], event["version"])
        if cash:
            cursor.execute(_CASH, (*key, 0, day, None, cash, 0))
        for part, (invoice_id, amount) in enumerate(applied, start=1):
            cursor.execute(_CASH, (*key, part, day, invoice_id, 0, amount))


Schedule = tuple[tuple[date, int], ...]


@lru_cache(maxsize=4096)
def _recognised(
    rule: str,
    start: str | None,
    end: str | None,
    day: str | None,
    amount: int,
    not_before: date | None,
) -> tuple[date | None, date | None, date | None, Schedule]:
    """A line's dates and its entry's :func:`monthly_schedule` (none for an activation
    entry: scheduled once the activation is known), remembered by the line's own texts:
    invoices repeat their amounts and periods, and parsing the dates and building the
    entry cost more than the rows' writes."""
    first, last, point = _date(start), _date(end), _date(day)
    if rule == "activation":
        return first, last, point, ()
    entry = Entry(amount, rule, first, last, point, not_before)
    return first, last, point, tuple(monthly_schedule(entry))


def credited_parts(
    lines: list[dict[str, Any]], note: dict[str, Any], currency: str
) -> dict[int, int]:
    """Tax-excluded minor units credited per invoice line. A named line: the credited amount
    times the line's share of net in its amount and tax. No lines named: the note's net
    (its amount times subtotal over total) over the lines in proportion to their amounts,
    the rounding remainder on the last line, so the parts add up exactly."""
    parts: dict[int, int] = {}
    named = note.get("lines") or []
    for part in named:
        line = lines[part["line"]]
        gross = line["amount"] + line["tax"]
        credited = minor(part["amount"], currency)
        net = share(credited, line["amount"], gross) if gross > 0 else credited
        parts[part["line"]] = parts.get(part["line"], 0) + net
    if named:
        return parts
    subtotal = sum(line["amount"] for line in lines)
    total = subtotal + sum(line["tax"] for line in lines)
    net = share(minor(note["amount"]["amount"], currency), subtotal, total) if total else 0
    left = net
    for index, line in enumerate(lines):
        last = index == len(lines) - 1
        value = left if last else (share(net, line["amount"], subtotal) if subtotal else 0)
        parts[index] = value
        left -= value
    return parts
