"""Salesforce CDC messages as a CometD bridge posts them, and signed deliveries of them."""

from __future__ import annotations

import hashlib
import hmac
import itertools
from typing import Any

import httpx
import orjson

from adapters.salesforce import to_18
from tests.e2e.conftest import Api
from tests.e2e.inbound_support import SALESFORCE_SECRET
from tests.e2e.inbound_support import state as state  # re-exported for the tests

#: 2026-01-01T00:00:00Z in epoch milliseconds (CDC commitTimestamp unit).
JAN_1_MS = 1767225600000
_replay = itertools.count(1000)


def sf_id(prefix: str, n: int, tag: str = "Dn") -> str:
    """A 15-character id (``001Dn0000000042``), the form people paste from the UI."""
    body = f"{tag}{n:0{12 - len(tag)}d}"
    return f"{prefix}{body}"


def cdc(
    entity: str,
    change_type: str,
    record_ids: list[str],
    fields: dict[str, Any],
    *,
    at_ms: int,
    tx: str,
    seq: int = 1,
    changed: list[str] | None = None,
    channel: str | None = None,
    origin: str = "com/salesforce/api/soap/62.0;client=SfdcInternalAPI/",
) -> dict[str, Any]:
    """One CDC message: the record's fields plus ``ChangeEventHeader``, in the CometD
    envelope (``{"channel", "data": {"schema", "payload", "event": {"replayId"}}}``)."""
    header: dict[str, Any] = {
        "entityName": entity,
        "recordIds": record_ids,
        "changeType": change_type,
        "changeOrigin": origin,
        "transactionKey": tx,
        "sequenceNumber": seq,
        "commitTimestamp": at_ms,
        "commitNumber": 10_000_000 + at_ms % 1_000_000,
        "commitUser": "005Dn000000USR1",
        "changedFields": changed if changed is not None else [],
    }
    if change_type == "UPDATE" and changed is None:
        header["changedFields"] = [*fields, "LastModifiedDate"]
    payload = {**fields, "ChangeEventHeader": header}
    if change_type in ("CREATE", "UPDATE", "UNDELETE"):
        payload.setdefault("LastModifiedDate", "2026-01-01T00:00:00.000Z")
    return {
        "channel": channel or f"/data/{entity.removesuffix('__c')}ChangeEvent",
        "data": {
            "schema": "IeRuaY6cbI_HsV8Rv1Mc5g",
            "payload": payload,
            "event": {"replayId": next(_replay)},
        },
    }


def update(
    entity: str,
    record: str | list[str],
    fields: dict[str, Any],
    *,
    after_ms: int,
    tx: str,
    changed: list[str] | None = None,
) -> dict[str, Any]:
    """An UPDATE carrying only ``fields`` (``changedFields`` names them unless given),
    committed ``after_ms`` after 2026-01-01."""
    records = [record] if isinstance(record, str) else record
    at = JAN_1_MS + after_ms
    return cdc(entity, "UPDATE", records, fields, at_ms=at, tx=tx, changed=changed)


def account(
    record: str,
    name: str,
    *,
    parent: str | None = None,
    at_ms: int = JAN_1_MS,
    tx: str = "",
    website: str | None = None,
) -> dict[str, Any]:
    """An Account CREATE; its ``Website`` is the name's first word's (``Acme GmbH`` →
    ``acme.example``) unless given: accounts of one web domain match each other."""
    host = "".join(c for c in name.split()[0].lower() if c.isalnum())
    fields: dict[str, Any] = {
        "Name": name,
        "Type": "Customer",
        "Industry": "Manufacturing",
        "Website": website or f"https://www.{host}.example/about",
        "Phone": "+49 30 1234567",
        "BillingAddress": {
            "Street": "Hauptstraße 1\nGebäude B",
            "City": "Berlin",
            "PostalCode": "10115",
            "Country": "Germany",
            "CountryCode": "DE",
        },
        "CurrencyIsoCode": "EUR",
        "OwnerId": "005Dn000000USR1",
        "CreatedDate": "2026-01-01T00:00:00.000Z",
    }
    if parent is not None:
        fields["ParentId"] = parent
    return cdc("Account", "CREATE", [record], fields, at_ms=at_ms, tx=tx or f"tx-{record}")


def product(record: str, code: str, name: str, *, charge: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"Name": name, "ProductCode": code, "IsActive": True}
    if charge is not None:
        fields["SBQQ__ChargeType__c"] = charge
    return cdc("Product2", "CREATE", [record], fields, at_ms=JAN_1_MS - 86_400_000, tx=f"p-{code}")


def opportunity(
    record: str,
    account_id: str,
    *,
    amount: Any,
    currency: str = "EUR",
    at_ms: int = JAN_1_MS + 1000,
    close: str = "2026-03-31",
    term: int | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "AccountId": account_id,
        "Name": "Acme platform deal",
        "StageName": "Negotiation/Review",
        "CloseDate": close,
        "Amount": amount,
        "Probability": 90,
        "IsClosed": False,
        "IsWon": False,
        "CurrencyIsoCode": currency,
        "Pricebook2Id": "01sDn000000PBK1",
        "HasOpportunityLineItem": True,
    }
    if term is not None:
        fields["Term_Months__c"] = term
    return cdc("Opportunity", "CREATE", [record], fields, at_ms=at_ms, tx=f"tx-{record}")


def won(
    record: str, *, at_ms: int = JAN_1_MS + 9000, stage: str = "Closed Won", tx: str = ""
) -> dict[str, Any]:
    """Closed won: the stage (whatever the org calls it) makes ``IsWon`` true."""
    fields = {"StageName": stage, "IsWon": True, "IsClosed": True, "Probability": 100}
    return cdc("Opportunity", "UPDATE", [record], fields, at_ms=at_ms, tx=tx or f"won-{record}")


def line_item(
    record: str,
    opportunity_id: str,
    product_id: str,
    *,
    quantity: Any,
    unit_price: Any,
    total: Any,
    service_date: str | None = "2026-04-01",
    at_ms: int = JAN_1_MS + 2000,
    seq: int = 1,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "OpportunityId": opportunity_id,
        "PricebookEntryId": "01uDn000000PBE1",
        "Product2Id": product_id,
        "Name": "Acme platform deal line",
        "Quantity": quantity,
        "UnitPrice": unit_price,
        "TotalPrice": total,
        "ListPrice": unit_price,
        "SortOrder": seq,
    }
    if service_date is not None:
        fields["ServiceDate"] = service_date
    return cdc(
        "OpportunityLineItem", "CREATE", [record], fields, at_ms=at_ms, tx=f"tx-{record}", seq=seq
    )


def body_of(messages: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    return orjson.dumps(messages)


def signature(body: bytes, secret: str = SALESFORCE_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    api: Api, messages: dict[str, Any] | list[dict[str, Any]] | bytes, sig: str | None = None
) -> httpx.Response:
    """POST as the bridge does: the raw body and ``X-Concord-Signature`` (``""``: none)."""
    body = messages if isinstance(messages, bytes) else body_of(messages)
    headers = {"Content-Type": "application/json"}
    if sig != "":
        headers["X-Concord-Signature"] = signature(body) if sig is None else sig
    return api.http.post("/v1/webhooks/salesforce", content=body, headers=headers)


def lookup(api: Api, entity: str, record: str) -> str | None:
    response = api.get(f"/v1/lookup/crm/{entity}/{to_18(record)}")
    return str(response.json()["id"]) if response.status_code == 200 else None


def statuses(response: httpx.Response) -> list[str]:
    return [r["status"] for r in response.json()["results"]]
