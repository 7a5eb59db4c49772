"""What ``GET /v1/health`` reports: PostgreSQL, NATS, the relay's lag and each subscriber.

Why everything is read from PostgreSQL and the stream, never from in-process state: the
relay and the subscribers run once, in the ``concord serve`` parent (or in their own
processes), while API workers may be separate processes. So the relay's lag is the stores'
heads minus its published positions (``concord_relay_published``, written after each
acknowledgement); whether it runs is whether some session holds its advisory lock; a stuck
store is one whose next unpublished event, sized exactly as the relay sizes it, exceeds the
NATS server's ``max_payload``. Subscribers: the same rows as ``GET /v1/subscribers``.

Why it borrows connections: a monitor polls this every few seconds. The PostgreSQL checks
take one connection from the process's pool for one round of queries, and NATS is asked over
the runtime's one operator connection. Each half is bounded (``CONCORD_HEALTH_TIMEOUT_S``),
and they run side by side, so the answer comes within about that time whatever is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from nats.js.errors import NotFoundError
from psycopg import sql

from adapters.nats.relay import Feed, events_after, feeds, outgoing, relay_lock_key, stuck_reason
from adapters.nats.runner import LagPlan, lock_held

if TYPE_CHECKING:
    from adapters.bootstrap import Runtime

__all__ = ["check"]


@dataclass
class _Store:
    feed: Feed
    head: int
    published: int
    next_row: tuple[Any, ...] | None = None


@dataclass
class _Postgres:
    """One round of PostgreSQL reads (``error`` set: PostgreSQL is unreachable)."""

    error: str | None = None
    latency_ms: float | None = None
    stores: list[_Store] = field(default_factory=list)
    relay_running: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    running: dict[str, bool] = field(default_factory=dict)


@dataclass
class _Nats:
    """What NATS answered (``error`` set: NATS is unreachable or did not answer)."""

    error: str | None = None
    connected: bool = False
    server_version: str | None = None
    max_payload: int | None = None
    stream_exists: bool | None = None
    stream_messages: int | None = None
    stream_last_seq: int | None = None
    counters: dict[str, dict[str, Any]] = field(default_factory=dict)


def _why(error: BaseException) -> str:
    """A short reason for the report (type and first line), never a traceback."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def _read_postgres(runtime: Runtime, plan: LagPlan, with_nats: bool, timeout_s: float) -> _Postgres:
    settings = runtime.settings
    schema = settings.schema_name
    try:
        with runtime.connection(timeout_s) as conn:
            started = time.perf_counter()
            conn.execute("SELECT 1")
            result = _Postgres(latency_ms=round((time.perf_counter() - started) * 1000, 3))
            if not with_nats:
                return result
            result.stores = _relay_positions(conn, schema, settings.nats_stream)
            for store in result.stores:
                if store.head > store.published:
                    store.next_row = conn.execute(
                        events_after(schema, store.feed), (store.published, 1)
                    ).fetchone()
            result.relay_running = lock_held(conn, relay_lock_key(settings))
            result.counts, result.running = plan.holds(conn, schema)
            return result
    except Exception as failed:  # any failure means "down"; the reason is reported
        return _Postgres(error=_why(failed))


def _relay_positions(conn: psycopg.Connection[Any], schema: str, stream: str) -> list[_Store]:
    """Every store's head and the relay's published position there, in one round trip."""
    known = feeds()
    ident = sql.Identifier(schema)
    parts = [
        sql.SQL(
            "SELECT {store}, (SELECT max(notification_id) FROM {schema}.{table}), "
            "(SELECT position FROM {schema}.concord_relay_published "
            "WHERE stream = {stream} AND store = {store})"
        ).format(
            store=sql.Literal(feed.store),
            schema=ident,
            table=sql.Identifier(feed.table),
            stream=sql.Literal(stream),
        )
        for feed in known
    ]
    rows = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    by_store = {feed.store: feed for feed in known}
    return [_Store(by_store[row[0]], int(row[1] or 0), int(row[2] or 0)) for row in rows]


async def _ask_nats(runtime: Runtime, plan: LagPlan, result: _Nats, timeout_s: float) -> None:
    client = await runtime.nats(timeout_s)
    if not client.is_connected:
        result.error = "not connected (reconnecting)"
        return
    result.connected = True
    version = client.connected_server_version
    result.server_version = f"{version.major}.{version.minor}.{version.patch}" + (
        f"-{version.dev}" if version.dev else ""
    )
    result.max_payload = client.max_payload
    js = client.jetstream()
    stream = runtime.settings.nats_stream
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        result.stream_exists = False
    else:
        result.stream_exists = True
        result.stream_messages = info.state.messages
        result.stream_last_seq = info.state.last_seq
    result.counters = await plan.counters(js, stream)


