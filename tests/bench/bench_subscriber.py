"""Subscriber throughput with a no-op target, beside raw nats-py consumption of the same
messages in the same run.

    python -m tests.bench.bench_subscriber [--events 50000] [--aggregates 1000] [--batch 128]
                                           [--http-events 2000]

Publishes ``--events`` envelopes over ``--aggregates`` aggregates to a fresh stream, then
consumes them all three ways, each through its own durable consumer from the start:

* **raw nats-py**: ``fetch(batch)``, parse the JSON, ``ack()`` — the client/server limit;
* **subscriber, no-op target**: ``run_subscribers`` with a connector that only counts (all
  of the framework: parsing, per-aggregate grouping, hold checks, acks, metrics);
* **subscriber, HTTP sandbox target**: the same with ``HttpConnector`` to the sandbox
  target in the same process (``--http-events`` of them): httpx's own CPU cost per request
  dominates this row, so it shows the connector's ceiling on this machine, not the
  framework's.

"events/s after the first" leaves out start-up (tables, connections, advisory lock,
consumer creation), i.e. the steady delivery rate.

PostgreSQL from ``CONCORD_BENCH_DATABASE_URL`` / ``CONCORD_TEST_DATABASE_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``, a scratch schema); NATS as in
``bench_relay`` (a configured server >= 2.12, else the wheel's server).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from contextlib import ExitStack
from typing import Any

import nats
import orjson
from nats.js.api import AckPolicy, ConsumerConfig

from adapters.connectors.http import HttpConnector
from adapters.connectors.port import Connector
from adapters.nats.runner import run_subscribers
from adapters.nats.spec import SubscriberSpec
from adapters.nats.subjects import Subjects, headers_for, stream_config
from adapters.sandbox.target import TargetSystem
from adapters.settings import Settings
from hub.application.views import event_id
from tests.bench.bench_relay import nats_url
from tests.bench.common import database_url, scratch_schema


class Counting(Connector):
    """No-op target: counts deliveries, notes the first one, says when all have arrived."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self.first = 0.0
        self.done = asyncio.Event()

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        self.tick()

    def tick(self) -> None:
        if not self.count:
            self.first = time.perf_counter()
        self.count += 1
        if self.count >= self.total:
            self.done.set()


class CountingHttp(Counting):
    def __init__(self, url: str, total: int) -> None:
        super().__init__(total)
        self.http = HttpConnector(url)

    async def deliver(self, envelope: dict[str, Any], idempotency_key: str) -> None:
        await self.http.deliver(envelope, idempotency_key)
        self.tick()

    async def aclose(self) -> None:
        await self.http.aclose()


async def publish(url: str, stream: str, subjects: Subjects, events: int, aggregates: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(stream_config(stream, subjects))
    ids = [str(uuid.uuid4()) for _ in range(aggregates)]
    versions = dict.fromkeys(ids, 0)
    futures = []
    for i in range(events):
        aggregate_id = ids[i % aggregates]
        versions[aggregate_id] += 1
        version = versions[aggregate_id]
        env = {
            "event_id": event_id(aggregate_id, version),
            "type": "OrderAmended",
            "aggregate": "order",
            "aggregate_id": aggregate_id,
            "version": version,
            "data": {"line": i, "note": "x" * 200},
        }
        futures.append(
            await js.publish_async(
                subjects.event("order", "OrderAmended", aggregate_id),
                orjson.dumps(env),
                headers=headers_for(env, "orders", i + 1),
            )
        )
        if len(futures) >= 1000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)
    await nc.close()


async def raw(
    url: str, stream: str, subjects: Subjects, events: int, batch: int
) -> tuple[float, float]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name="raw",
            ack_policy=AckPolicy.EXPLICIT,
            filter_subject=subjects.all,
            ack_wait=30,
        ),
    )
    sub = await js.pull_subscribe_bind(durable="raw", stream=stream)
    started = time.perf_counter()
    first = 0.0
    seen = 0
    while seen < events:
        for msg in await sub.fetch(batch, timeout=5):
            orjson.loads(msg.data)
            await msg.ack()
            first = first or time.perf_counter()
            seen += 1
    await nc.flush()
    ended = time.perf_counter()
    await nc.close()
    return ended - started, ended - first


async def framework(
    settings: Settings, name: str, connector: Counting, batch: int
) -> tuple[float, float]:
    spec = SubscriberSpec(
        name=name,
        filter_subjects=(Subjects(settings.nats_subject_prefix).all,),
        handlers={"*": connector},
        batch=batch,
        fetch_timeout=0.5,
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(run_subscribers(settings, [name], stop, specs={name: spec}))
    await asyncio.wait_for(connector.done.wait(), 600)
    ended = time.perf_counter()
    stop.set()
    await task
    return ended - started, ended - connector.first


async def main(args: argparse.Namespace) -> None:
    with ExitStack() as stack:
        url = nats_url(stack, "always")
        db = database_url()
        schema = stack.enter_context(scratch_schema(db, "bench_sub"))
        stream = f"BENCH_SUB_{uuid.uuid4().hex[:8].upper()}"
        settings = Settings(
            database_url=db,
            nats_url=url,
            schema_name=schema,
            nats_stream=stream,
            nats_subject_prefix=stream.lower(),
        )
        subjects = Subjects(settings.nats_subject_prefix)
        await publish(url, stream, subjects, args.events, args.aggregates)
        rows = [
            (
                "raw nats-py (fetch, parse, ack)",
                args.events,
                await raw(url, stream, subjects, args.events, args.batch),
            )
        ]
        rows.append(
            (
                "subscriber, no-op target",
                args.events,
                await framework(settings, "noop", Counting(args.events), args.batch),
            )
        )
        if args.http_events:
            target = TargetSystem("bench")
            await target.start()
            try:
                rows.append(
                    (
                        "subscriber, HTTP sandbox target (httpx)",
                        args.http_events,
                        await framework(
                            settings, "http", CountingHttp(target.url, args.http_events), args.batch
                        ),
                    )
                )
            finally:
                await target.stop()
        nc = await nats.connect(url)
        await nc.jetstream().delete_stream(stream)
        await nc.close()
    print(f"\n{args.events:,} events over {args.aggregates:,} aggregates, batch {args.batch}\n")
    print("| consumer | events | seconds (with start-up) | events/s | events/s after the first |")
    print("|---|---:|---:|---:|---:|")
    for label, count, (total, steady) in rows:
        print(
            f"| {label} | {count:,} | {total:.2f} | {count / total:,.0f} | "
            f"{(count - 1) / steady:,.0f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--aggregates", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--http-events",
        type=int,
        default=2_000,
        help="events for the HTTP row (0 skips it); httpx's CPU cost dominates",
    )
    asyncio.run(main(parser.parse_args()))
