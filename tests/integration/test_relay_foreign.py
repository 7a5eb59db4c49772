"""The relay does not trust the stream's contents: a message it did not publish (forged by
an identity allowed to publish, or left by anyone) neither moves its position forward (which
skipped every later event) nor back (which re-published a whole store)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import nats
import orjson

from adapters.bootstrap import Runtime
from adapters.nats.relay import Relay
from adapters.settings import Settings
from tests.conftest import run_sync
from tests.integration.commands import new_customer, new_payment
from tests.integration.relay_support import (
    assert_exactly_once_in_order,
    relay_settings,
    stream_messages,
    write_events,
)


def forge(settings: Settings, url: str, entity: str, event_type: str, **headers: str) -> str:
    """Publish a message the relay did not make on the store's subjects; return its id."""
    forged_id = f"forged-{uuid.uuid4()}"
    aggregate_id = str(uuid.uuid4())
    body = orjson.dumps(
        {
            "event_id": forged_id,
            "type": event_type,
            "aggregate": entity,
            "aggregate_id": aggregate_id,
            "version": 1,
            "data": {"amount": {"amount": "1000000.00", "currency": "EUR"}},
        }
    )
    subject = f"{settings.nats_subject_prefix}.v1.{entity}.{event_type}.{aggregate_id}"

    async def publish() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().publish(
                subject, body, headers={"Nats-Msg-Id": forged_id, **headers}
            )
        finally:
            await nc.close()

    run_sync(publish())
    return forged_id


def genuine(messages: list[dict[str, Any]], forged: set[str]) -> list[dict[str, Any]]:
    found = {m["headers"].get("Nats-Msg-Id") for m in messages}
    assert forged <= found, "the forged messages were not in the stream"
    return [m for m in messages if m["headers"].get("Nats-Msg-Id") not in forged]


def test_a_forged_huge_position_skips_no_real_payment(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    settings = relay_settings(runtime, nats_url, stream_name)
    customer = new_customer(runtime)
    new_payment(runtime, customer)
    assert run_sync(Relay(settings).catch_up()) == 2
    forged = forge(
        settings, nats_url, "payment", "PaymentReceived", **{"Concord-Position": "999999999"}
    )
    for _ in range(3):
        new_payment(runtime, customer)
    relay = Relay(settings)
    assert run_sync(relay.catch_up()) == 3  # the payments after the forged message
    assert list(relay.stats.foreign.values()) == [
        next(
            m["subject"]
            for m in stream_messages(nats_url, stream_name)
            if m["headers"].get("Nats-Msg-Id") == forged
        )
    ]
    assert relay.stats.lag["payments"] == 0
    assert_exactly_once_in_order(runtime, genuine(stream_messages(nats_url, stream_name), {forged}))


def test_a_forged_message_without_position_republishes_nothing(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    settings = relay_settings(runtime, nats_url, stream_name)
    expected = write_events(runtime, 4)
    assert run_sync(Relay(settings).catch_up()) == expected
    forged = {
        forge(settings, nats_url, "order", "OrderPlaced"),
        forge(settings, nats_url, "customer", "CustomerRegistered", **{"Concord-Position": "0"}),
    }
    more = write_events(runtime, 1)
    relay = Relay(settings)
    assert run_sync(relay.catch_up()) == more  # not the whole order and customer stores
    assert len(relay.stats.foreign) == 2
    assert_exactly_once_in_order(runtime, genuine(stream_messages(nats_url, stream_name), forged))


def test_a_foreign_message_between_live_publishes_loses_and_repeats_nothing(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    """A message slipping in breaks the relay's expected-sequence chain: its next publish is
    refused, it re-reads the stream, reports the stranger and carries on exactly once."""
    settings = relay_settings(runtime, nats_url, stream_name, relay_batch=2)
    relay = Relay(settings)
    stop = asyncio.Event()
    forged: set[str] = set()

    async def scenario() -> int:
        task = asyncio.create_task(relay.run(stop))
        await asyncio.wait_for(relay.ready.wait(), 30)
        expected = 0
        for round_ in range(3):
            expected += await asyncio.to_thread(write_events, runtime, 2)
            forged.add(
                await asyncio.to_thread(
                    forge,
                    settings,
                    nats_url,
                    "order",
                    "OrderPlaced",
                    **{"Concord-Position": str(10**9 * (round_ + 1))},
                )
            )

        async def settled() -> None:
            while relay.stats.published < expected or len(relay.stats.foreign) < len(forged):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(settled(), 30)
        stop.set()
        await task
        return expected

    expected = run_sync(scenario())
    messages = genuine(stream_messages(nats_url, stream_name), forged)
    assert len(messages) == expected == relay.stats.published
    assert_exactly_once_in_order(runtime, messages)


def test_a_replaced_stream_stops_the_relay_instead_of_guessing(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    """PostgreSQL says events were published, the stream no longer holds them: the relay
    refuses to guess (re-publishing or skipping) and says what to do."""
    import pytest

    from adapters.nats.relay import RelayInterrupted

    settings = relay_settings(runtime, nats_url, stream_name)
    write_events(runtime, 1)
    run_sync(Relay(settings).catch_up())

    async def replace() -> None:
        nc = await nats.connect(nats_url)
        try:
            await nc.jetstream().delete_stream(stream_name)
        finally:
            await nc.close()

    run_sync(replace())
    with pytest.raises(RelayInterrupted, match="concord_relay_published"):
        run_sync(Relay(settings).catch_up())
