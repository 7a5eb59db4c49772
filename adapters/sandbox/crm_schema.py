"""The CRM sandbox's objects: their fields, which are required or read-only, and how a
value sent over REST is checked — refused the way Salesforce refuses it.

Why a table and not classes per object: Salesforce validates every sObject the same way
(unknown column, read-only field, required field, type of value, restricted picklist), so
one checker over a field table gives the same errors for every object, in the same shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapters.salesforce.ids import to_18

__all__ = [
    "CURRENCIES",
    "MILESTONE_FIELDS",
    "OBJECTS",
    "STAGES",
    "SObject",
    "SalesforceError",
    "check_fields",
    "sf_datetime",
]

#: Stage → (IsClosed, IsWon, default Probability): the org's OpportunityStage table.
STAGES: dict[str, tuple[bool, bool, int]] = {
    "Prospecting": (False, False, 10),
    "Qualification": (False, False, 10),
    "Needs Analysis": (False, False, 20),
    "Value Proposition": (False, False, 50),
    "Id. Decision Makers": (False, False, 60),
    "Perception Analysis": (False, False, 70),
    "Proposal/Price Quote": (False, False, 75),
    "Negotiation/Review": (False, False, 90),
    "Closed Won": (True, True, 100),
    "Closed Lost": (True, False, 0),
}
CURRENCIES = frozenset({"USD", "EUR", "GBP", "CHF", "JPY", "CAD", "AUD", "SEK", "KWD"})

#: The Opportunity's custom fields Concord writes its milestones to (Q2C.md step 6).
MILESTONE_FIELDS: dict[str, str] = {
    "Concord_Status__c": "text",
    "Concord_Status_Reason__c": "text",
    "Concord_Ordered_At__c": "datetime",
    "Concord_ERP_Accepted_At__c": "datetime",
    "Concord_ERP_Order_Number__c": "text",
    "Concord_Activated_At__c": "datetime",
    "Concord_First_Invoice_At__c": "datetime",
    "Concord_Paid_At__c": "datetime",
}


class SalesforceError(Exception):
    """A refusal in Salesforce's terms: HTTP status, ``errorCode``, message, fields."""

    def __init__(
        self, status: int, code: str, message: str, fields: list[str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []

    def body(self) -> list[dict[str, Any]]:
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]


@dataclass(frozen=True)
class SObject:
    """One object type: ``fields`` maps a writable or readable field to its kind
    (``text``, ``money``, ``number``, ``int``, ``bool``, ``date``, ``datetime``, ``stage``,
    ``currency``, ``ref:<Type>``)."""

    name: str
    prefix: str
    fields: dict[str, str]
    required: tuple[str, ...] = ()
    read_only: frozenset[str] = frozenset()
    create_only: frozenset[str] = frozenset()
    external_ids: frozenset[str] = frozenset({"External_Id__c"})
    label: str = ""


_SYSTEM = {
    "Id": "text",
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
    "IsDeleted": "bool",
    "OwnerId": "text",
}
_SYSTEM_FIELDS = frozenset(_SYSTEM)

OBJECTS: dict[str, SObject] = {
    "Account": SObject(
        "Account",
        "001",
        {
            **_SYSTEM,
            "Name": "text",
            "ParentId": "ref:Account",
            "AccountNumber": "text",
            "Type": "text",
            "Industry": "text",
            "Website": "text",
            "Phone": "text",
            "BillingStreet": "text",
            "BillingCity": "text",
            "BillingState": "text",
            "BillingStateCode": "text",
            "BillingPostalCode": "text",
            "BillingCountry": "text",
            "BillingCountryCode": "text",
            "CurrencyIsoCode": "currency",
            "External_Id__c": "text",
        },
        required=("Name",),
        read_only=_SYSTEM_FIELDS,
        label="Account",
    ),
    "Opportunity": SObject(
        "Opportunity",
        "006",
        {
            **_SYSTEM,
            "AccountId": "ref:Account",
            "Name": "text",
            "StageName": "stage",
            "CloseDate": "date",
            "Amount": "money",
            "Probability": "number",
            "IsClosed": "bool",
            "IsWon": "bool",
            "Type": "text",
            "LeadSource": "text",
            "NextStep": "text",
            "Pricebook2Id": "ref:Pricebook2",
            "HasOpportunityLineItem": "bool",
            "CurrencyIsoCode": "currency",
            "Term_Months__c": "int",
            "External_Id__c": "text",
            **MILESTONE_FIELDS,
        },
        required=("Name", "StageName", "CloseDate"),
        read_only=_SYSTEM_FIELDS | {"IsClosed", "IsWon", "HasOpportunityLineItem"},
        label="Opportunity",
    ),
    "OpportunityLineItem": SObject(
        "OpportunityLineItem",
        "00k",
        {
            **_SYSTEM,
            "OpportunityId": "ref:Opportunity",
            "PricebookEntryId": "ref:PricebookEntry",
            "Product2Id": "ref:Product2",
            "ProductCode": "text",
            "Name": "text",
            "Description": "text",
            "Quantity": "number",
            "UnitPrice": "money",
            "ListPrice": "money",
            "TotalPrice": "money",
            "ServiceDate": "date",
            "SortOrder": "int",
            "CurrencyIsoCode": "currency",
            "Term_Months__c": "int",
            "SBQQ__ChargeType__c": "text",
            "External_Id__c": "text",
        },
        required=("OpportunityId", "PricebookEntryId", "Quantity"),
        read_only=_SYSTEM_FIELDS
        | {"Product2Id", "ProductCode", "Name", "ListPrice"}
        | {"CurrencyIsoCode"},
        create_only=frozenset({"OpportunityId", "PricebookEntryId"}),
        label="Opportunity Product",
    ),
    "Product2": SObject(
        "Product2",
        "01t",
        {
            **_SYSTEM,
            "Name": "text",
            "ProductCode": "text",
            "Description": "text",
            "IsActive": "bool",
            "Family": "text",
            "StockKeepingUnit": "text",
            "SBQQ__ChargeType__c": "text",
            "External_Id__c": "text",
        },
        required=("Name",),
        read_only=_SYSTEM_FIELDS,
        label="Product",
    ),
    "PricebookEntry": SObject(
        "PricebookEntry",
        "01u",
        {
            **_SYSTEM,
            "Pricebook2Id": "ref:Pricebook2",
            "Product2Id": "ref:Product2",
            "UnitPrice": "money",
            "IsActive": "bool",
            "UseStandardPrice": "bool",
            "CurrencyIsoCode": "currency",
            "External_Id__c": "text",
        },
        required=("Pricebook2Id", "Product2Id", "UnitPrice"),
        read_only=_SYSTEM_FIELDS,
        create_only=frozenset({"Pricebook2Id", "Product2Id", "CurrencyIsoCode"}),
        label="Price Book Entry",
    ),
    "Pricebook2": SObject(
        "Pricebook2",
        "01s",
        {**_SYSTEM, "Name": "text", "IsActive": "bool", "IsStandard": "bool"},
        required=("Name",),
        read_only=_SYSTEM_FIELDS | {"IsStandard"},
        external_ids=frozenset(),
        label="Price Book",
    ),
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_TEXT = 255
_LONG_TEXT = {"Description": 32000, "NextStep": 255, "Concord_Status_Reason__c": 32000}
_MONEY = Decimal("0.01")


def check_fields(sobject: SObject, body: Any, *, creating: bool, exists: Any) -> dict[str, Any]:
    """The body's fields, checked and converted (Decimal, ISO dates, 18-character ids).

    ``exists(type, id)`` says whether a referenced record exists. Raises
    :class:`SalesforceError` with the code Salesforce would answer."""
    if not isinstance(body, dict):
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object"
        )
    clean: dict[str, Any] = {}
    for name, value in body.items():
        if name == "attributes":
            continue
        kind = sobject.fields.get(name)
        if kind is None:
            raise SalesforceError(
                400,
                "INVALID_FIELD",
                f"No such column '{name}' on sobject of type {sobject.name}",
                [name],
            )
        locked = name in sobject.read_only or (not creating and name in sobject.create_only)
        if locked:
            verb = "create" if creating else "update"
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to {verb} fields: {name}. Please check the security settings of "
                "this field and verify that it is read/write for your profile or permission "
                "set.",
                [name],
            )
        clean[name] = None if value is None else _convert(sobject, name, kind, value, exists)
    needed = sobject.required if creating else tuple(n for n in clean if n in sobject.required)
    missing = [n for n in needed if clean.get(n) is None]
    if missing:
        raise SalesforceError(
            400,
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            missing,
        )
    return clean


