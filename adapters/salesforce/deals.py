"""Opportunity and line items → one order, placed once the won deal is complete.

"Won" is ``IsWon`` (derived by Salesforce from the stage's definition), never the stage
label: orgs rename their stages. The order is assembled from the mirrors, so it does not
matter which message arrives last. *Every* Opportunity and OpportunityLineItem message asks
the same question of the mirrors: is this opportunity won, complete and not yet ordered? The
message that makes the answer yes places the order; the ones before it are logged as
ignored (with the reason), the ones after it find the order placed.

Complete means: ``AccountId``, ``CloseDate`` and ``CurrencyIsoCode`` arrived, at least one
line item did, and the lines add up to the opportunity's ``Amount`` (Salesforce keeps
``Amount`` at the sum of the lines' ``TotalPrice`` once an opportunity has line items, so a
won opportunity whose lines do not add up yet is still missing some). A won opportunity of
an account Concord does not know yet waits for that account (held, released when it is
registered).

Line items name their opportunity only on CREATE (``OpportunityId`` cannot change), so the
line's CREATE also records it in the opportunity's list of lines (mirror object
``Opportunity.lines``); a DELETE marks the line deleted and it is left out.

Mapping (documented in the README):
  * ``sku``: the canonical SKU the product catalogue maps the line's ``Product2Id`` (or its
    ``PricebookEntryId``) to (``crm_product_ids`` / ``crm_pricebook_entry_ids``, 18-character
    ids). A line whose product has no mapping **holds** the deal: the delivery waits
    for ``crm product <Product2Id>`` (``GET /v1/inbound/held``) and is placed when the
    mapping is added (``PUT /v1/mappings/{sku}``, ``concord mappings load``);
  * ``charge_type``: ``SBQQ__ChargeType__c`` (Salesforce CPQ) of the line (One-Time /
    Recurring / Usage), else the catalogue product's charge type;
  * ``unit_price``: ``UnitPrice``; with a ``Discount``, ``TotalPrice / Quantity``;
  * ``term_months``: ``Term_Months__c`` or ``SBQQ__SubscriptionTerm__c``; 12 when absent;
  * ``start_date``: the earliest line ``ServiceDate``, else ``CloseDate``;
    ``booking_date``: ``CloseDate`` (the source's business date, never the arrival time).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from adapters.inbound.convert import currency_code
from adapters.inbound.model import Known, Ref, Step, Translation
from adapters.inbound.products import product_or_wait
from adapters.inbound.source import Malformed, parse_model
from adapters.salesforce.cdc import Change
from adapters.salesforce.ids import to_18
from adapters.salesforce.schemas import LineItemFields, OpportunityFields, Product2Fields
from hub.domain.money import exponent

CRM = "crm"
LINES = "Opportunity.lines"
DEFAULT_TERM_MONTHS = 12
_CHARGE_TYPES = {
    "one-time": "one_time",
    "one_time": "one_time",
    "recurring": "recurring",
    "usage": "usage",
}


def opportunity(change: Change, known: Known) -> Translation:
    if change.change_type == "DELETE":
        return Translation.ignore(f"opportunity {change.record_id} was deleted")
    return place_when_complete(change.record_id, known)


def line_item(change: Change, known: Known) -> Translation:
    line = known.mirror("OpportunityLineItem", change.record_id) or {}
    opportunity_id = line.get("OpportunityId")
    if not opportunity_id:
        return Translation.ignore(
            f"line item {change.record_id}: its CREATE (naming the opportunity) has not "
            "arrived; mirrored"
        )
    return place_when_complete(str(opportunity_id), known)


def place_when_complete(opportunity_id: str, known: Known) -> Translation:
    record = known.mirror("Opportunity", opportunity_id)
    if record is None:
        return Translation.ignore(f"opportunity {opportunity_id} has not arrived; mirrored")
    opp = parse_model(OpportunityFields, _plain(record), f"mirror.Opportunity.{opportunity_id}")
    if not opp.IsWon or record.get("IsDeleted"):
        return Translation.ignore(f"opportunity {opportunity_id} is not won (IsWon)")
    placed = known.lookup(Ref(CRM, "order", opportunity_id))
    for name in ("AccountId", "CloseDate", "CurrencyIsoCode"):
        if getattr(opp, name) is None:
            return Translation.ignore(
                f"opportunity {opportunity_id} is won but its {name} has not arrived"
            )
    assert opp.AccountId and opp.CloseDate and opp.CurrencyIsoCode
    currency = currency_code(opp.CurrencyIsoCode, field="body.data.payload.CurrencyIsoCode")
    lines = _lines(opportunity_id, known)
    if not lines:
        return Translation.ignore(
            f"opportunity {opportunity_id} is won without line items: an order needs lines"
        )
    total = sum((line.total for line in lines), Decimal(0))
    if opp.Amount is not None and total != opp.Amount:
        return Translation.ignore(
            f"opportunity {opportunity_id} is won but its lines add up to {total}, not its "
            f"Amount {opp.Amount}: waiting for the other line items"
        )
    customer = known.lookup(Ref(CRM, "customer", opp.AccountId))
    if customer is None:
        return Translation.wait(Ref(CRM, "customer", opp.AccountId))
    bodies = []
    for line in lines:
        body = line.body(currency, known)
        if isinstance(body, Translation):
            return body  # an unmapped product holds the whole deal
        bodies.append(body)
    if placed is not None:
        return _amendment(opportunity_id, placed, bodies, known)
    starts = [line.fields.ServiceDate for line in lines if line.fields.ServiceDate]
    data = {
        "customer_id": str(customer),
        "opportunity_id": opportunity_id,
        "lines": bodies,
        "currency": currency,
        "term_months": _term(opp),
        "start_date": min(starts, default=opp.CloseDate).isoformat(),
        "booking_date": opp.CloseDate.isoformat(),
    }
    return Translation(steps=(Step("order", "place", data, source_record_id=opportunity_id),))


def _amendment(
    opportunity_id: str, order_id: Any, bodies: list[dict[str, Any]], known: Known
) -> Translation:
    """A won opportunity whose order is placed and whose lines changed since: an upgrade,
    downgrade or quantity change in the CRM amends the order with the lines as they are now
    (the same lines again change nothing)."""
    state = known.state("order", order_id) or {}
    if state.get("status") in ("rejected", "cancelled", "fulfilled"):
        return Translation.ignore(
            f"the order of opportunity {opportunity_id} is {state.get('status')}: not amended"
        )
    if _line_keys(state.get("lines") or []) == _line_keys(bodies):
        return Translation.ignore(f"the order of opportunity {opportunity_id} is placed already")
    return Translation(
        steps=(
            Step(
                "order",
                "amend",
                {"lines": bodies},
                target=order_id,
                source_record_id=opportunity_id,
            ),
        )
    )


def _line_keys(lines: list[dict[str, Any]]) -> list[tuple[str, Decimal, Decimal, str]]:
    """What makes two sets of lines the same order: SKU, quantity, price, charge type."""
    return sorted(
        (
            str(line["sku"]),
            Decimal(str(line["quantity"])),
            Decimal(str(line["unit_price"])),
            str(line["charge_type"]),
        )
        for line in lines
    )


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if "." not in k}


def _term(opp: OpportunityFields) -> int:
    term = opp.Term_Months__c or opp.SBQQ__SubscriptionTerm__c
    return DEFAULT_TERM_MONTHS if term is None else int(term)


class _Line:
    """One mirrored line item, complete enough to order."""

    def __init__(self, line_id: str, fields: LineItemFields) -> None:
        self.id = line_id
        self.fields = fields
        quantity = fields.Quantity or Decimal(0)
        unit = fields.UnitPrice if fields.UnitPrice is not None else Decimal(0)
        self.total = fields.TotalPrice if fields.TotalPrice is not None else unit * quantity

    def body(self, currency: str, known: Known) -> dict[str, Any] | Translation:
        line = self.fields
        ids = _product_ids(line, self.id)
        mapped = product_or_wait(known, CRM, *ids)
        if isinstance(mapped, Translation):
            return mapped
        product = _product(line.Product2Id, known)
        quantity = line.Quantity or Decimal(1)
        places = Decimal(1).scaleb(-exponent(currency))
        unit = line.UnitPrice
        if unit is None or (line.Discount and line.TotalPrice is not None):
            # A discounted line books its net price: TotalPrice / Quantity, rounded.
            unit = ((line.TotalPrice or Decimal(0)) / quantity).quantize(places, ROUND_HALF_EVEN)
        elif unit != unit.quantize(places, ROUND_HALF_EVEN):
            raise Malformed(
                f"line item {self.id}: UnitPrice {unit} has more decimals than {currency} has",
                "body.data.payload.UnitPrice",
            )
        description = line.Description or line.Name or (product.Name if product else None)
        return {
            "sku": str(mapped["sku"]),
            "description": None if description is None else description[:500],
            "quantity": format(quantity.normalize(), "f"),
            "unit_price": format(unit.quantize(places), "f"),
            "charge_type": _charge_type(line.SBQQ__ChargeType__c, self.id)
            or str(mapped["charge_type"]),
        }


def _lines(opportunity_id: str, known: Known) -> list[_Line]:
    listed = known.mirror(LINES, opportunity_id) or {}
    found: list[tuple[int, str, _Line]] = []
    for line_id in sorted(listed):
        record = known.mirror("OpportunityLineItem", line_id)
        if record is None or record.get("IsDeleted"):
            continue
        where = f"mirror.OpportunityLineItem.{line_id}"
        fields = parse_model(LineItemFields, _plain(record), where)
        if fields.Quantity is None or (fields.UnitPrice is None and fields.TotalPrice is None):
            continue  # its CREATE has not arrived: the amounts do not add up yet
        found.append((fields.SortOrder or 0, line_id, _Line(line_id, fields)))
    return [line for _, _, line in sorted(found, key=lambda f: (f[0], f[1]))]


def _product(product_id: str | None, known: Known) -> Product2Fields | None:
    if not product_id:
        return None
    record = known.mirror("Product2", product_id)
    if record is None:
        return None
    return parse_model(Product2Fields, _plain(record), f"mirror.Product2.{product_id}")


def _product_ids(line: LineItemFields, line_id: str) -> list[str]:
    """The ids the catalogue may know the line's product by: its Product2Id, then its
    PricebookEntryId, in the 18-character form CDC sends (the cross-reference's key). A
    held line waits for the Product2Id: mapping that id is what releases it."""
    given = [i for i in (line.Product2Id, line.PricebookEntryId) if i]
    if not given:
        raise Malformed(f"line item {line_id} names no product", "body.data.payload.Product2Id")
    ids: list[str] = []
    for value in given:
        try:
            ids.append(to_18(value))
        except ValueError:
            ids.append(value)
    return ids


def _charge_type(value: str | None, line_id: str) -> str | None:
    if value is None:
        return None
    found = _CHARGE_TYPES.get(value.strip().lower())
    if found is None:
        raise Malformed(
            f"line item {line_id}: charge type {value!r} is not One-Time, Recurring or Usage",
            "body.data.payload.SBQQ__ChargeType__c",
        )
    return found
