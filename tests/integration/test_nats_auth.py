"""Only Concord writes the record: NATS authenticates every client, only the relay identity
may publish on ``<prefix>.v1.>``, and subscriber identities can consume but not write.

The embedded server here runs with Concord's default configuration (stream
``CONCORD_EVENTS``, prefix ``concord``, no admin identity), as ``concord serve`` starts it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from adapters.embedded import embedded_nats, nats_identities, nats_layout
from adapters.nats.spec import SubscriberSpec
from adapters.nats.subjects import Subjects, stream_config
from adapters.nats.subscriber import consumer_config
from tests.conftest import NatsServer, run_sync
from tests.integration.nats_auth_support import FORGED, STREAM, SUBJECTS, connected, relay_publishes


@pytest.fixture
def default_nats(tmp_path: Path) -> Iterator[str]:
    with embedded_nats(tmp_path) as url:
        yield url


def test_an_unauthenticated_client_cannot_connect_let_alone_publish(
    nats_server: NatsServer, nats_url: str, stream_name: str
) -> None:
    """The forged ``PaymentReceived`` of the issue came from a client without credentials."""
    subject = f"{stream_name.lower()}.v1.payment.PaymentReceived.x"

    async def scenario() -> tuple[str, int]:
        async with connected(nats_url, None) as admin:
            await admin.jetstream().add_stream(
                stream_config(stream_name, Subjects(stream_name.lower()))
            )
        with pytest.raises(nats.errors.Error) as refused:
            async with connected(nats_server.url, None) as anonymous:
                await anonymous.jetstream().publish(subject, b"{}", timeout=2)
        async with connected(nats_url, None) as admin:
            count = (await admin.jetstream().stream_info(stream_name)).state.messages
        return str(refused.value), int(count)

    error, count = run_sync(scenario())
    assert "authorization violation" in error.lower()
    assert count == 0


def test_a_subscriber_identity_cannot_publish_events_or_manage_the_stream(
    default_nats: str, tmp_path: Path
) -> None:
    identities = nats_identities(tmp_path)
    relay, subscriber = identities.credential("relay"), identities.credential("subscriber")
    assert relay is not None and subscriber is not None

    async def scenario() -> tuple[list[Exception], int]:
        assert await relay_publishes(default_nats, relay) == 1
        errors: list[Exception] = []
        async with connected(default_nats, subscriber, errors) as nc:
            js = nc.jetstream()
            with pytest.raises(nats.errors.TimeoutError):  # no PubAck: the server refused
                await js.publish(
                    FORGED, b"{}", headers={"Concord-Position": "999999999"}, timeout=1
                )
            with pytest.raises(nats.errors.TimeoutError):
                await js.delete_stream(STREAM)
            with pytest.raises(nats.errors.TimeoutError):
                await js.add_stream(stream_config("SHADOW", Subjects("shadow")))
            count = (await js.stream_info(STREAM)).state.messages  # reading is allowed
        return errors, int(count)

    errors, count = run_sync(scenario())
    refused = " ".join(str(e).lower() for e in errors)
    assert f'permissions violation for publish to "{FORGED.lower()}"' in refused
    assert "stream.delete" in refused and "stream.create" in refused
    assert count == 1


def test_a_subscriber_identity_consumes_through_its_durable_consumer(
    default_nats: str, tmp_path: Path
) -> None:
    identities = nats_identities(tmp_path)
    relay, subscriber = identities.credential("relay"), identities.credential("subscriber")
    assert relay is not None and subscriber is not None
    spec = SubscriberSpec(name="erp", filter_subjects=(SUBJECTS.all,), handlers={})

    async def scenario() -> tuple[str, int, int]:
        await relay_publishes(default_nats, relay)
        async with connected(default_nats, subscriber) as nc:
            js = nc.jetstream()
            await js.add_consumer(STREAM, consumer_config(spec))
            sub = await js.pull_subscribe_bind(durable="erp", stream=STREAM)
            (msg,) = await sub.fetch(1, timeout=5)
            await msg.ack_sync()
            info = await js.consumer_info(STREAM, "erp")
            direct = await js.get_msg(STREAM, 1, direct=True)
            return msg.subject, int(info.num_ack_pending), int(bool(direct.data))

    subject, unacked, read = run_sync(scenario())
    assert subject.startswith("concord.v1.payment.PaymentReceived.")
    assert unacked == 0
    assert read == 1


def test_generated_credentials_are_private_and_the_config_holds_hashes_only(
    default_nats: str, tmp_path: Path
) -> None:
    layout = nats_layout(tmp_path)
    identities = nats_identities(tmp_path)
    files = sorted(layout.auth_dir.glob("*.json"))
    assert {f.name for f in files} >= {"relay.json", "subscriber.json"}
    assert not (layout.auth_dir / "admin.json").exists()
    for path in [*files, layout.auth_file]:
        if path.name != "scope.json":
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    config = layout.auth_file.read_text()
    for role in ("relay", "subscriber"):
        credential = identities.credential(role)  # type: ignore[arg-type]
        assert credential is not None
        assert credential.password not in config
        assert len(credential.password) >= 40
    assert config.count('"$2b$') == 2
    assert 'include "auth.conf"' in layout.config_file.read_text()
