"""NetSuite deliveries as the README's user-event script sends them: SuiteTalk REST record
JSON (``links``, references ``{id, refName}``, expanded sublists, money as JSON numbers in
major units, dates ``2026-01-15``) in Concord's signed envelope."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from decimal import Decimal
from typing import Any

NETSUITE_SECRET = "ns_test_current"
NETSUITE_OLD_SECRET = "ns_test_previous"
BASE = "https://1234567.suitetalk.api.netsuite.com/services/rest/record/v1"


def netsuite_signature(body: bytes, secret: str = NETSUITE_SECRET) -> str:
    """``X-Concord-Signature``: hex HMAC-SHA256 of the raw body (what N/crypto computes)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dumps(document: Any) -> bytes:
    """JSON with every ``Decimal`` written as a JSON *number* exactly as given (``0.1``,
    ``2.500``), as NetSuite writes money; the stdlib would refuse Decimals, a float would
    not be exact."""

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"@@dec:{value}@@"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(document))
    return re.sub(r'"@@dec:([^"@]+)@@"', r"\1", text).encode()


def envelope(
    record_type: str,
    record: dict[str, Any],
    event_id: str,
    *,
    action: str = "create",
    occurred_at: str = "2026-01-05T09:30:00Z",
) -> bytes:
    return dumps(
        {
            "eventId": event_id,
            "recordType": record_type,
            "action": action,
            "occurredAt": occurred_at,
            "record": record,
        }
    )


def ref(record_type: str, internal_id: str, name: str) -> dict[str, Any]:
    return {
        "links": [{"rel": "self", "href": f"{BASE}/{record_type}/{internal_id}"}],
        "id": internal_id,
        "refName": name,
    }


