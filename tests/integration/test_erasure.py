"""Erasure erases: a customer's personal data is sealed with its own key in everything the
hub stores, and after ``erase`` no read path (state, ``as_of``, history, idempotency replay,
conflicts, the receipts table) holds it in clear, while amounts, dates and ids stay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pytest
from psycopg import sql

from adapters.bootstrap import Runtime, open_runtime
from adapters.settings import Settings
from hub.domain.customer import ERASED
from hub.domain.errors import AlreadyExists, OwnershipViolation
from tests.integration.commands import CRM, ERP, new_order, request, run

PERSON = {
    "legal_name": "Ada Lovelace Consulting",
    "display_name": "Ada Lovelace",
    "web_domain": "lovelace.example",
    "tax_id": "GB123456789",
    "billing_address": {"line1": "12 Crescent Road", "city": "Marylebone", "country": "GB"},
}
MOVED = {"line1": "12 Crescent Road", "line2": "Flat 2", "city": "Marylebone", "country": "GB"}
#: Every clear personal value; none may appear in raw storage, and none after erasure.
CLEAR = ["Ada Lovelace", "lovelace.example", "GB123456789", "12 Crescent Road", "Marylebone"]


def clear_values(anything: Any) -> list[str]:
    text = anything if isinstance(anything, str) else orjson.dumps(anything).decode()
    return [value for value in CLEAR if value in text]


def raw(runtime: Runtime, query: str) -> str:
    """Every row of ``query`` (``{}`` = the schema) as text, read straight from PostgreSQL."""
    assert runtime.settings.database_url
    with psycopg.connect(runtime.settings.database_url) as conn:
        rows = conn.execute(
            sql.SQL(query).format(sql.Identifier(runtime.settings.schema_name))
        ).fetchall()
    return " ".join(
        bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview) else str(v)
        for row in rows
        for v in row
    )


def register(runtime: Runtime) -> tuple[UUID, dict[str, Any]]:
    result = run(runtime, "customer", "register", {**PERSON, "currency": "EUR"}, key="reg-1")
    customer = UUID(result.body["id"])
    run(
        runtime,
        "customer",
        "change_details",
        {"display_name": "Ada L. Lovelace", "billing_address": MOVED},
        aggregate_id=customer,
    )
    return customer, result.body


def test_raw_events_snapshots_and_receipts_never_hold_clear_personal_data(
    runtime: Runtime,
) -> None:
    customer, _ = register(runtime)
    runtime.stores["customer"].take_snapshot(customer)
    assert clear_values(raw(runtime, "SELECT state FROM {}.customers_events")) == []
    assert clear_values(raw(runtime, "SELECT state FROM {}.customers_snapshots")) == []
    assert clear_values(raw(runtime, "SELECT body FROM {}.concord_receipts")) == []
    stored = orjson.loads(raw(runtime, "SELECT state FROM {}.customers_events LIMIT 1"))
    assert stored["legal_name"].startswith("pii:v1:")
    assert stored["currency"] == "EUR"  # not personal: stays readable


def test_before_erasure_every_read_path_shows_the_data(runtime: Runtime) -> None:
    customer, created = register(runtime)
    state = runtime.hub.get("customer", customer)["state"]
    assert state["legal_name"] == PERSON["legal_name"]
    assert state["billing_address"]["line1"] == "12 Crescent Road"
    as_of = runtime.hub.get("customer", customer, as_of=datetime.now(UTC))["state"]
    assert as_of["tax_id"] == "GB123456789"
    history = runtime.hub.history("customer", customer)
    assert history[0]["data"]["web_domain"] == "lovelace.example"
    assert history[1]["data"]["details"]["display_name"] == "Ada L. Lovelace"
    replay = runtime.hub.execute(
        request(runtime, "customer", "register", {**PERSON, "currency": "EUR"}, key="reg-1")
    )
    assert replay.replayed and replay.body == created
    runtime.stores["customer"].take_snapshot(customer)
    fresh = open_runtime(runtime.settings)  # another process: keys from the database
    try:
        assert fresh.hub.get("customer", customer)["state"]["display_name"] == "Ada L. Lovelace"
    finally:
        fresh.close()


def test_after_erasure_no_read_path_shows_the_data(runtime: Runtime) -> None:
    customer, _ = register(runtime)
    order = new_order(runtime, customer)
    before = datetime.now(UTC)
    runtime.stores["customer"].take_snapshot(customer)
    run(runtime, "customer", "erase", {}, aggregate_id=customer)

    view = runtime.hub.get("customer", customer)
    assert clear_values(view) == []
    assert view["state"]["legal_name"] == ERASED and view["state"]["erased"] is True
    assert view["state"]["currency"] == "EUR"  # finance data stays
    as_of = runtime.hub.get("customer", customer, as_of=before)
    assert clear_values(as_of) == []
    assert as_of["state"]["legal_name"] == ERASED
    assert as_of["state"]["billing_address"] == ERASED
    history = runtime.hub.history("customer", customer)
    assert clear_values(history) == []
    assert history[0]["data"]["tax_id"] == ERASED
    assert history[0]["data"]["currency"] == "EUR"
    assert history[1]["data"]["details"]["billing_address"] == ERASED
    replay = runtime.hub.execute(
        request(runtime, "customer", "register", {**PERSON, "currency": "EUR"}, key="reg-1")
    )
    assert replay.replayed and replay.created
    assert clear_values(replay.body) == []
    assert replay.body["state"]["legal_name"] == ERASED
    assert replay.body["events"][0]["data"]["web_domain"] == ERASED
    # The order (amounts, dates, ids) is untouched.
    assert runtime.hub.get("order", order)["state"]["customer_id"] == str(customer)
    # The key is gone for every process, not only for this one's cache.
    fresh = open_runtime(runtime.settings)
    try:
        assert clear_values(fresh.hub.get("customer", customer, as_of=before)) == []
        assert clear_values(fresh.hub.history("customer", customer)) == []
    finally:
        fresh.close()
    keys = raw(runtime, "SELECT key, destroyed_at FROM {}.concord_personal_keys")
    assert keys.startswith("None ")


def test_conflict_records_withhold_personal_values(runtime: Runtime) -> None:
    with pytest.raises(OwnershipViolation):
        runtime.hub.execute(request(runtime, "customer", "register", PERSON, caller=CRM))
    (conflict,) = runtime.conflicts.recent()
    assert conflict["field"] == "tax_id"
    assert clear_values(conflict["payload"]) == []
    assert conflict["payload"]["tax_id"] == "[withheld]"  # what was tried stays visible
    assert clear_values(raw(runtime, "SELECT payload FROM {}.concord_conflicts")) == []


def test_an_erased_customers_key_is_not_recreated(
    database_url: str, pg_schema: str, tmp_path: Any
) -> None:
    settings = Settings(database_url=database_url, schema_name=pg_schema, data_dir=tmp_path)
    first = open_runtime(settings)
    try:
        customer, _ = register(first)
        other = open_runtime(settings)  # a second process, with the key cached for writing
        try:
            assert other.hub.get("customer", customer)["state"]["tax_id"] == "GB123456789"
            run(first, "customer", "erase", {}, aggregate_id=customer)
            terms = {"payment_terms": "NET30"}
            run(other, "customer", "set_payment_terms", terms, aggregate_id=customer, caller=ERP)
        finally:
            other.close()
        assert clear_values(first.hub.history("customer", customer)) == []
        keys = raw(first, "SELECT count(*), count(key) FROM {}.concord_personal_keys")
        assert keys == "1 0"
    finally:
        first.close()


def test_a_new_customer_never_takes_over_an_existing_key(runtime: Runtime) -> None:
    """The key is made in memory for a new customer; if the table already holds another
    one for that id (a concurrent create, a tombstone), the commit is refused, not mixed."""
    subject = UUID("00000000-0000-4000-8000-0000000000aa")
    assert runtime.settings.database_url
    with psycopg.connect(runtime.settings.database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.concord_personal_keys (subject_id, key) VALUES (%s, %s)"
            ).format(sql.Identifier(runtime.settings.schema_name)),
            (subject, b"k" * 32),
        )
    with pytest.raises(AlreadyExists):
        run(runtime, "customer", "register", PERSON, aggregate_id=subject)
    assert raw(runtime, "SELECT count(*) FROM {}.customers_events") == "0"
    # A customer whose key is new commits, in the same group as its key.
    other = UUID(run(runtime, "customer", "register", PERSON).body["id"])
    assert runtime.hub.get("customer", other)["state"]["tax_id"] == "GB123456789"


def test_a_batch_seals_a_new_customers_later_lines_with_its_new_key(runtime: Runtime) -> None:
    subject = UUID("00000000-0000-4000-8000-0000000000bb")
    results = runtime.batch(
        [
            request(runtime, "customer", "register", PERSON, aggregate_id=subject),
            request(runtime, "customer", "change_details", {"billing_address": MOVED},
                    aggregate_id=subject),
        ]
    )  # fmt: skip
    assert [getattr(r, "created", r) for r in results] == [True, False]
    assert clear_values(raw(runtime, "SELECT state FROM {}.customers_events")) == []
    fresh = open_runtime(runtime.settings)  # reads the committed key, not a cached one
    try:
        state = fresh.hub.get("customer", subject)["state"]
        assert state["billing_address"]["line2"] == "Flat 2"
        assert state["legal_name"] == PERSON["legal_name"]
    finally:
        fresh.close()
