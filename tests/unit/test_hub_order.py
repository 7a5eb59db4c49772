"""The hub's order of checks, on in-memory ports (milliseconds, no database).

Order: ownership (auth and scope are the API's) -> idempotent replay -> existence and
``If-Match`` -> the aggregate's rules -> one commit carrying the receipt. Each test sets up
a request that would fail at two steps and asserts that the earlier step answers, and that
nothing after it ran (the fake logs every port call).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from adapters.bootstrap import load_policy
from hub.application.catalogue import build_catalogue
from hub.application.ports import Receipt, ReceiptExists
from hub.application.service import (
    Caller,
    CommandRequest,
    CommandResult,
    Hub,
    IdempotencyMismatch,
    Origin,
    UnknownCommand,
)
from hub.domain.catalog import AGGREGATES
from hub.domain.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    InvalidTransition,
    NotFound,
    OwnershipViolation,
    VersionMismatch,
)
from tests.integration.commands import hub_request
from tests.unit.fakes import InMemoryStorage

CRM = Caller("crm-sync", "crm")
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def storage() -> InMemoryStorage:
    return InMemoryStorage()


@pytest.fixture
def hub(storage: InMemoryStorage) -> Hub:
    return Hub(
        catalogue=build_catalogue(),
        policy=load_policy(None),
        ports=storage.ports(),
        aggregates={cls.entity: cls for cls in AGGREGATES},
        clock=lambda: NOW,
        trace_context=lambda: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def command(hub: Hub, entity: str, name: str, data: dict[str, Any], **kw: Any) -> CommandRequest:
    if "version" in kw:
        kw["expected_version"] = kw.pop("version")
    return hub_request(hub, entity, name, data, **kw)


def register(hub: Hub, **kw: Any) -> CommandResult:
    return hub.execute(command(hub, "customer", "register", {"legal_name": "Acme"}, **kw))


def customer(hub: Hub) -> UUID:
    return UUID(register(hub).body["id"])


def order(hub: Hub, customer_id: UUID) -> UUID:
    data = {
        "customer_id": str(customer_id),
        "lines": [
            {"sku": "PRO", "quantity": "1", "unit_price": "10.00", "charge_type": "one_time"}
        ],
        "currency": "EUR",
        "term_months": 0,
        "start_date": "2026-12-01",
        "booking_date": "2026-12-01",
    }
    return UUID(hub.execute(command(hub, "order", "place", data)).body["id"])


def test_ownership_is_checked_before_a_replay(hub: Hub, storage: InMemoryStorage) -> None:
    """A receipt for the key exists, but the caller's system may not write the field: the
    refusal wins (a replay must not hand out what the caller may no longer write)."""
    cid = customer(hub)
    number = {"customer_number": "C-1"}
    hub.execute(command(hub, "customer", "assign_number", number, aggregate_id=cid, key="k1"))
    storage.calls.clear()
    crm_again = command(
        hub, "customer", "assign_number", number, caller=CRM, aggregate_id=cid, key="k1"
    )
    with pytest.raises(OwnershipViolation) as refused:
        hub.execute(crm_again)
    assert refused.value.field == "customer_number" and refused.value.owner == "erp"
    assert storage.calls == ["record_conflict"]
    assert storage.conflicts[0].client_id == "crm-sync"


def test_replay_comes_before_existence_and_if_match(hub: Hub, storage: InMemoryStorage) -> None:
    cid = customer(hub)
    first = command(
        hub,
        "customer",
        "assign_number",
        {"customer_number": "C-1"},
        aggregate_id=cid,
        key="k",
        version=1,
    )
    original = hub.execute(first)
    storage.calls.clear()
    again = hub.execute(first)  # If-Match 1 is stale now (version 2), yet it replays
    assert again.replayed and again.body == original.body and not again.created
    assert storage.calls == ["find_receipt"]


def test_a_reused_key_with_another_request_is_refused_before_loading(
    hub: Hub, storage: InMemoryStorage
) -> None:
    register(hub, key="k")
    storage.calls.clear()
    other = command(hub, "customer", "register", {"legal_name": "Other"}, key="k")
    with pytest.raises(IdempotencyMismatch):
        hub.execute(other)
    assert storage.calls == ["find_receipt"]


def test_if_match_is_checked_before_the_rules(hub: Hub, storage: InMemoryStorage) -> None:
    oid = order(hub, customer(hub))
    hub.execute(command(hub, "order", "cancel", {"reason": "x"}, aggregate_id=oid))
    storage.calls.clear()
    # Cancelling again breaks a rule (InvalidTransition), but If-Match is stale: 412 first.
    stale = command(hub, "order", "cancel", {"reason": "y"}, aggregate_id=oid, version=1)
    with pytest.raises(VersionMismatch):
        hub.execute(stale)
    assert storage.calls == ["load"]


def test_a_missing_aggregate_is_reported_before_the_rules(
    hub: Hub, storage: InMemoryStorage
) -> None:
    missing = UUID(int=7)
    with pytest.raises(NotFound) as refused:
        hub.execute(command(hub, "order", "cancel", {"reason": "x"}, aggregate_id=missing))
    assert refused.value.field == "id"
    assert "commit" not in storage.calls


def test_a_rule_refusal_commits_nothing_and_is_not_retryable(
    hub: Hub, storage: InMemoryStorage
) -> None:
    oid = order(hub, customer(hub))
    hub.execute(command(hub, "order", "cancel", {"reason": "x"}, aggregate_id=oid))
    storage.calls.clear()
    with pytest.raises(InvalidTransition) as refused:
        hub.execute(command(hub, "order", "cancel", {"reason": "y"}, aggregate_id=oid, key="c"))
    assert not refused.value.retryable
    assert storage.calls == ["find_receipt", "load"]
    assert ("ops", "c") not in storage.receipts
    assert len(storage.events[oid]) == 2


def test_commit_carries_the_receipt_and_the_trace_context(
    hub: Hub, storage: InMemoryStorage
) -> None:
    result = register(hub, key="r")
    assert result.created and not result.replayed
    assert storage.calls == ["find_receipt", "commit"]
    receipt = storage.receipts[("ops", "r")]
    assert receipt.created and receipt.body == result.body
    (event,) = storage.events[UUID(result.body["id"])]
    assert event.traceparent and event.traceparent.startswith("00-0af7")
    assert event.timestamp == NOW


def test_a_concurrent_change_is_retryable(hub: Hub, storage: InMemoryStorage) -> None:
    cid = customer(hub)
    storage.fail_next_commit = ConcurrencyConflict("moved", field="version")
    with pytest.raises(ConcurrencyConflict) as clash:
        hub.execute(
            command(hub, "customer", "assign_number", {"customer_number": "9"}, aggregate_id=cid)
        )
    assert clash.value.retryable


def test_a_clash_on_create_means_the_aggregate_exists(hub: Hub, storage: InMemoryStorage) -> None:
    storage.fail_next_commit = ConcurrencyConflict("moved", field="version")
    with pytest.raises(AlreadyExists):
        register(hub)


def test_a_receipt_taken_meanwhile_answers_as_a_replay(hub: Hub, storage: InMemoryStorage) -> None:
    """Two requests with one key raced: the loser's commit finds the key taken and
    answers with the winner's stored result."""
    request = command(hub, "customer", "register", {"legal_name": "Acme"}, key="same")
    winner = Receipt("ops", "same", request.fingerprint(), True, {"id": "winner", "version": 1})
    original_find = storage.find_receipt
    seen: list[str] = []

    def find_after_the_race(client_id: str, key: str) -> Receipt | None:
        seen.append(key)
        return None if len(seen) == 1 else winner  # first look: not there yet

    storage.find_receipt = find_after_the_race  # type: ignore[method-assign]
    storage.fail_next_commit = ReceiptExists()
    again = hub.execute(request)
    storage.find_receipt = original_find  # type: ignore[method-assign]
    assert again.replayed and again.body == winner.body and again.created
    assert seen == ["same", "same"]


def test_an_unknown_command_touches_no_storage(hub: Hub, storage: InMemoryStorage) -> None:
    with pytest.raises(UnknownCommand):
        hub.spec("order", "teleport")
    assert storage.calls == []


def test_lookup_uses_the_cross_reference(hub: Hub, storage: InMemoryStorage) -> None:
    request = replace(
        command(hub, "customer", "register", {"legal_name": "Acme"}),
        origin=Origin(source_record_id="001ABC"),
    )
    created = UUID(hub.execute(request).body["id"])
    assert hub.lookup("api", "customer", "001ABC") == created
    with pytest.raises(NotFound):
        hub.lookup("api", "customer", "nope")
