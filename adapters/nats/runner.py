"""Running subscribers: the entry points for ``concord subscribe``, ``concord serve``,
``concord replay`` and the API.

Why each subscriber is supervised separately: a target that is down must not stop the
others, and an unexpected error (PostgreSQL restarting, NATS reconnecting) is handled by
starting that subscriber again — nothing unconfirmed was acknowledged, so a restart only
redelivers. Each subscriber first takes a PostgreSQL advisory lock named after it: a second
process running the same subscriber waits as a warm standby instead of breaking the
per-aggregate order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from psycopg_pool import AsyncConnectionPool

from adapters.bootstrap import Connections
from adapters.connectors.hub_reader import ServiceHubReader
from adapters.nats.dead_letters import delivery_counts
from adapters.nats.holds import HoldStore
from adapters.nats.lag import UNKNOWN_LAG, consumer_lag
from adapters.nats.personal import EnvelopeOpener
from adapters.nats.registry import DECLARATIONS, build_specs, check_targets, select
from adapters.nats.replay import Progress, ReplayRequest, ReplayResult, replay
from adapters.nats.spec import SubscriberSpec
from adapters.nats.subjects import Subjects
from adapters.nats.subscriber import Subscriber
from adapters.outbound import LazyHubReader, configured_targets, outbound_connectors
from adapters.postgres.schema import create_schema
from adapters.settings import Settings

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

__all__ = [
    "LagPlan",
    "lock_held",
    "replay_subscriber",
    "run_subscribers",
    "subscriber_lag",
    "subscribers_service",
]

log = logging.getLogger("concord.subscriber")

RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
STANDBY_POLL_S = 2.0
STREAM_POLL_S = 0.25
"""How often a subscriber started before the relay looks for the stream again."""


def _settings(source: Runtime | Settings) -> Settings:
    settings = source if isinstance(source, Settings) else source.settings
    if not settings.database_url or not settings.nats_url:
        raise ValueError(
            "subscribers need CONCORD_DATABASE_URL and CONCORD_NATS_URL "
            "(or run them inside `concord serve`, which starts both)"
        )
    return settings


def _connections(source: Runtime | Settings) -> Connections:
    """The runtime's connections, or (a CLI command without a runtime) ones for settings."""
    return Connections(source) if isinstance(source, Settings) else source.connections


def lock_key(settings: Settings, name: str) -> str:
    return f"concord-subscriber:{settings.schema_name}:{settings.nats_stream}:{name}"


async def wait_for_stream(js: JetStreamContext, settings: Settings, stop: asyncio.Event) -> bool:
    """Wait until the events stream exists; False if ``stop`` came first.

    The subscribers do not create the stream: their identity is consume-only (only the
    relay manages the stream, see :mod:`adapters.nats.identities`), so a subscriber started
    before any relay waits for the relay's first start.
    """
    waiting = False
    while not stop.is_set():
        try:
            await js.stream_info(settings.nats_stream)
            return True
        except NotFoundError:
            if not waiting:
                log.info("waiting for the relay to create stream %s", settings.nats_stream)
                waiting = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STREAM_POLL_S)
    return False


def _create_tables(source: Connections | Settings) -> None:
    """Once per start (``concord subscribe`` may run before any hub created the tables)."""
    connections = Connections(source) if isinstance(source, Settings) else source
    with connections.postgres("subscribers") as conn:
        create_schema(conn, connections.settings.schema_name)