async def _read_nats(runtime: Runtime, plan: LagPlan, timeout_s: float) -> _Nats:
    result = _Nats()
    try:
        await asyncio.wait_for(_ask_nats(runtime, plan, result, timeout_s), timeout_s)
    except TimeoutError:
        result.error = (
            f"JetStream did not answer within {timeout_s:g} s"
            if result.connected
            else f"could not connect within {timeout_s:g} s"
        )
    except Exception as failed:
        result.error = _why(failed)
    if result.error is not None:
        result.connected, result.counters = False, {}
    return result


async def check(runtime: Runtime) -> dict[str, Any]:
    """The full report (the shape of ``api.routes.health.Health``)."""
    settings = runtime.settings
    timeout_s = settings.health_timeout_s
    with_nats = bool(settings.nats_url)
    plan = LagPlan.of(settings)

    async def postgres() -> _Postgres:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(_read_postgres, runtime, plan, with_nats, timeout_s), timeout_s
            )
        except TimeoutError:
            return _Postgres(error=f"no answer within {timeout_s:g} s")

    async def nats() -> _Nats | None:
        return await _read_nats(runtime, plan, timeout_s) if with_nats else None

    pg, bus = await asyncio.gather(postgres(), nats())
    return assemble(runtime, plan, pg, bus)


def assemble(runtime: Runtime, plan: LagPlan, pg: _Postgres, bus: _Nats | None) -> dict[str, Any]:
    """Sections and the overall status from what was read."""
    settings = runtime.settings
    max_lag = settings.health_max_lag
    postgres = {
        "status": "down" if pg.error else "ok",
        "latency_ms": pg.latency_ms,
        "error": pg.error,
    }
    relay = _relay_section(pg, bus, max_lag)
    nats = _nats_section(settings.nats_stream, pg, bus)
    subscribers = _subscriber_rows(plan, pg, bus, max_lag)
    down = [
        name for name, section in (("postgres", postgres), ("nats", nats)) if _is(section, "down")
    ]
    degraded = [
        name for name, section in (("nats", nats), ("relay", relay)) if _is(section, "degraded")
    ] + [f"subscriber:{row['subscriber']}" for row in subscribers if row["status"] == "degraded"]
    return {
        "status": "down" if down else "degraded" if degraded else "ok",
        "down": down,
        "degraded": degraded,
        "checks": {
            "postgres": postgres,
            "nats": nats,
            "relay": relay,
            "subscribers": subscribers,
        },
    }


def _is(section: Mapping[str, Any], status: str) -> bool:
    return bool(section["status"] == status)


def _nats_section(stream: str, pg: _Postgres, bus: _Nats | None) -> dict[str, Any]:
    if bus is None:
        return {"status": "off", "connected": False, "stream": stream}
    status = "down" if bus.error else "ok"
    # A missing stream is normal until the relay first starts; once events were published
    # to it, it means the stream was deleted and the relay has not yet re-read it.
    if bus.stream_exists is False and any(s.published for s in pg.stores):
        status = "degraded"
    return {
        "status": status,
        "connected": bus.connected,
        "server_version": bus.server_version,
        "max_payload": bus.max_payload,
        "stream": stream,
        "stream_exists": bus.stream_exists,
        "stream_messages": bus.stream_messages,
        "stream_last_seq": bus.stream_last_seq,
        "error": bus.error,
    }


def _relay_section(pg: _Postgres, bus: _Nats | None, max_lag: int) -> dict[str, Any]:
    if bus is None:
        return {"status": "off", "max_lag": max_lag}
    if pg.error:
        return {"status": "unknown", "max_lag": max_lag, "error": "PostgreSQL is unreachable"}
    stores: list[dict[str, Any]] = []
    for store in pg.stores:
        stuck = None
        if store.next_row is not None and bus.max_payload is not None:
            _, env, _, _, size = outgoing(store.feed, store.next_row)
            if size > bus.max_payload:
                stuck = stuck_reason(env["event_id"], store.next_row[0], size, bus.max_payload)
        stores.append(
            {
                "store": store.feed.store,
                "head": store.head,
                "published": store.published,
                "lag": max(0, store.head - store.published),
                "stuck": stuck,
            }
        )
    lag = sum(s["lag"] for s in stores)
    stuck_stores = {s["store"]: s["stuck"] for s in stores if s["stuck"]}
    return {
        "status": "degraded" if lag > max_lag or stuck_stores else "ok",
        "running": pg.relay_running,
        "lag": lag,
        "max_lag": max_lag,
        "stuck": stuck_stores,
        "stores": stores,
    }


def _subscriber_rows(
    plan: LagPlan, pg: _Postgres, bus: _Nats | None, max_lag: int
) -> list[dict[str, Any]]:
    if bus is None or pg.error:
        return []
    rows = []
    for row in plan.report(pg.counts, pg.running, bus.counters).values():
        pending = (row["num_pending"] or 0) + (row["num_ack_pending"] or 0)
        if not row["configured"]:
            status = "off"
        elif (
            not row["running"] or row["dead_letters"] or row["held_aggregates"] or pending > max_lag
        ):
            status = "degraded"
        else:
            status = "ok"
        rows.append({**row, "status": status, "pending": pending})
    return rows
