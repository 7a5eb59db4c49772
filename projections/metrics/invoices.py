"""Invoice facts for the metrics: billings, each line's recognition rule and its schedule.

Why one-time lines go through ``metrics_one_time``: they are recognised on their contract's
activation, a fact of the contracts store, which may be applied before or after the invoice.
Both sides write their fact and then fill the schedule from the join, so whichever comes
second fills it and every interleaving gives the same rows.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from hub.domain.money import exponent
from projections.crm.opportunities import business_time
from projections.definition import Envelope, ViewCursor
from projections.metrics import recognition
from projections.metrics.recognition import Recognition

_SCHEDULE = (
    "INSERT INTO {metrics_revenue_schedule} (invoice_id, line, entry, month, currency, "
    "customer_id, contract_id, amount) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)

#: One-time rows whose contract is active: recognised in full on the later of the
#: activation and the row's not_before (a credit note's date).
FILL_ONE_TIME = (
    "INSERT INTO {metrics_revenue_schedule} (invoice_id, line, entry, month, currency, "
    "customer_id, contract_id, amount) SELECT o.invoice_id, o.line, o.entry, "
    "date_trunc('month', greatest(a.activated_on, coalesce(o.not_before, a.activated_on)))"
    "::date, o.currency, o.customer_id, o.contract_id, o.amount FROM {metrics_one_time} o "
    "JOIN {metrics_contract_activations} a USING (contract_id) WHERE "
)


def minor(money: dict[str, Any]) -> int:
    """Money as the envelope carries it, in exact minor units of its currency."""
    scaled = Decimal(str(money["amount"])).scaleb(exponent(money["currency"]))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{money} has more decimals than its currency")
    return int(scaled)


def line_rule(line: dict[str, Any], issued: date) -> tuple[str, date, date]:
    """(kind, span start, span end) of an invoice line. A line with no service period is
    recognised on the issue date, whatever its charge type; a line with no charge type but
    a period is taken as recurring."""
    start, end = line.get("service_period_start"), line.get("service_period_end")
    kind = line.get("charge_type") or "recurring"
    if start is None or end is None or end <= start:
        return ("one_time" if kind == "one_time" else "issued", issued, issued)
    first, after = date.fromisoformat(start), date.fromisoformat(end)
    if kind == "usage":
        span = recognition.usage(0, first, after)
        return kind, span.start, span.end
    return kind, first, after


def _rule(kind: str, start: date, end: date, amount: int) -> Recognition:
    if kind in ("one_time", "issued"):
        return recognition.one_time(amount, start)
    return Recognition(amount, start, end)


def _write_schedule(
    cursor: ViewCursor, rule: Recognition, key: tuple[Any, ...], owner: tuple[Any, ...]
) -> None:
    for month, amount in recognition.monthly_schedule(rule).items():
        cursor.execute(_SCHEDULE, (*key, month, *owner, amount))


def _owner(data: dict[str, Any]) -> tuple[Any, ...]:
    return (data["currency"], data["customer_id"], data.get("contract_id"))


def apply_issued(event: Envelope, cursor: ViewCursor) -> None:
    data, invoice = event["data"], event["aggregate_id"]
    issued = date.fromisoformat(data["issue_date"])
    cursor.execute(
        "INSERT INTO {metrics_billings} (invoice_id, entry, day, currency, customer_id, "
        "contract_id, amount) VALUES (%s, 0, %s, %s, %s, %s, %s)",
        (invoice, issued, *_owner(data), minor(data["subtotal"])),
    )
    for index, line in enumerate(data["lines"]):
        kind, start, end = line_rule(line, issued)
        cursor.execute(
            "INSERT INTO {metrics_invoice_lines} (invoice_id, line, kind, span_start, "
            "span_end) VALUES (%s, %s, %s, %s, %s)",
            (invoice, index, kind, start, end),
        )
        amount = minor({"amount": line["amount"], "currency": data["currency"]})
        _recognise(cursor, data, (invoice, index, 0), (kind, start, end), amount, None)


def _recognise(
    cursor: ViewCursor,
    data: dict[str, Any],
    key: tuple[Any, int, int],
    rule: tuple[str, date, date],
    amount: int,
    not_before: date | None,
) -> None:
    kind, start, end = rule
    if kind == "one_time" and data.get("contract_id") is not None:
        cursor.execute(
            "INSERT INTO {metrics_one_time} (invoice_id, line, entry, currency, customer_id, "
            "contract_id, amount, not_before) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (*key, *_owner(data), amount, not_before),
        )
        cursor.execute(FILL_ONE_TIME + "o.invoice_id = %s AND o.line = %s AND o.entry = %s", key)
        return
    recognised = _rule(kind, start, end, 0)
    recognised = Recognition(amount, recognised.start, recognised.end, not_before)
    _write_schedule(cursor, recognised, key, _owner(data))


def apply_credited(event: Envelope, cursor: ViewCursor, invoice: dict[str, Any]) -> None:
    """A credit note: negative billing on its date and, per credited line, that line's
    rule on the credited amount reversed from the note's date. ``invoice`` is the invoice's
    currency, customer and contract (from ``metrics_billings``)."""
    credit, entry = event["data"]["credit"], event["version"]
    on = date.fromisoformat(credit.get("issue_date") or event_day(event).isoformat())
    currency = invoice["currency"]
    parts = [
        (p["line"], minor({"amount": p["amount"], "currency": currency}))
        for p in credit.get("lines") or []
    ]
    total = sum(a for _, a in parts) if parts else minor(credit["amount"])
    cursor.execute(
        "INSERT INTO {metrics_billings} (invoice_id, entry, day, currency, customer_id, "
        "contract_id, amount) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (event["aggregate_id"], entry, on, *_owner(invoice), -total),
    )
    for index, amount in parts or [(-1, total)]:
        rule = _credited_rule(cursor, event["aggregate_id"], index, on)
        _recognise(cursor, invoice, (event["aggregate_id"], index, entry), rule, -amount, on)


def _credited_rule(
    cursor: ViewCursor, invoice: str, index: int, on: date
) -> tuple[str, date, date]:
    """The credited line's rule; a note naming no line is recognised on its date."""
    row = cursor.fetchone(
        "SELECT kind, span_start, span_end FROM {metrics_invoice_lines} "
        "WHERE invoice_id = %s AND line = %s",
        (invoice, index),
    )
    if row is None:
        return ("issued", on, on)
    return (row[0], row[1], row[2])


def event_day(event: Envelope) -> date:
    """The event's business date: when it happened at the source, else when recorded."""
    return business_time(event).date()
