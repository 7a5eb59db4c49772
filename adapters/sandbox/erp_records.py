"""The ERP sandbox's record rules: how a NetSuite record is checked, numbered and totalled.

Why apart from the HTTP side (adapters/sandbox/erp.py): these are the parts a test reasons
about — which reference is unknown, what the tax on a line is, what ``tranId`` a sales order
gets — and they are plain functions over dicts, with no request or lock in sight.

Records are kept as NetSuite renders them (camelCase fields, references ``{id, refName}``,
sublists ``{"items": […]}``) with money as ``Decimal`` in major units; the HTTP side writes
those as JSON numbers, exactly. Tax is computed per line: the line's ``taxCode`` (else the
customer's) names a rate in the tax code table, and the line's tax is ``amount * rate``
rounded half up at the currency's exponent (JPY: whole yen); a line that states its own
``tax1Amt`` keeps it (a billing document posted with the tax billing computed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from hub.domain.money import EXPONENTS

__all__ = [
    "CURRENCIES",
    "ITEM_TYPES",
    "RECORD_TYPES",
    "TERMS",
    "Books",
    "NsError",
    "TaxTable",
]

ITEM_TYPES = ("inventoryItem", "serviceSaleItem", "nonInventorySaleItem")
TRANSACTION_PREFIX = {
    "salesOrder": "SO",
    "invoice": "INV",
    "customerPayment": "PYMT",
    "creditMemo": "CM",
}
RECORD_TYPES = ("customer", *TRANSACTION_PREFIX, *ITEM_TYPES)

#: Currency records of the account: internal id → ISO code (``externalId`` and ``refName``
#: are the ISO code too, so a client may write ``{"externalId": "EUR"}``).
CURRENCIES = {"1": "USD", "2": "GBP", "3": "CAD", "4": "EUR", "5": "JPY", "6": "AUD", "7": "CHF"}
#: Payment terms: internal id → (name, days until due).
TERMS = {
    "1": ("Due on receipt", 0),
    "2": ("Net 30", 30),
    "3": ("Net 60", 60),
    "4": ("Net 15", 15),
}
ORDER_STATUSES = {
    "A": "Pending Approval",
    "B": "Pending Fulfillment",
    "C": "Cancelled",
    "D": "Partially Fulfilled",
    "E": "Pending Billing/Partially Fulfilled",
    "F": "Pending Billing",
    "G": "Billed",
    "H": "Closed",
}
NOT_TAXABLE = {"id": "-7", "refName": "-Not Taxable-"}
DEFAULT_TAX_CODES = {"US-CA": Decimal("7.25"), "US-NY": Decimal("8.875"), "EXEMPT": Decimal(0)}
_MAX_LINES = 1000


class NsError(Exception):
    """A refused save, as NetSuite words it: status, ``o:errorCode``, detail, path."""

    def __init__(self, status: int, code: str, detail: str, path: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.path = path


def invalid(detail: str, path: str | None = None) -> NsError:
    return NsError(400, "INVALID_CONTENT", detail, path)


def bad_ref(value: Any, path: str) -> NsError:
    return NsError(
        400,
        "INVALID_KEY_OR_REF",
        f"Invalid {path.rsplit('.', 1)[-1]} reference key {_shown(value)}.",
        path,
    )


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("id") or value.get("externalId") or value.get("refName") or "")
    return str(value)


@dataclass
class TaxTable:
    """Tax codes (code → rate in percent) and the configurable failure of the tax engine."""

    codes: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_TAX_CODES))
    fail: bool = False
    message: str = "the tax engine is unavailable"

    def rate(self, ref: Any, path: str) -> tuple[dict[str, str], Decimal]:
        code = _ref_key(ref)
        if code == NOT_TAXABLE["id"]:
            return dict(NOT_TAXABLE), Decimal(0)
        if code is None or code not in self.codes:
            raise bad_ref(ref, path)
        return {"id": code, "refName": code}, self.codes[code]


def _ref_key(ref: Any) -> str | None:
    if isinstance(ref, str | int) and not isinstance(ref, bool):
        return str(ref)
    if isinstance(ref, dict):
        for key in ("id", "externalId", "refName"):
            value = ref.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    return None


def money(value: Any, path: str) -> Decimal:
    """A JSON number (never a string, never a bool) as an exact Decimal."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise invalid(f"Invalid Field Value {value!r} for the following field: {path}", path)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or abs(number) >= Decimal("1e15"):
        raise invalid(f"Invalid Field Value {value!r} for the following field: {path}", path)
    return number