async def run_subscribers(
    source: Runtime | Settings,
    names: Sequence[str] | None,
    stop: asyncio.Event,
    *,
    specs: Mapping[str, SubscriberSpec] | None = None,
) -> None:
    """Run the named subscribers (``None``: every one with a target) until ``stop``.

    ``specs`` replaces the declared ones built from settings (tests, embedding code).
    Connectors of the specs are closed on return.
    """
    settings = _settings(source)
    connections = _connections(source)
    outbound_pool: AsyncConnectionPool[Any] | None = None
    if specs is None:
        # The system connectors' shared budgets and observe-only records use a pool of
        # their own (short statements per call; the subscribers' pool serves the holds).
        outbound_pool = connections.postgres_async_pool("outbound", min_size=1, max_size=3)
        await outbound_pool.open()
        reader = (
            LazyHubReader(settings)
            if isinstance(source, Settings)
            else ServiceHubReader(source.hub, source.xref)
        )
        specs = build_specs(
            settings, connectors=outbound_connectors(settings, reader, outbound_pool)
        )
    chosen = select(specs, names)
    try:
        if not chosen:
            log.info("no subscriber has a target (set CONCORD_TARGETS); none started")
            await stop.wait()
            return
        await asyncio.to_thread(_create_tables, connections)
        nc = await connections.nats("subscribers")
        pool = connections.postgres_async_pool(
            "subscribers", min_size=1, max_size=2 * len(chosen) + 1
        )
        try:
            await pool.open()
            js = nc.jetstream()
            if not await wait_for_stream(js, settings, stop):
                return
            async with asyncio.TaskGroup() as group:
                for spec in chosen:
                    group.create_task(_supervise(connections, spec, js, pool, stop))
        finally:
            await pool.close()
            with contextlib.suppress(Exception):
                await nc.close()
    finally:
        for spec in specs.values():
            for connector in spec.connectors():
                with contextlib.suppress(Exception):
                    await connector.aclose()
        if outbound_pool is not None:
            await outbound_pool.close()


async def _supervise(
    connections: Connections,
    spec: SubscriberSpec,
    js: JetStreamContext,
    pool: AsyncConnectionPool[Any],
    stop: asyncio.Event,
) -> None:
    settings = connections.settings
    delay = RESTART_DELAY_S
    while not stop.is_set():
        guard: psycopg.AsyncConnection[Any] | None = None
        try:
            guard = await connections.postgres_async(f"subscriber-{spec.name}")
            if not await _lead(guard, lock_key(settings, spec.name), spec.name, stop):
                return
            subscriber = Subscriber(
                spec, js, HoldStore(pool, settings.schema_name, spec.name), settings.nats_stream
            )
            log.info("subscriber %s: running", spec.name)
            await subscriber.run(stop, healthcheck=functools.partial(_alive, guard))
            delay = RESTART_DELAY_S
        except Exception:
            log.exception("subscriber %s failed; restarting in %.0f s", spec.name, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, MAX_RESTART_DELAY_S)
        finally:
            if guard is not None:
                with contextlib.suppress(Exception):
                    await guard.close()


async def _lead(
    conn: psycopg.AsyncConnection[Any], key: str, name: str, stop: asyncio.Event
) -> bool:
    """Take the subscriber's advisory lock (held by this session), or stand by for it."""
    waiting = False
    while not stop.is_set():
        row = await (
            await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
        ).fetchone()
        if row and row[0]:
            return True
        if not waiting:
            log.info("subscriber %s runs elsewhere; standing by", name)
            waiting = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STANDBY_POLL_S)
    return False


async def _alive(conn: psycopg.AsyncConnection[Any]) -> None:
    """Fails when the lock's session is gone: then another instance may have taken over."""
    await conn.execute("SELECT 1")


