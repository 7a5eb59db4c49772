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
inserts and one ``executemany`` per header table instead of a round trip per event.

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
#: An order's header and one booking in one statement: placement inserts the header, an
#: upsell writes its new highest totals over it. One text for both, so the orders of a
#: batch go as one run (an UPDATE between inserts would send what is held, event by event).
_BOOKING = (
    "WITH header AS (INSERT INTO {metrics_orders} (order_id, customer_id, currency, "
    "contract_id, booked, booked_acv) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (order_id) "
    "DO UPDATE SET booked = EXCLUDED.booked, booked_acv = EXCLUDED.booked_acv) "
    "INSERT INTO {metrics_bookings} (order_id, version, kind, booked_on, amount, acv) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
#: A contract's header as it now is (creation inserts it, an activation writes its day over
#: it) and, on creation, the order row's contract when this one is its smallest (order id
#: NULL: no order row to change). One text for both events, for the same reason.
_CONTRACT = (
    "WITH header AS (INSERT INTO {metrics_contracts} (contract_id, order_id, customer_id, "
    "activated_on) VALUES (%s, %s, %s, %s) ON CONFLICT (contract_id) "
    "DO UPDATE SET activated_on = EXCLUDED.activated_on) "
    "UPDATE {metrics_orders} SET contract_id = %s WHERE order_id = %s"
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
    version: ClassVar[int] = 2
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
            self._book(cursor, event, links, "placed", booked_on, total, value)
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
            self._book(cursor, event, links, "upsell", business_day(event), more, more_acv)

    @staticmethod
    def _book(
        cursor: ViewCursor,
        event: Envelope,
        links: state.OrderLinks,
        kind: str,
        day: date,
        amount: int,
        value: int,
    ) -> None:
        header = links.header
        assert header is not None
        order_id = event["aggregate_id"]
        cursor.execute(
            _BOOKING,
            (
                order_id,
                header.customer_id,
                header.currency,
                links.contract,
                header.booked,
                header.booked_acv,
                order_id,
                event["version"],
                kind,
                day,
                amount,
                value,
            ),
        )

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
            on_order = order_id if smallest and order.header is not None else None
            cursor.execute(
                _CONTRACT,
                (contract_id, order_id, data["customer_id"], None, contract_id, on_order),
            )
            if not smallest:
                return
            order.contract = contract_id
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
            cursor.execute(
                _CONTRACT,
                (contract_id, header.order_id, header.customer_id, header.activated_on, None, None),
            )
            for invoice_id in sorted(links.invoices):
                invoice = state.invoice(cursor, invoice_id)
                if invoice is not None:
                    self._on_activation(cursor, invoice_id, invoice)

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
        start, end, day = _date(line.get("start")), _date(line.get("end")), _date(line.get("day"))
        cursor.execute(_ENTRY, (invoice_id, key, line["rule"], amount, start, end, day, not_before))
        if line["rule"] == "activation":
            if amount != 0:  # scheduled by _on_activation once the activation is known
                invoice.activation.append((key, amount, not_before))
            return
        for month, value in _schedule(Entry(amount, line["rule"], start, end, day, not_before)):
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


@lru_cache(maxsize=4096)
def _schedule(entry: Entry) -> tuple[tuple[date, int], ...]:
    """:func:`monthly_schedule`, remembered: invoices repeat their amounts and periods."""
    return tuple(monthly_schedule(entry))


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
