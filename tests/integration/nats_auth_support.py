"""Connecting to NATS as one identity, and the relay's part, for the NATS auth tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats
import orjson
from nats.aio.client import Client as NatsClient

from adapters.nats.credentials import Credential
from adapters.nats.subjects import Subjects, stream_config
from tests.integration.subscriber_support import envelope

STREAM = "CONCORD_EVENTS"
SUBJECTS = Subjects("concord")
FORGED = "concord.v1.payment.PaymentReceived.00000000-0000-0000-0000-000000000001"


@contextlib.asynccontextmanager
async def connected(
    url: str, credential: Credential | None, errors: list[Exception] | None = None
) -> AsyncIterator[NatsClient]:
    async def collect(error: Exception) -> None:
        if errors is not None:
            errors.append(error)

    options = (
        {} if credential is None else {"user": credential.user, "password": credential.password}
    )
    nc = await nats.connect(
        url, allow_reconnect=False, connect_timeout=5, error_cb=collect, **options
    )
    try:
        yield nc
    finally:
        await nc.close()


async def relay_publishes(url: str, credential: Credential) -> int:
    """The relay identity creates the stream and publishes an event: the stream's count."""
    async with connected(url, credential) as nc:
        js = nc.jetstream()
        await js.add_stream(stream_config(STREAM, SUBJECTS))
        env = envelope("payment", "00000000-0000-0000-0000-000000000002", 1, "PaymentReceived")
        ack = await js.publish(
            SUBJECTS.event("payment", "PaymentReceived", env["aggregate_id"]),
            orjson.dumps(env),
            headers={"Nats-Msg-Id": env["event_id"]},
        )
        assert ack.stream == STREAM
        return int((await js.stream_info(STREAM)).state.messages)