def _convert(sobject: SObject, name: str, kind: str, value: Any, exists: Any) -> Any:
    if kind == "text":
        if not isinstance(value, str):
            raise _type(name, value, "String")
        limit = _LONG_TEXT.get(name, _MAX_TEXT)
        if len(value) > limit:
            raise SalesforceError(
                400,
                "STRING_TOO_LONG",
                f"{name}: data value too large: {value[:40]}... (max length={limit})",
                [name],
            )
        return value
    if kind in ("money", "number", "int"):
        number = _number(name, value)
        if kind == "int":
            if number != number.to_integral_value():
                raise _type(name, value, "Integer")
            return int(number)
        return number.quantize(_MONEY)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _type(name, value, "Boolean")
        return value
    if kind == "date":
        if not (isinstance(value, str) and _DATE.match(value)):
            raise _type(name, value, "Date")
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise _type(name, value, "Date") from None
    if kind == "datetime":
        return sf_datetime(_parse_datetime(name, value))
    if kind == "stage":
        if value not in STAGES:
            raise _picklist("Stage", name, value)
        return value
    if kind == "currency":
        if value not in CURRENCIES:
            raise _picklist("Currency ISO Code", name, value)
        return value
    target = kind.removeprefix("ref:")
    return _reference(target, name, value, exists)


def _number(name: str, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise _type(name, value, "Double")
    try:
        number = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _type(name, value, "Double") from None
    if not number.is_finite() or abs(number) >= Decimal("1e16"):
        raise _type(name, value, "Double")
    return number


def _parse_datetime(name: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise _type(name, value, "Datetime")
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _type(name, value, "Datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def sf_datetime(moment: datetime) -> str:
    """Salesforce's REST form: ``2026-01-15T10:22:33.000+0000``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def _reference(target: str, name: str, value: Any, exists: Any) -> str:
    prefix = OBJECTS[target].prefix
    try:
        record_id = to_18(value)
    except ValueError:
        record_id = ""
    if not record_id or not record_id.startswith(prefix):
        raise SalesforceError(
            400,
            "MALFORMED_ID",
            f"{OBJECTS[target].label} ID: id value of incorrect type: {value}",
            [name],
        )
    if not exists(target, record_id):
        raise SalesforceError(
            400,
            "INVALID_CROSS_REFERENCE_KEY",
            f"invalid cross reference id: {value}",
            [name],
        )
    return record_id


def _type(name: str, value: Any, wanted: str) -> SalesforceError:
    shown = str(value)[:40]
    return SalesforceError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {wanted.lower()} from value {shown} for field {name}",
        [name],
    )


def _picklist(label: str, name: str, value: Any) -> SalesforceError:
    return SalesforceError(
        400,
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        f"{label}: bad value for restricted picklist field: {str(value)[:40]}",
        [name],
    )
