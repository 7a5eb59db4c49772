"""A CDC message naming many records is parsed once, not once per record (it was O(n²))."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from adapters.inbound.source import Malformed
from adapters.salesforce import cdc
from adapters.salesforce.ids import to_18


def message(ids: list[str]) -> bytes:
    header = {
        "entityName": "Account",
        "changeType": "UPDATE",
        "changedFields": ["Name"],
        "recordIds": ids,
        "commitTimestamp": 1767225600000,
        "transactionKey": "0002a-bulk",
        "sequenceNumber": 1,
        "commitNumber": 1,
        "commitUser": "005Dn000001AbCd",
        "changeOrigin": "",
    }
    return orjson.dumps(
        {
            "channel": "/data/AccountChangeEvent",
            "data": {
                "schema": "s",
                "payload": {"Name": "Bulk", "ChangeEventHeader": header},
                "event": {"replayId": 7},
            },
        }
    )


def test_every_record_of_a_bulk_message_from_one_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [to_18(f"001Dn{n:010d}") for n in range(50)]
    raw = message(ids)
    calls: list[bytes] = []
    original = cdc.parse

    def counting(body: bytes) -> dict[str, Any]:
        calls.append(body)
        return original(body)

    monkeypatch.setattr(cdc, "parse", counting)
    cdc.changes_by_record.cache_clear()
    found = [cdc.change_in(raw, record) for record in ids]
    assert [c.record_id for c in found] == ids
    assert all(c.fields.get("Name") == "Bulk" for c in found)
    assert len(calls) == 1
    with pytest.raises(Malformed):
        cdc.change_in(raw, to_18("001Dn9999999999"))
