"""HubSpot closed-won deals → canonical orders, from the merged mirrors of the deal and its
line items.

A deal becomes an order when it is won: ``hs_is_closed_won`` is ``"true"`` (HubSpot's own
calculation, right for every pipeline), or, only when that property is not subscribed,
its ``dealstage`` is one of the configured closed-won stage *ids* (never the label). The
order is placed for the customer of the deal's company (held until that customer is
known), with one line per line item associated with the deal. A line's SKU is the canonical
one the product catalogue maps its ``hs_product_id`` to (``crm_product_ids``); a line item
of a product with no mapping holds the deal, waiting for ``crm product <hs_product_id>``, and
adding the mapping places it. A line item without ``hs_product_id`` (not arrived yet, or a
custom line item sold without a product) leaves the deal unplaced, logged as ignored with
that reason, until the property arrives.

HubSpot sends the deal, its line items and their associations as separate events in any
order, so every one of them re-derives the order from the mirrors: the order is placed once
the deal is won, its company and currency are known and every associated line item has a
price and a quantity; a line item that arrives later amends the order (while it is not
fulfilled). When the deal's ``hs_num_of_associated_line_items`` is subscribed, the order
waits until that many line items have arrived, so it is placed complete.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.hubspot.schemas import as_of
from adapters.hubspot.schemas import text as _text
from adapters.inbound.convert import business_date, currency_code, from_epoch_millis
from adapters.inbound.model import Known, Ref, Step, Translation
from adapters.inbound.products import sku_or_wait
from adapters.inbound.source import Malformed
from hub.domain.money import EXPONENTS

CRM = "crm"
LINE_ITEM = "association:line_item:"
"""Deal mirror field per associated line item (``"true"``, or ``"false"`` once removed)."""
DEAL = "association:deal"
"""Line item mirror field naming its deal."""
COMPANY = "associatedcompanyid"
"""Deal mirror field naming its company (a property, or set from an association event)."""
AMENDABLE = {"placed", "validated", "accepted"}
_PERIOD = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:\d+W)?(?:\d+D)?$")


@dataclass(frozen=True)
class DealRules:
    """How a deal is read: the closed-won stage ids (used when ``hs_is_closed_won`` is not
    in the mirror) and the currency of deals without ``deal_currency_code`` (a portal with
    one currency does not set it)."""

    won_stages: frozenset[str] = frozenset({"closedwon"})
    default_currency: str | None = None


def deal(record_id: str, known: Known, rules: DealRules, occurred_at: datetime) -> Translation:
    """Place (or amend) the order of deal ``record_id`` if the mirrors say it is won."""
    fields = known.mirror("deal", record_id) or {}
    if not _won(fields, rules):
        return Translation.ignore(f"deal {record_id} is not closed won")
    company = _text(fields.get(COMPANY))
    if company is None:
        return Translation.ignore(
            f"deal {record_id} has no associated company yet: the order is placed when the "
            "deal-to-company association (or associatedcompanyid) arrives"
        )
    customer = known.lookup(Ref(CRM, "customer", company))
    if customer is None:
        return Translation.wait(Ref(CRM, "customer", company))
    raw_currency = _text(fields.get("deal_currency_code")) or rules.default_currency
    if raw_currency is None:
        return Translation.ignore(f"deal {record_id} has no deal_currency_code yet")
    currency = currency_code(raw_currency, field=f"deal.{record_id}.deal_currency_code")
    booked = _day(fields.get("closedate"), f"deal.{record_id}.closedate")
    if booked is None:  # HubSpot sets it when a deal is won: it is on its way
        return Translation.ignore(f"deal {record_id} has no closedate yet")
    records: list[Mapping[str, Any]] = [fields]
    lines = _lines(record_id, fields, known, currency, records)
    if isinstance(lines, Translation):
        return lines
    stated = as_of(*records) or occurred_at
    existing = known.lookup(Ref(CRM, "order", record_id))
    if existing is not None:
        return _amend(record_id, existing, lines, known, stated)
    starts = [_day(line["start"], f"deal.{record_id}.line_items.start") for line in lines]
    data = {
        "customer_id": str(customer),
        "opportunity_id": record_id,
        "lines": [
            {k: v for k, v in line.items() if k not in ("start", "months")} for line in lines
        ],
        "currency": currency,
        "term_months": max(int(line["months"]) for line in lines),
        "start_date": min([d for d in starts if d is not None] or [booked]).isoformat(),
        "booking_date": booked.isoformat(),
    }
    step = Step("order", "place", data, source_record_id=record_id, occurred_at=stated)
    return Translation(steps=(step,))


def deal_of_line_item(record_id: str, known: Known) -> str | None:
    """The deal a line item belongs to (from its association events)."""
    return _text((known.mirror("line_item", record_id) or {}).get(DEAL))


def _won(fields: Mapping[str, Any], rules: DealRules) -> bool:
    flag = _text(fields.get("hs_is_closed_won"))
    if flag is not None:
        return flag.lower() == "true"
    return _text(fields.get("dealstage")) in rules.won_stages


def _lines(
    record_id: str,
    fields: Mapping[str, Any],
    known: Known,
    currency: str,
    records: list[Mapping[str, Any]],
) -> list[dict[str, Any]] | Translation:
    """The order lines from the deal's line items (their mirrors are added to ``records``),
    or why the order cannot be derived yet."""
    ids = sorted(
        (k.removeprefix(LINE_ITEM) for k, v in fields.items() if k.startswith(LINE_ITEM)),
        key=lambda i: (len(i), i),
    )
    ids = [i for i in ids if fields[LINE_ITEM + i] == "true"]
    expected = _text(fields.get("hs_num_of_associated_line_items"))
    count = int(expected) if expected is not None and expected.isdigit() else None
    if count is not None and len(ids) < count:
        return Translation.ignore(
            f"deal {record_id}: {len(ids)} of its {count} line items have arrived"
        )
    if not ids:
        amount = _text(fields.get("amount"))
        if count == 0 and amount is not None:  # a deal sold without line items
            where = f"deal.{record_id}.amount"
            return [
                _line(
                    f"hubspot-deal-{record_id}",
                    fields.get("dealname"),
                    "1",
                    amount,
                    None,
                    None,
                    None,
                    currency,
                    where,
                )
            ]
        return Translation.ignore(f"deal {record_id} has no line items yet")
    lines = []
    for line_id in ids:
        item = known.mirror("line_item", line_id) or {}
        records.append(item)
        price, quantity = _text(item.get("price")), _text(item.get("quantity"))
        if price is None or quantity is None:
            return Translation.ignore(
                f"line item {line_id} of deal {record_id} has no price or quantity yet"
            )
        product = _text(item.get("hs_product_id"))
        if product is None:  # its property event is on its way (or it is a custom line)
            return Translation.ignore(
                f"line item {line_id} of deal {record_id} has no hs_product_id yet: an order "
                "line needs the product its SKU is mapped from"
            )
        sku = sku_or_wait(known, CRM, product)
        if isinstance(sku, Translation):
            return sku  # an unmapped product holds the deal until its mapping is added
        lines.append(
            _line(
                sku,
                item.get("name"),
                quantity,
                price,
                _text(item.get("recurringbillingfrequency")),
                _text(item.get("hs_recurring_billing_period")),
                _text(item.get("hs_recurring_billing_start_date")),
                currency,
                f"line_item.{line_id}",
            )
        )
    return lines


def _line(
    sku: str,
    name: Any,
    quantity: str,
    price: str,
    frequency: str | None,
    period: str | None,
    start: str | None,
    currency: str,
    where: str,
) -> dict[str, Any]:
    recurring = frequency is not None and frequency.lower() not in ("one_time", "none")
    line: dict[str, Any] = {
        "sku": sku,
        "quantity": format(_decimal(quantity, f"{where}.quantity").normalize(), "f"),
        "unit_price": _money(price, currency, f"{where}.price"),
        "charge_type": "recurring" if recurring else "one_time",
        "start": start,
        "months": _months(period) if recurring else 0,
    }
    description = _text(name)
    if description is not None:
        line["description"] = description
    return line


def _amend(
    record_id: str, order_id: Any, lines: list[dict[str, Any]], known: Known, stated: datetime
) -> Translation:
    state = known.state("order", order_id) or {}
    if state.get("status") not in AMENDABLE:
        return Translation.ignore(f"the order of deal {record_id} is {state.get('status')}")
    if sorted(map(_key, state.get("lines", []))) == sorted(map(_key, lines)):
        return Translation.ignore(f"the order of deal {record_id} is up to date")
    body = [{k: v for k, v in line.items() if k not in ("start", "months")} for line in lines]
    return Translation(
        steps=(Step("order", "amend", {"lines": body}, target=order_id, occurred_at=stated),)
    )


def _key(line: Mapping[str, Any]) -> tuple[str, str, Decimal, Decimal, str]:
    return (
        str(line["sku"]),
        str(line.get("description") or ""),
        Decimal(str(line["quantity"])),
        Decimal(str(line["unit_price"])),
        str(line["charge_type"]),
    )


def _decimal(value: str, where: str) -> Decimal:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise Malformed(f"{value!r} is not a decimal number", where) from None
    if not number.is_finite():
        raise Malformed(f"{value!r} is not a decimal number", where)
    return number


def _money(value: str, currency: str, where: str) -> str:
    """HubSpot prices are decimal strings in major units (``"1200.00"``); trailing zeros
    beyond the currency's exponent are dropped (``"5000.00"`` JPY → ``"5000"``), anything
    finer is left for the hub to refuse, naming the field."""
    number = _decimal(value, where)
    step = Decimal(1).scaleb(-EXPONENTS[currency])
    exact = number.quantize(step) if number == number.quantize(step) else number
    return format(exact, "f")


def _months(period: str | None) -> int:
    """``P12M`` → 12, ``P1Y`` → 12, ``P2Y6M`` → 30 (the line's term)."""
    found = _PERIOD.match(period or "")
    if not found:
        return 0
    return int(found.group(1) or 0) * 12 + int(found.group(2) or 0)


def _day(value: Any, where: str) -> date | None:
    """HubSpot sends date properties as epoch milliseconds (midnight UTC for a date) or as
    ISO text, depending on the property and the API that set it."""
    text = _text(value)
    if text is None:
        return None
    if text.isdigit():
        return business_date(from_epoch_millis(text, field=where))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            raise Malformed(f"{text!r} is not a date", where) from None
    return moment.date() if moment.tzinfo is None else business_date(moment)
