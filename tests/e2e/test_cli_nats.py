"""``concord serve`` with the embedded NATS (a stable port, generated identities) and
``concord nats creds create`` (a working consume-only identity for an external system)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from typer.testing import CliRunner

from adapters.embedded import embedded_nats, nats_identities, nats_layout
from adapters.nats.credentials import Credential
from adapters.nats.spec import SubscriberSpec
from adapters.nats.subscriber import consumer_config
from api.cli import app
from tests.conftest import run_sync
from tests.e2e.conftest import TestClient
from tests.integration.nats_auth_support import (
    FORGED,
    STREAM,
    SUBJECTS,
    connected,
    relay_publishes,
)

PASSWORD = re.compile(r"^    ([A-Za-z0-9_-]{40,})$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    """`serve` tunes the collector for serving; in-process here, so put it back after."""
    import gc

    saved = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


@pytest.fixture
def data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("CONCORD_API_KEYS", "CONCORD_DATABASE_URL", "CONCORD_NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONCORD_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_serve_runs_the_embedded_nats_on_a_remembered_port_with_its_identities(
    data: Path, database_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    monkeypatch.setenv("CONCORD_DATABASE_URL", database_url)
    monkeypatch.setenv("CONCORD_SCHEMA", pg_schema)
    seen: list[dict[str, Any]] = []

    def probe(asgi: Any, **options: Any) -> None:
        with TestClient(asgi) as http:
            seen.append(http.get("/v1/health").json())

    monkeypatch.setattr(uvicorn, "run", probe)
    runner = CliRunner()
    outputs = []
    for _ in range(2):
        result = runner.invoke(app, ["serve", "--port", "18931"])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    port = nats_layout(data).port_file.read_text().strip()
    for output in outputs:
        assert re.search(rf"NATS\s+nats://127\.0\.0\.1:{port}\n", output), output
        assert "relay concord-relay, subscribers concord-subscriber" in output
        for role in ("relay", "subscriber"):
            credential = nats_identities(data).credential(role)  # type: ignore[arg-type]
            assert credential is not None and credential.password not in output
    assert [h["status"] for h in seen] == ["ok", "ok"], seen


def _created(output: str) -> str:
    passwords = PASSWORD.findall(output)
    assert len(passwords) == 1, output
    return str(passwords[0])


async def _consume_as(url: str, credential: Credential) -> tuple[str, list[Exception]]:
    """As ``credential``: read through its own consumer, then try what it must not do."""
    errors: list[Exception] = []
    async with connected(url, credential, errors) as nc:
        js = nc.jetstream()
        # As the README shows a system reading the stream (it creates the consumer).
        sub = await js.pull_subscribe(SUBJECTS.all, durable=credential.user, stream=STREAM)
        (msg,) = await sub.fetch(1, timeout=5)
        await msg.ack_sync()
        other = SubscriberSpec(name="erp", filter_subjects=(SUBJECTS.all,), handlers={})
        with pytest.raises(nats.errors.TimeoutError):  # another system's consumer
            await js.add_consumer(STREAM, consumer_config(other), timeout=1)
        with pytest.raises(nats.errors.TimeoutError):  # no PubAck: the server refused
            await js.publish(FORGED, b"{}", timeout=1)
        return msg.subject, errors


async def _when_accepted(url: str, credential: Credential) -> None:
    """A reload is asynchronous: wait (bounded) until the server knows the new user."""
    deadline = time.monotonic() + 10
    while True:
        try:
            async with connected(url, credential):
                return
        except nats.errors.Error:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def _assert_consume_only(url: str, data: Path, name: str, password: str) -> None:
    relay = nats_identities(data).credential("relay")
    assert relay is not None
    credential = Credential(name, password)

    async def scenario() -> tuple[str, list[Exception]]:
        await relay_publishes(url, relay)
        await _when_accepted(url, credential)
        return await _consume_as(url, credential)

    subject, errors = run_sync(scenario())
    assert subject.startswith("concord.v1.payment.PaymentReceived.")
    refused = " ".join(str(e).lower() for e in errors)
    assert f'permissions violation for publish to "{FORGED.lower()}"' in refused
    assert 'create.concord_events.erp"' in refused


def test_creds_create_makes_a_consume_only_identity_a_running_nats_accepts(
    data: Path,
) -> None:
    with embedded_nats(data) as url:
        result = CliRunner().invoke(app, ["nats", "creds", "create", "--name", "ledger"])
        assert result.exit_code == 0, result.output
        assert "reloaded its users" in result.output
        assert "consumer add CONCORD_EVENTS ledger" in result.output
        password = _created(result.output)
        assert password not in (nats_layout(data).auth_dir / "external" / "ledger.json").read_text()
        _assert_consume_only(url, data, "ledger", password)


def test_creds_created_before_the_server_starts_work_from_its_next_start(data: Path) -> None:
    result = CliRunner().invoke(
        app, ["nats", "creds", "create", "--name", "warehouse", "--data-dir", str(data)]
    )
    assert result.exit_code == 0, result.output
    assert "from its next start" in result.output
    password = _created(result.output)
    with embedded_nats(data) as url:
        _assert_consume_only(url, data, "warehouse", password)


@pytest.mark.parametrize("name", ["bad.name", "concord-relay", "a*"])
def test_creds_create_refuses_names_that_cannot_be_a_consumer_or_are_taken(
    data: Path, name: str
) -> None:
    result = CliRunner().invoke(app, ["nats", "creds", "create", "--name", name])
    assert result.exit_code == 1
    assert "error:" in result.output


def test_creds_create_refuses_a_second_identity_of_the_same_name(data: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["nats", "creds", "create", "--name", "ledger"]).exit_code == 0
    again = runner.invoke(app, ["nats", "creds", "create", "--name", "ledger"])
    assert again.exit_code == 1
    assert "already a NATS identity" in again.output
