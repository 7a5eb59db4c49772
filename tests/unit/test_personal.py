"""Which values are sealed, and how they read back: events, nested details, snapshots,
envelopes, command answers and conflict payloads (with an in-memory cipher; the AES-GCM key
store is tested on PostgreSQL in tests/integration/test_erasure.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.postgres.personal_keys import KnownKeys, open_with, seal_with
from hub.application.personal import (
    SEALED,
    WITHHELD,
    PersonalCipher,
    open_envelope,
    open_state,
    open_view,
    paths_of,
    seal_state,
    seal_view,
    withhold,
)
from hub.domain.base import AggregateSnapshot
from hub.domain.customer import (
    ERASED,
    Customer,
    CustomerDetailsChanged,
    CustomerPersonalDataErased,
    CustomerRegistered,
)
from hub.domain.order import OrderPlaced

SUBJECT = UUID("00000000-0000-4000-8000-000000000001")


class Vault(PersonalCipher):
    """Reversible in-memory sealing; ``forget`` plays the erasure."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.erased: set[UUID] = set()

    def seal(self, subject: UUID, value: Any) -> str:
        token = f"{SEALED}{subject}:{len(self.values)}"
        self.values[token] = value
        return token

    def open(self, subject: UUID, token: str) -> Any:
        return ERASED if subject in self.erased else self.values[token]


def test_only_declared_personal_fields_are_sealed_and_nulls_stay() -> None:
    vault = Vault()
    state = {"legal_name": "Ada", "tax_id": None, "currency": "EUR", "web_domain": "a.example"}
    seal_state(vault, SUBJECT, paths_of(CustomerRegistered, state), state)
    assert state["legal_name"].startswith(SEALED) and state["web_domain"].startswith(SEALED)
    assert state["tax_id"] is None and state["currency"] == "EUR"
    open_state(vault, SUBJECT, paths_of(CustomerRegistered, state), state)
    assert state["legal_name"] == "Ada"
    vault.erased.add(SUBJECT)
    seal_state(vault, SUBJECT, ("legal_name",), state)
    open_state(vault, SUBJECT, ("legal_name",), state)
    assert state["legal_name"] == ERASED


def test_nested_details_and_snapshots_have_their_paths() -> None:
    assert "details.billing_address" in CustomerDetailsChanged.personal_fields
    snapshot = {"topic": "hub.domain.customer:Customer", "state": {"display_name": "Ada"}}
    assert "state.display_name" in paths_of(AggregateSnapshot, snapshot)
    assert paths_of(OrderPlaced, {}) == ()
    assert CustomerPersonalDataErased.erases_personal_data
    assert Customer.personal_fields == CustomerRegistered.personal_fields


def test_erased_markers_are_not_sealed_again() -> None:
    vault = Vault()
    state = {"legal_name": ERASED, "display_name": ERASED}
    seal_state(vault, SUBJECT, ("legal_name", "display_name"), state)
    assert state == {"legal_name": ERASED, "display_name": ERASED} and vault.values == {}


def test_a_command_answer_seals_its_state_and_its_event_envelopes() -> None:
    vault = Vault()
    envelope = {
        "type": "CustomerRegistered",
        "aggregate_id": str(SUBJECT),
        "data": {"legal_name": "Ada", "currency": "EUR"},
    }
    view = {"id": str(SUBJECT), "entity": "customer", "state": {"tax_id": "X1"}}
    view["events"] = [envelope]
    seal_view(vault, view)
    text = orjson.dumps(view).decode()
    assert "Ada" not in text and "X1" not in text and "EUR" in text
    open_view(vault, view)
    assert view["state"]["tax_id"] == "X1" and envelope["data"]["legal_name"] == "Ada"
    vault.erased.add(SUBJECT)
    seal_view(vault, view)
    open_envelope(vault, envelope)
    assert envelope["data"]["legal_name"] == ERASED


def test_conflict_payloads_withhold_personal_values_only() -> None:
    payload = {"legal_name": "Ada", "tax_id": None, "currency": "EUR"}
    assert withhold("customer", payload) == {
        "legal_name": WITHHELD,
        "tax_id": None,
        "currency": "EUR",
    }
    assert withhold("order", {"currency": "EUR"}) == {"currency": "EUR"}


def test_aes_gcm_sealing_binds_the_subject_and_reads_erased_without_a_key() -> None:
    key = AESGCM.generate_key(bit_length=256)
    token = seal_with(AESGCM(key), SUBJECT, {"line1": "1 Main St"})
    assert token.startswith(SEALED) and "Main" not in token
    assert KnownKeys({SUBJECT: key}).open(SUBJECT, token) == {"line1": "1 Main St"}
    other = UUID("00000000-0000-4000-8000-000000000002")
    assert open_with(AESGCM(key), other, token) == ERASED  # copied to another customer
    assert open_with(None, SUBJECT, token) == ERASED  # key destroyed
    assert seal_with(AESGCM(key), SUBJECT, "x") != seal_with(AESGCM(key), SUBJECT, "x")
    with pytest.raises(TypeError):
        KnownKeys({}).seal(SUBJECT, "x")