def links(record_type: str, internal_id: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{BASE}/{record_type}/{internal_id}"}]


def ns_customer(
    internal_id: str,
    account: str | None,
    *,
    entity_id: str = "CUST-00647",
    terms: str = "Net 30",
    currency: str = "EUR",
    vat: str | None = "DE 123.456.789",
    hold: str = "AUTO",
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "links": links("customer", internal_id),
        "id": internal_id,
        "entityId": entity_id,
        "companyName": "Acme GmbH",
        "isPerson": False,
        "subsidiary": ref("subsidiary", "2", "Acme Holding : DE"),
        "currency": ref("currency", "4", currency),
        "terms": ref("term", "2", terms),
        "entityStatus": ref("customerstatus", "13", "CUSTOMER-Closed Won"),
        "creditHoldOverride": {"id": hold, "refName": hold.title()},
        "creditLimit": Decimal("50000.00"),
        "balance": Decimal("0.0"),
        "email": "ap@acme.example",
        "dateCreated": "2026-01-04T16:02:11Z",
        "lastModifiedDate": "2026-01-05T09:30:00Z",
        "custentity_segment": "Mid-market",
    }
    if account is not None:
        record["externalId"] = account
    if vat is not None:
        record["vatRegNumber"] = vat
    if parent is not None:
        record["parent"] = parent
    return record


def ns_lines(amounts: tuple[Decimal, ...], record_type: str, internal_id: str) -> dict[str, Any]:
    return {
        "links": [{"rel": "self", "href": f"{BASE}/{record_type}/{internal_id}/item"}],
        "items": [
            {
                "links": [],
                "line": index + 1,
                "item": ref("serviceSaleItem", "5001", "PLAT-1"),
                "description": f"Platform seat #{index + 1}",
                "quantity": 1,
                "rate": amount,
                "amount": amount,
                "price": {"id": "-1", "refName": "Custom"},
                "taxCode": ref("salestaxitem", "-7", "-Not Taxable-"),
                "isClosed": False,
            }
            for index, amount in enumerate(amounts)
        ],
        "totalResults": len(amounts),
    }


STATUSES = {
    "A": "Pending Approval",
    "B": "Pending Fulfillment",
    "C": "Cancelled",
    "F": "Pending Billing",
    "G": "Billed",
    "H": "Closed",
}


def ns_sales_order(
    internal_id: str,
    opportunity: str | None,
    *,
    status: str = "B",
    tran_id: str = "SO1234",
    currency: str = "USD",
    amounts: tuple[Decimal, ...] = (Decimal("100.0"), Decimal("20")),
) -> dict[str, Any]:
    subtotal = sum(amounts, Decimal(0))
    record: dict[str, Any] = {
        "links": links("salesOrder", internal_id),
        "id": internal_id,
        "tranId": tran_id,
        "tranDate": "2026-01-05",
        "entity": ref("customer", "647", "CUST-00647 Acme GmbH"),
        "currency": ref("currency", "1", currency),
        "exchangeRate": Decimal("1.0"),
        "subsidiary": ref("subsidiary", "2", "Acme Holding : DE"),
        "otherRefNum": "PO-7781",
        "subtotal": subtotal,
        "discountTotal": Decimal("0.0"),
        "taxTotal": Decimal("0.0"),
        "total": subtotal,
        "orderStatus": {"id": status, "refName": STATUSES.get(status, status)},
        "status": STATUSES.get(status, status),
        "createdDate": "2026-01-05T09:29:40Z",
        "lastModifiedDate": "2026-01-05T09:30:00Z",
        "item": ns_lines(amounts, "salesOrder", internal_id),
    }
    if opportunity is not None:
        record["externalId"] = opportunity
    return record


def ns_invoice(
    internal_id: str,
    billing_invoice: str | None,
    *,
    tran_id: str = "INV10023",
    currency: str = "USD",
    amounts: tuple[Decimal, ...] = (Decimal("100.0"),),
    total: Decimal | None = None,
) -> dict[str, Any]:
    subtotal = sum(amounts, Decimal(0))
    record: dict[str, Any] = {
        "links": links("invoice", internal_id),
        "id": internal_id,
        "tranId": tran_id,
        "tranDate": "2026-01-06",
        "dueDate": "2026-02-05",
        "entity": ref("customer", "647", "CUST-00647 Acme GmbH"),
        "createdFrom": ref("salesOrder", "18", "Sales Order #SO1234"),
        "currency": ref("currency", "1", currency),
        "exchangeRate": Decimal("1.0"),
        "postingPeriod": ref("accountingPeriod", "27", "Jan 2026"),
        "terms": ref("term", "2", "Net 30"),
        "subtotal": subtotal,
        "taxTotal": Decimal("0.0"),
        "total": subtotal if total is None else total,
        "amountPaid": Decimal("0.0"),
        "amountRemaining": subtotal if total is None else total,
        "status": {"id": "Open", "refName": "Open"},
        "item": ns_lines(amounts, "invoice", internal_id),
    }
    if billing_invoice is not None:
        record["externalId"] = billing_invoice
    return record


def ns_customer_payment(
    internal_id: str, currency: str, applied: tuple[Decimal, ...]
) -> dict[str, Any]:
    return {
        "links": links("customerPayment", internal_id),
        "id": internal_id,
        "tranId": f"PYMT{internal_id}",
        "tranDate": "2026-01-20",
        "customer": ref("customer", "647", "CUST-00647 Acme GmbH"),
        "currency": ref("currency", "7", currency),
        "payment": sum(applied, Decimal(0)),
        "undepFunds": True,
        "paymentMethod": ref("paymentMethod", "3", "Wire"),
        "apply": {
            "items": [
                {
                    "doc": ref("invoice", str(100 + index), f"INV1002{index}"),
                    "apply": True,
                    "amount": amount,
                    "refNum": f"INV1002{index}",
                    "total": amount,
                    "due": amount,
                    "type": "Invoice",
                }
                for index, amount in enumerate(applied)
            ],
            "totalResults": len(applied),
        },
    }
