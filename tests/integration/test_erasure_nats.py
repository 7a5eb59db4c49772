"""Erasure on the bus: the relay publishes personal fields sealed (never in clear), dead
letters and parked envelopes hold them sealed, Concord's subscriber opens them for its target
just before the call (``[erased]`` after the erasure), and the erasure event reaches the
target at once even while the customer is held behind a dead letter."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import orjson
import psycopg

from adapters.bootstrap import Runtime
from adapters.connectors.port import Connector, PermanentDeliveryError
from adapters.nats.dead_letters import list_dead_letters, request_retry
from adapters.nats.relay import Relay
from adapters.nats.spec import SubscriberSpec
from adapters.nats.subjects import Subjects
from adapters.settings import Settings
from hub.domain.customer import ERASED
from tests.conftest import run_sync
from tests.integration.commands import run
from tests.integration.relay_support import relay_settings, stream_messages
from tests.integration.subscriber_support import db_rows, running, wait_rows, wait_until
from tests.integration.test_erasure import CLEAR, MOVED, PERSON, clear_values

OTHER = "Grace Hopper Associates"


class Recorder(Connector):
    """The target: keeps every envelope it is given; refuses some (aggregate, version)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.refused: set[tuple[str, int]] = set()

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        if (envelope["aggregate_id"], envelope["version"]) in self.refused:
            raise PermanentDeliveryError("refused by the test")
        self.received.append(envelope)

    def of(self, aggregate_id: UUID) -> list[dict[str, Any]]:
        return [e for e in self.received if e["aggregate_id"] == str(aggregate_id)]


def spec(settings: Settings, connector: Connector, **extra: Any) -> SubscriberSpec:
    return SubscriberSpec(
        name="erp",
        filter_subjects=(Subjects(settings.nats_subject_prefix).all,),
        handlers={"*": connector},
        max_deliver=4,
        backoff=(0.05, 0.1, 0.2),
        ack_wait=5.0,
        fetch_timeout=0.2,
        control_interval=0.1,
        **extra,
    )


def stored(settings: Settings, query: str) -> str:
    return " ".join(orjson.dumps(row[0]).decode() for row in db_rows(settings, query))


def test_the_stream_dead_letters_and_parked_events_never_hold_personal_data_in_clear(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    settings = relay_settings(runtime, nats_url, stream_name)
    target = Recorder()

    def customer(data: dict[str, Any]) -> UUID:
        return UUID(run(runtime, "customer", "register", data).body["id"])

    async def main() -> None:
        held = await asyncio.to_thread(customer, {**PERSON, "currency": "EUR"})
        await asyncio.to_thread(
            run, runtime, "customer", "change_details", {"billing_address": MOVED},
            aggregate_id=held,
        )  # fmt: skip
        other = await asyncio.to_thread(customer, {"legal_name": OTHER})
        target.refused.add((str(held), 1))
        await Relay(settings).catch_up()
        published = stream_messages(nats_url, stream_name)
        assert len(published) == 3
        assert clear_values(published) == [] and OTHER not in orjson.dumps(published).decode()
        assert published[0]["envelope"]["data"]["legal_name"].startswith("pii:v1:")
        assert published[0]["envelope"]["data"]["currency"] == "EUR"

        async with running(settings, spec(settings, target)):
            # Before the erasure the target gets the clear values, opened for it.
            await wait_until("the other customer delivered", lambda: target.of(other))
            assert target.of(other)[0]["data"]["legal_name"] == OTHER
            await wait_rows(
                settings,
                "the held customer parked behind its dead letter",
                "SELECT version FROM concord_parked",
                until=lambda rows: rows == [(2,)],
            )
            letters = stored(settings, "SELECT envelope FROM concord_dead_letters")
            parked = stored(settings, "SELECT envelope FROM concord_parked")
            assert "pii:v1:" in letters and "pii:v1:" in parked
            assert clear_values(letters) == [] and clear_values(parked) == []

            await asyncio.to_thread(run, runtime, "customer", "erase", {}, aggregate_id=held)
            await Relay(settings).catch_up()
            # The erasure does not wait behind the dead letter of version 1.
            await wait_until("the erasure delivered past the hold", lambda: target.of(held))
            assert [e["type"] for e in target.of(held)] == ["CustomerPersonalDataErased"]
            assert db_rows(settings, "SELECT version FROM concord_parked") == [(2,)]
            assert db_rows(settings, "SELECT status FROM concord_dead_letters") == [("dead",)]

            # Released after the erasure: the held events reach the target erased.
            assert settings.database_url
            target.refused.clear()
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                (letter,) = list_dead_letters(conn, settings.schema_name)
                request_retry(conn, settings.schema_name, letter["id"], actor="test")
            await wait_until("the held events released", lambda: len(target.of(held)) == 3)
        versions = [e["version"] for e in target.of(held)]
        assert versions == [3, 1, 2]
        registered, changed = target.of(held)[1], target.of(held)[2]
        assert registered["data"]["legal_name"] == ERASED
        assert registered["data"]["tax_id"] == ERASED
        assert changed["data"]["details"]["billing_address"] == ERASED
        assert registered["data"]["currency"] == "EUR"  # finance data stays
        assert clear_values(target.received) == []
        assert clear_values(stream_messages(nats_url, stream_name)) == []
        assert all(value not in str(target.received) for value in CLEAR)

    run_sync(main())


def test_a_target_that_does_not_need_personal_data_gets_it_withheld(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    settings = relay_settings(runtime, nats_url, stream_name)
    target = Recorder()

    async def main() -> None:
        result = await asyncio.to_thread(
            run, runtime, "customer", "register", {**PERSON, "currency": "EUR"}
        )
        await Relay(settings).catch_up()
        async with running(settings, spec(settings, target, personal_data=False)):
            await wait_until("the customer delivered", lambda: target.received)
        (delivered,) = target.received
        assert delivered["aggregate_id"] == result.body["id"]
        assert delivered["data"]["legal_name"] == "[withheld]"
        assert delivered["data"]["billing_address"] == "[withheld]"
        assert delivered["data"]["currency"] == "EUR"
        assert clear_values(target.received) == []

    run_sync(main())


class Echoing(Connector):
    """A target that answers as many do: refusing the event and quoting what it was sent."""

    def __init__(self, transient: bool = False) -> None:
        self.transient = transient

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        data = envelope["data"]
        quoted = f"{data.get('legal_name')!r} at {data.get('billing_address')!r} refused"
        raise PermanentDeliveryError(f"http://127.0.0.1:9/customers answered 422: {quoted}")


def test_a_target_error_quoting_personal_values_is_stored_without_them(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    """The dead letter's error text is the target's answer, which may quote the opened
    values; stored as it came, it would keep them in clear in PostgreSQL past the erasure.
    The opened values are withheld from it; the rest of the answer stays."""
    settings = relay_settings(runtime, nats_url, stream_name)

    async def main() -> None:
        await asyncio.to_thread(run, runtime, "customer", "register", dict(PERSON))
        await Relay(settings).catch_up()
        async with running(settings, spec(settings, Echoing())):
            await wait_rows(
                settings,
                "the refused event dead-lettered",
                "SELECT status FROM concord_dead_letters",
                until=lambda rows: rows == [("dead",)],
            )
        error = stored(settings, "SELECT error FROM concord_dead_letters")
        assert "answered 422" in error and "[withheld]" in error
        assert clear_values(error) == [], error

    run_sync(main())
