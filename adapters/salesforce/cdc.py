"""Reading CDC messages: the body's messages, exact bytes each, and one change per record.

Why the exact bytes of each array element: the inbound log stores what a source sent, and a
release or replay re-translates from it. Re-serialising an element would change numbers
(``125000.00`` → ``125000.0``) and lose the audit trail, so the body is scanned element by
element and each element's own slice of the body is kept. Numbers are read as Decimal,
never float: ``Amount`` is currency (18, 2) and float cannot hold every such value.

Why one change per record: a transaction that touches several records of one object may
send one message naming them all in ``recordIds``; each record is its own aggregate with
its own mirror and its own dependencies (one may wait for its parent, another not), so the
message becomes one source event per record, its event id suffixed with the record id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from adapters.inbound.convert import exact_number, from_epoch_millis, no_constants
from adapters.inbound.source import Malformed, parse_model
from adapters.salesforce.ids import to_18
from adapters.salesforce.schemas import COMPOUND, FIELDS, CdcMessage, ChangeEventHeader

#: Reference fields whose values are record ids (normalised to 18 characters).
REFERENCES = frozenset(
    {"AccountId", "ParentId", "OpportunityId", "Product2Id", "PricebookEntryId", "Pricebook2Id"}
)
WILDCARD = "*"
_DECODER = json.JSONDecoder(parse_float=exact_number, parse_constant=no_constants)
_SPACE = " \t\n\r"


@dataclass(frozen=True)
class Message:
    """One element of the body: where it sits, its exact bytes and its parsed form."""

    where: str
    raw: bytes
    document: dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One record's change as one CDC message reports it."""

    entity: str
    change_type: str
    record_id: str
    """18-character id; a wildcard (``001*``) when the message names no single record."""
    header: ChangeEventHeader
    fields: dict[str, Any]
    """The fields this change reports, flattened (``BillingAddress.City``); ``None`` for a
    field it cleared. CREATE: every non-null field; UPDATE: only the changed ones."""
    replay_id: int
    channel: str

    @property
    def event_id(self) -> str:
        return event_id(self.header, self.record_id)

    @property
    def order(self) -> str:
        """Mirror order key: commit time, then the order within the transaction."""
        return f"{self.header.commit_timestamp:015d}.{self.header.sequence_number:09d}"

    @property
    def occurred_at(self) -> datetime:
        return from_epoch_millis(self.header.commit_timestamp, field="commitTimestamp")

    @property
    def followed(self) -> bool:
        return self.entity in FIELDS

    @property
    def gap(self) -> bool:
        return self.change_type.startswith("GAP_")


def event_id(header: ChangeEventHeader, record_id: str) -> str:
    """``<transactionKey>:<sequenceNumber>:<record id>``, the dedupe key.

    Not ``replayId``: replay ids are per channel, so the same change seen on
    ``/data/ChangeEvents`` and on ``/data/AccountChangeEvent`` (or re-read after the bridge
    switched channels) would count twice. The transaction key and sequence number name the
    change itself, whichever channel carried it."""
    return f"{header.transaction_key}:{header.sequence_number}:{record_id}"


