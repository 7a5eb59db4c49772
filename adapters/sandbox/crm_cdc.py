"""Change Data Capture messages as the CRM sandbox publishes them to Concord.

Why its own module: the message shape is a contract with Concord's inbound side
(adapters/salesforce/cdc.py parses it). A CREATE carries every non-null field, an UPDATE
only the changed ones (named in ``changedFields``, cleared ones in ``nulledFields``), the
billing address as the compound ``BillingAddress`` (``BillingAddress.City`` in
``changedFields``), wrapped in the CometD envelope a bridge forwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Change", "message"]

_ADDRESS = {
    "BillingStreet": "Street",
    "BillingCity": "City",
    "BillingState": "State",
    "BillingStateCode": "StateCode",
    "BillingPostalCode": "PostalCode",
    "BillingCountry": "Country",
    "BillingCountryCode": "CountryCode",
}
_NOT_SENT = frozenset({"Id", "SystemModstamp", "IsDeleted"})
_SCHEMA_IDS = {
    "Account": "IeRuaY6cbI_HsV8Rv1Mc5g",
    "Opportunity": "Kmv1gHnJoC8xh1FrTFLz8Q",
    "OpportunityLineItem": "5fKdcZkJ4bqHbQ5rmUNfgA",
    "Product2": "tY2u3m0V2t4j6vJ8bqkQ1w",
    "PricebookEntry": "W9dC0x3Nfz6m5bQpZa2e7g",
}


@dataclass
class Change:
    """One record's change within a transaction (merged when a record changes twice)."""

    entity: str
    change_type: str
    record_id: str
    values: dict[str, Any]
    changed: list[str] = field(default_factory=list)


def message(
    change: Change,
    *,
    transaction_key: str,
    sequence: int,
    commit_ms: int,
    origin: str,
    replay_id: int,
    commit_user: str,
) -> dict[str, Any]:
    """The CometD message of one change."""
    payload: dict[str, Any] = {}
    changed: list[str] = []
    nulled: list[str] = []
    if change.change_type == "CREATE":
        names = [n for n, v in change.values.items() if v is not None]
    elif change.change_type == "UPDATE":
        names = [*dict.fromkeys([*change.changed, "LastModifiedDate"])]
    else:
        names = []
    for name in names:
        if name in _NOT_SENT:
            continue
        value = change.values.get(name)
        part = _ADDRESS.get(name)
        if part is not None:
            payload.setdefault("BillingAddress", {})[part] = value
            shown = f"BillingAddress.{part}"
        else:
            payload[name] = value
            shown = name
        if change.change_type == "UPDATE":
            changed.append(shown)
            if value is None:
                nulled.append(shown)
    header: dict[str, Any] = {
        "entityName": change.entity,
        "recordIds": [change.record_id],
        "changeType": change.change_type,
        "changeOrigin": origin,
        "transactionKey": transaction_key,
        "sequenceNumber": sequence,
        "commitTimestamp": commit_ms,
        "commitNumber": 10_000_000_000 + replay_id,
        "commitUser": commit_user,
        "changedFields": changed,
        "nulledFields": nulled,
        "diffFields": [],
    }
    return {
        "channel": f"/data/{change.entity}ChangeEvent",
        "data": {
            "schema": _SCHEMA_IDS.get(change.entity, "sandboxSchemaId0000000"),
            "payload": {**payload, "ChangeEventHeader": header},
            "event": {"replayId": replay_id},
        },
    }