def rounded(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-EXPONENTS[currency]), rounding=ROUND_HALF_UP)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Finder = Callable[[str, Any], dict[str, Any] | None]


@dataclass
class Books:
    """The rules of one account: resolves references through ``find`` (record type, ref →
    the stored record or None) and numbers new records."""

    find: Finder
    tax: TaxTable
    counters: dict[str, int] = field(default_factory=dict)

    def next_number(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, 1000) + 1
        return self.counters[kind]

    # -- references -------------------------------------------------------------------------
    def record_ref(self, kinds: tuple[str, ...], ref: Any, path: str) -> dict[str, Any]:
        for kind in kinds:
            found = self.find(kind, ref)
            if found is not None:
                return found
        raise bad_ref(ref, path)

    @staticmethod
    def currency(ref: Any, path: str) -> tuple[dict[str, str], str]:
        key = _ref_key(ref)
        for internal, iso in CURRENCIES.items():
            if key in (internal, iso):
                return {"id": internal, "refName": iso}, iso
        raise bad_ref(ref, path)

    @staticmethod
    def terms(ref: Any, path: str) -> tuple[dict[str, str], int]:
        key = _ref_key(ref)
        for internal, (name, days) in TERMS.items():
            if key in (internal, name):
                return {"id": internal, "refName": name}, days
        raise bad_ref(ref, path)

    # -- saving -----------------------------------------------------------------------------
    def save(self, kind: str, record: dict[str, Any], new_id: str, created: bool) -> None:
        """Check and complete ``record`` (the merged fields of a create or an update) in
        place; raise :class:`NsError` for what NetSuite would refuse."""
        record["id"] = new_id
        external = record.get("externalId")
        if external is not None and not (isinstance(external, str) and 0 < len(external) <= 255):
            raise invalid("externalId must be a text of 1 to 255 characters", "externalId")
        stamp = now_iso()
        if created:
            record.setdefault("createdDate", stamp)
        record["lastModifiedDate"] = stamp
        if kind == "customer":
            self._customer(record)
        elif kind in ("salesOrder", "invoice", "creditMemo"):
            self._transaction(kind, record, created)
        elif kind == "customerPayment":
            self._payment(record, created)
        else:
            self._item(record)

    def _customer(self, record: dict[str, Any]) -> None:
        name = record.get("companyName")
        if not (isinstance(name, str) and name.strip()):
            raise NsError(
                400, "USER_ERROR", "Please enter value(s) for: Company Name", "companyName"
            )
        record.setdefault("entityId", f"CUST{record['id']}")
        record.setdefault("isPerson", False)
        record["currency"], _ = self.currency(record.get("currency", {"id": "1"}), "currency")
        record["terms"], _ = self.terms(record.get("terms", {"id": "2"}), "terms")
        record.setdefault("subsidiary", {"id": "1", "refName": "Parent Company"})
        record.setdefault("entityStatus", {"id": "13", "refName": "CUSTOMER-Closed Won"})
        hold = _ref_key(record.get("creditHoldOverride")) or "AUTO"
        if hold.upper() not in ("AUTO", "ON", "OFF"):
            raise bad_ref(record.get("creditHoldOverride"), "creditHoldOverride")
        record["creditHoldOverride"] = {"id": hold.upper(), "refName": hold.title()}
        record.setdefault("dateCreated", record.get("createdDate"))
        parent = record.get("parent")
        if parent is not None:
            found = self.record_ref(("customer",), parent, "parent")
            if found["id"] == record["id"]:
                raise NsError(400, "USER_ERROR", "A customer cannot be its own parent.", "parent")
            record["parent"] = _as_ref(found, _customer_name(found))
        if record.get("taxCode") is not None:
            record["taxCode"], _ = self.tax.rate(record["taxCode"], "taxCode")

    def _transaction(self, kind: str, record: dict[str, Any], created: bool) -> None:
        if self.tax.fail and kind in ("salesOrder", "invoice"):
            raise NsError(400, "USER_ERROR", f"Tax calculation failed: {self.tax.message}")
        entity = self.record_ref(("customer",), record.get("entity"), "entity")
        record["entity"] = _as_ref(entity, _customer_name(entity))
        record["currency"], iso = self.currency(
            record.get("currency", entity.get("currency")), "currency"
        )
        if created:
            record["tranId"] = record.get("tranId") or (
                f"{TRANSACTION_PREFIX[kind]}{self.next_number(kind)}"
            )
        record.setdefault("tranDate", dt.date.today().isoformat())
        record.setdefault("exchangeRate", Decimal("1.0"))
        record.setdefault("subsidiary", entity.get("subsidiary"))
        self._lines(record, iso, entity)
        if kind == "salesOrder":
            code = (_ref_key(record.get("orderStatus")) or "B").upper()
            if code not in ORDER_STATUSES:
                raise bad_ref(record.get("orderStatus"), "orderStatus")
            record["orderStatus"] = {"id": code, "refName": ORDER_STATUSES[code]}
            record["status"] = ORDER_STATUSES[code]
        elif kind == "invoice":
            self._invoice(record, entity, iso)
        else:
            record.setdefault("status", {"id": "Open", "refName": "Open"})
        source = record.get("createdFrom")
        if source is not None:
            kinds = ("salesOrder",) if kind == "invoice" else ("invoice",)
            found = self.record_ref(kinds, source, "createdFrom")
            label = "Sales Order" if kind == "invoice" else "Invoice"
            record["createdFrom"] = _as_ref(found, f"{label} #{found.get('tranId')}")

    def _invoice(self, record: dict[str, Any], entity: dict[str, Any], iso: str) -> None:
        record["terms"], days = self.terms(record.get("terms", entity.get("terms")), "terms")
        try:
            issued = dt.date.fromisoformat(str(record["tranDate"]))
        except ValueError:
            raise invalid(f"Invalid date {record['tranDate']!r}", "tranDate") from None
        record.setdefault("dueDate", (issued + dt.timedelta(days=days)).isoformat())
        paid = money(record.get("amountPaid", 0), "amountPaid")
        record["amountPaid"] = rounded(paid, iso)
        record["amountRemaining"] = record["total"] - record["amountPaid"]
        state = "Paid In Full" if record["amountRemaining"] <= 0 else "Open"
        record["status"] = {"id": state, "refName": state}

    def _lines(self, record: dict[str, Any], iso: str, entity: dict[str, Any]) -> None:
        sublist = record.get("item")
        rows = sublist.get("items") if isinstance(sublist, dict) else None
        if not isinstance(rows, list) or not rows:
            raise NsError(
                400, "USER_ERROR", "You must enter at least one line item for this transaction."
            )
        if len(rows) > _MAX_LINES:
            raise invalid(f"at most {_MAX_LINES} lines", "item.items")
        lines: list[dict[str, Any]] = []
        subtotal = tax_total = Decimal(0)
        for index, row in enumerate(rows):
            where = f"item.items[{index}]"
            if not isinstance(row, dict):
                raise invalid("a line is a JSON object", where)
            line = self._line(row, index, iso, entity, where)
            subtotal += line["amount"]
            tax_total += line["tax1Amt"]
            lines.append(line)
        record["item"] = {"items": lines, "totalResults": len(lines)}
        record["subtotal"] = subtotal
        record["discountTotal"] = Decimal(0)
        record["taxTotal"] = tax_total
        record["total"] = subtotal + tax_total

    def _line(
        self, row: dict[str, Any], index: int, iso: str, entity: dict[str, Any], where: str
    ) -> dict[str, Any]:
        item = self.record_ref(ITEM_TYPES, row.get("item"), f"{where}.item")
        quantity = money(row.get("quantity", 1), f"{where}.quantity")
        rate = money(row.get("rate", 0), f"{where}.rate")
        amount = rounded(
            money(row["amount"], f"{where}.amount") if "amount" in row else rate * quantity,
            iso,
        )
        tax_ref = row.get("taxCode", entity.get("taxCode"))
        if tax_ref is None:
            code, percent = dict(NOT_TAXABLE), Decimal(0)
        else:
            code, percent = self.tax.rate(tax_ref, f"{where}.taxCode")
        given = "tax1Amt" in row
        if given:
            tax = rounded(money(row["tax1Amt"], f"{where}.tax1Amt"), iso)
        else:
            tax = rounded(amount * percent / 100, iso)
        description = row.get("description", item.get("displayName") or item.get("itemId"))
        return {
            **{k: v for k, v in row.items() if k.startswith("cust")},
            "line": index + 1,
            "item": _as_ref(item, str(item.get("itemId"))),
            "description": description,
            "quantity": quantity,
            "rate": rate,
            "amount": amount,
            "price": {"id": "-1", "refName": "Custom"},
            "taxCode": code,
            "taxRate1": percent,
            "tax1Amt": tax,
            "isClosed": bool(row.get("isClosed", False)),
            "_taxGiven": given,  # hidden (``_``): an update recomputes only the engine's tax
        }

    def _payment(self, record: dict[str, Any], created: bool) -> None:
        customer = self.record_ref(("customer",), record.get("customer"), "customer")
        record["customer"] = _as_ref(customer, _customer_name(customer))
        record["currency"], iso = self.currency(
            record.get("currency", customer.get("currency")), "currency"
        )
        if created:
            record["tranId"] = record.get("tranId") or f"PYMT{self.next_number('customerPayment')}"
        record.setdefault("tranDate", dt.date.today().isoformat())
        record["payment"] = rounded(money(record.get("payment"), "payment"), iso)
        record.setdefault("undepFunds", True)
        sublist = record.get("apply") or {}
        rows = sublist.get("items", []) if isinstance(sublist, dict) else None
        if not isinstance(rows, list):
            raise invalid("apply is a sublist {items: [...]}", "apply")
        applied = Decimal(0)
        lines = []
        for index, row in enumerate(rows):
            where = f"apply.items[{index}]"
            if not isinstance(row, dict):
                raise invalid("an application is a JSON object", where)
            invoice = self.record_ref(("invoice",), row.get("doc"), f"{where}.doc")
            amount = rounded(money(row.get("amount", 0), f"{where}.amount"), iso)
            if row.get("apply", True):
                applied += amount
            lines.append(
                {
                    "doc": _as_ref(invoice, str(invoice.get("tranId"))),
                    "apply": bool(row.get("apply", True)),
                    "amount": amount,
                    "refNum": invoice.get("tranId"),
                    "total": invoice.get("total"),
                    "due": invoice.get("amountRemaining"),
                    "type": "Invoice",
                }
            )
        if applied > record["payment"]:
            raise NsError(
                400,
                "USER_ERROR",
                f"The total amount applied ({applied}) exceeds the payment ({record['payment']}).",
                "apply",
            )
        record["apply"] = {"items": lines, "totalResults": len(lines)}
        record["applied"] = applied
        record["unapplied"] = record["payment"] - applied

    def _item(self, record: dict[str, Any]) -> None:
        name = record.get("itemId")
        if not (isinstance(name, str) and name.strip()):
            raise NsError(
                400, "USER_ERROR", "Please enter value(s) for: Item Name/Number", "itemId"
            )
        record.setdefault("displayName", name)
        record.setdefault("isInactive", False)


def _customer_name(customer: Mapping[str, Any]) -> str:
    return f"{customer.get('entityId')} {customer.get('companyName')}"


def _as_ref(record: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {"id": record["id"], "refName": name}