def messages(body: bytes) -> list[Message]:
    """The messages of a body holding one message or a JSON array of them."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("the body is not UTF-8 JSON", "body") from None
    at = _skip(text, 0)
    if at < len(text) and text[at] == "[":
        return _elements(text, at + 1)
    document, end = _decode(text, at, "body")
    if _skip(text, end) != len(text):
        raise Malformed("the body holds more than one JSON value", "body")
    return [Message("body", body, _object(document, "body"))]


def _elements(text: str, at: int) -> list[Message]:
    found: list[Message] = []
    at = _skip(text, at)
    if at < len(text) and text[at] == "]":
        raise Malformed("the body is an empty array: it carries no change event", "body")
    while True:
        where = f"body.{len(found)}"
        document, end = _decode(text, at, where)
        found.append(Message(where, text[at:end].encode(), _object(document, where)))
        at = _skip(text, end)
        if at < len(text) and text[at] == ",":
            at = _skip(text, at + 1)
            continue
        if at < len(text) and text[at] == "]" and _skip(text, at + 1) == len(text):
            return found
        raise Malformed("the body is not a JSON array of messages", where)


def _decode(text: str, at: int, where: str) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, at)
    except json.JSONDecodeError as bad:
        raise Malformed(f"the body is not JSON: {bad.msg} at {bad.pos}", where) from None
    except (ValueError, RecursionError) as bad:  # NaN, a number beyond reason, deep nesting
        raise Malformed(f"the body holds a value no CDC message has: {bad}", where) from None


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def _object(document: Any, where: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise Malformed("expected a CDC message object", where)
    return document


def parse(raw: bytes) -> dict[str, Any]:
    """One logged message again, numbers as Decimal (a release or replay reads this)."""
    return _object(_DECODER.decode(raw.decode("utf-8")), "body")


def changes(document: dict[str, Any], where: str) -> list[Change]:
    """The message's changes, one per record it names (validated: 422 naming the field)."""
    message = parse_model(CdcMessage, document, where)
    header = message.data.payload.header
    at = f"{where}.data.payload"
    fields = _fields(document["data"]["payload"], header, at)
    named = enumerate(header.record_ids)
    record_ids = [_record_id(r, f"{at}.ChangeEventHeader.recordIds.{i}") for i, r in named]
    return [
        Change(
            entity=header.entity_name,
            change_type=header.change_type,
            record_id=record_id,
            header=header,
            fields=fields,
            replay_id=message.data.event.replay_id,
            channel=message.channel,
        )
        for record_id in dict.fromkeys(record_ids or [WILDCARD])
    ]


def change_of(document: dict[str, Any], record_id: str) -> Change:
    """The change for one record of a logged message (the event id names the record)."""
    for change in changes(document, "body"):
        if change.record_id == record_id:
            return change
    raise Malformed(f"the message does not name record {record_id}", "body")


@lru_cache(maxsize=16)
def changes_by_record(raw: bytes) -> dict[str, Change]:
    """Every record's change of one logged message, parsed once: a message naming n records
    is n source events, and re-parsing it for each made a bulk update O(n²)."""
    return {change.record_id: change for change in changes(parse(raw), "body")}


def change_in(raw: bytes, record_id: str) -> Change:
    found = changes_by_record(raw).get(record_id)
    if found is None:
        raise Malformed(f"the message does not name record {record_id}", "body")
    return found


def _record_id(value: str, where: str) -> str:
    if WILDCARD in value:
        return value  # "001*": many records changed, none named
    return reference(value, where)


def reference(value: Any, where: str) -> str:
    try:
        return to_18(value)
    except ValueError as bad:
        raise Malformed(str(bad), where) from None


def _fields(payload: dict[str, Any], header: ChangeEventHeader, where: str) -> dict[str, Any]:
    """The reported fields, flattened, typed-checked and with ids at 18 characters."""
    flat: dict[str, Any] = {}
    for name, value in payload.items():
        if name == "ChangeEventHeader":
            continue
        model = COMPOUND.get(name)
        if model is not None and isinstance(value, dict):
            parse_model(model, value, f"{where}.{name}")
            flat.update({f"{name}.{part}": v for part, v in value.items()})
        else:
            flat[name] = value
    if header.change_type == "UPDATE":
        # Only what changed: fields named changed (or nulled) but absent were set to null;
        # a null that is not named is an unchanged field (Pub/Sub API decodings send those).
        named = [*header.changed_fields, *header.nulled_fields]
        reported = {k: v for k, v in flat.items() if v is not None or k in named}
        reported.update({k: None for k in named if k not in flat})
    else:
        reported = {k: v for k, v in flat.items() if v is not None}
    model = FIELDS.get(header.entity_name)
    if model is not None:
        parse_model(model, {k: v for k, v in reported.items() if "." not in k}, where)
    for name in REFERENCES & reported.keys():
        if reported[name] is not None:
            reported[name] = reference(reported[name], f"{where}.{name}")
    return reported


def jsonable(value: Any) -> Any:
    """Decimals as strings, exactly (the mirror is JSON), at any depth."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
