"""Helpers for the subscriber tests: settings on the test's own schema and stream, publishing
envelopes straight to the stream (no relay needed), fast specs, bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import nats
import orjson
import psycopg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from adapters.connectors.http import HttpConnector
from adapters.connectors.port import Connector
from adapters.nats.runner import run_subscribers
from adapters.nats.spec import SubscriberSpec
from adapters.nats.subjects import Subjects, headers_for, stream_config
from adapters.sandbox.target import TargetSystem
from adapters.settings import Settings
from hub.application.views import event_id

WAIT_S = 20.0


def make_settings(database_url: str, nats_url: str, schema: str, stream: str) -> Settings:
    return Settings(
        database_url=database_url,
        nats_url=nats_url,
        schema_name=schema,
        nats_stream=stream,
        nats_subject_prefix=stream.lower(),
    )


def envelope(aggregate: str, aggregate_id: str, version: int, event_type: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "envelope_version": 1,
        "event_id": event_id(aggregate_id, version),
        "type": event_type,
        "schema_version": 1,
        "aggregate": aggregate,
        "aggregate_id": aggregate_id,
        "version": version,
        "recorded_at": now,
        "occurred_at": now,
        "provenance": {"source_system": "test"},
        "data": {"n": version},
    }


class Stream:
    """The test's stream plus a publisher of envelopes (like the relay would)."""

    def __init__(self, nc: NatsClient, settings: Settings) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.settings = settings
        self.subjects = Subjects(settings.nats_subject_prefix)

    async def create(self) -> None:
        await self.js.add_stream(stream_config(self.settings.nats_stream, self.subjects))

    async def publish(
        self, aggregate: str, aggregate_id: str, version: int, event_type: str | None = None
    ) -> int:
        kind = event_type or f"{aggregate.capitalize()}Changed"
        env = envelope(aggregate, aggregate_id, version, kind)
        ack = await self.js.publish(
            self.subjects.event(aggregate, kind, aggregate_id),
            orjson.dumps(env),
            headers=headers_for(env, f"{aggregate}s", version),
            stream=self.settings.nats_stream,
        )
        return int(ack.seq)

    async def publish_raw(self, subject_tail: str, data: bytes) -> int:
        ack = await self.js.publish(
            f"{self.subjects.root}.{subject_tail}", data, stream=self.settings.nats_stream
        )
        return int(ack.seq)


@contextlib.asynccontextmanager
async def stream_and_target(settings: Settings) -> AsyncIterator[tuple[Stream, TargetSystem]]:
    assert settings.nats_url
    nc = await nats.connect(settings.nats_url, connect_timeout=5, max_reconnect_attempts=0)
    stream = Stream(nc, settings)
    await stream.create()
    target = TargetSystem("erp")
    await target.start()
    try:
        yield stream, target
    finally:
        await target.stop()
        await nc.close()


def fast_spec(name: str, connector: Connector, stream: Stream, **overrides: Any) -> SubscriberSpec:
    """Millisecond backoffs and short waits so each test runs in about a second."""
    values: dict[str, Any] = {
        "name": name,
        "filter_subjects": (stream.subjects.all,),
        "handlers": {"*": connector},
        "max_deliver": 4,
        "backoff": (0.05, 0.1, 0.2),
        "ack_wait": 5.0,
        "fetch_timeout": 0.2,
        "control_interval": 0.1,
    }
    values.update(overrides)
    return SubscriberSpec(**values)


def http_spec(name: str, target: TargetSystem, stream: Stream, **overrides: Any) -> SubscriberSpec:
    return fast_spec(name, HttpConnector(target.url, timeout=2.0), stream, **overrides)


@contextlib.asynccontextmanager
async def running(settings: Settings, *specs: SubscriberSpec) -> AsyncIterator[asyncio.Task[None]]:
    """Run subscribers; stop them cleanly at the end (unless the test cancelled them)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_subscribers(settings, None, stop, specs={s.name: s for s in specs})
    )
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT_S)


async def wait_until(what: str, predicate: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """Poll ``predicate`` until it is truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def db_rows(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {settings.schema_name}")
        return conn.execute(query, params).fetchall()


async def wait_rows(
    settings: Settings,
    what: str,
    query: str,
    *params: Any,
    until: Callable[[list[tuple[Any, ...]]], bool],
) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            rows = await asyncio.to_thread(db_rows, settings, query, *params)
        except psycopg.errors.UndefinedTable:
            rows = []
        if until(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {rows}")
        await asyncio.sleep(0.05)


def new_id() -> str:
    return str(uuid.uuid4())