def subscribers_service(
    source: Runtime | Settings, names: Sequence[str] | None = None
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """``service(stop)`` for :func:`adapters.background.background` (``concord serve``).

    Targets are checked now, so a typo in ``CONCORD_TARGETS`` stops start-up with a clear
    error instead of a background restart loop; connectors are built per (re)start.
    """
    check_targets(_settings(source))
    return functools.partial(run_subscribers, source, names)


# ------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class LagPlan:
    """Which subscribers a lag report covers, and how to tell which of them run.

    Shared by ``GET /v1/subscribers`` (:func:`subscriber_lag`) and ``GET /v1/health``
    (``adapters.health``), which reads the PostgreSQL and NATS halves separately (each under
    its own time limit) but reports the same rows."""

    wanted: list[str]
    configured: frozenset[str]
    keys: dict[str, str]

    @classmethod
    def of(
        cls,
        settings: Settings,
        names: Sequence[str] | None = None,
        specs: Mapping[str, SubscriberSpec] | None = None,
    ) -> LagPlan:
        known = [d.name for d in DECLARATIONS] + [
            n for n in (specs or {}) if n not in {d.name for d in DECLARATIONS}
        ]
        configured = set(specs) if specs is not None else configured_targets(settings)
        wanted = list(names) if names is not None else known
        return cls(wanted, frozenset(configured), {n: lock_key(settings, n) for n in wanted})

    def holds(
        self, conn: psycopg.Connection[Any], schema: str
    ) -> tuple[dict[str, dict[str, int]], dict[str, bool]]:
        """What waits in PostgreSQL per subscriber, and which subscribers hold their lock."""
        return delivery_counts(conn, schema), {n: lock_held(conn, k) for n, k in self.keys.items()}

    async def counters(self, js: JetStreamContext, stream: str) -> dict[str, dict[str, Any]]:
        """Each subscriber's durable consumer counters (one request per subscriber)."""
        return {name: await consumer_lag(js, stream, name) for name in self.wanted}

    def report(
        self,
        counts: Mapping[str, dict[str, int]],
        running: Mapping[str, bool],
        counters: Mapping[str, dict[str, Any]],
    ) -> dict[str, dict[str, Any]]:
        idle = {"dead_letters": 0, "parked": 0, "held_aggregates": 0, "retrying_aggregates": 0}
        return {
            name: {
                "subscriber": name,
                "configured": name in self.configured,
                "running": running[name],
                **(counters.get(name) or UNKNOWN_LAG),
                **counts.get(name, idle),
            }
            for name in self.wanted
        }


async def subscriber_lag(
    source: Runtime | Settings,
    names: Sequence[str] | None = None,
    *,
    specs: Mapping[str, SubscriberSpec] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per subscriber: consumer counters, what waits in PostgreSQL, configured, running."""
    settings = _settings(source)
    plan = LagPlan.of(settings, names, specs)
    if isinstance(source, Settings):  # a CLI command: its own short-lived connections
        # In a thread: the DDL waits for table locks, and a subscriber running on this
        # event loop may hold one in a transaction it can only finish if the loop runs.
        counts, running = await asyncio.to_thread(_own_holds, source, plan)
        nc = await Connections(source).nats("operator")
    else:  # the API: the runtime's pool and NATS connection, no DDL (the tables exist)
        counts, running = await asyncio.to_thread(_pooled_holds, source, plan)
        nc = await source.nats()
    try:
        counters = await plan.counters(nc.jetstream(), settings.nats_stream)
    finally:
        if isinstance(source, Settings):
            await nc.close()
    return plan.report(counts, running, counters)


def _own_holds(
    settings: Settings, plan: LagPlan
) -> tuple[dict[str, dict[str, int]], dict[str, bool]]:
    with Connections(settings).postgres("operator") as conn:
        create_schema(conn, settings.schema_name)
        return plan.holds(conn, settings.schema_name)


def _pooled_holds(
    runtime: Runtime, plan: LagPlan
) -> tuple[dict[str, dict[str, int]], dict[str, bool]]:
    with runtime.connection() as conn:
        return plan.holds(conn, runtime.settings.schema_name)


def lock_held(conn: psycopg.Connection[Any], key: str) -> bool:
    """True if some session holds this advisory lock (probe: take and give it back).

    How any process tells whether a subscriber or the relay runs somewhere: each holds its
    lock for as long as it runs."""
    row = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()
    if row and row[0]:
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
        return False
    return True


async def replay_subscriber(
    source: Runtime | Settings,
    name: str,
    request: ReplayRequest,
    *,
    progress: Progress | None = None,
    specs: Mapping[str, SubscriberSpec] | None = None,
) -> ReplayResult:
    """Replay one subscriber through its connectors (see :mod:`adapters.nats.replay`)."""
    settings = _settings(source)
    specs = build_specs(settings) if specs is None else specs
    (spec,) = select(specs, [name])
    connections = _connections(source)
    nc = await connections.nats("replay")
    pool = connections.postgres_async_pool("replay", min_size=1, max_size=1)
    try:
        await pool.open()
        return await replay(
            nc.jetstream(),
            settings.nats_stream,
            spec,
            Subjects(settings.nats_subject_prefix),
            request,
            progress=progress,
            opener=EnvelopeOpener(pool, settings.schema_name, withhold=not spec.personal_data),
        )
    finally:
        await pool.close()
        await nc.close()
        for connector in spec.connectors():
            with contextlib.suppress(Exception):
                await connector.aclose()
