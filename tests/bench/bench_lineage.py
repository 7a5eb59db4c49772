"""``GET /v1/lineage/{external id}`` latency with a million stored events, beside the raw
SQL of the same lookup.

python -m tests.bench.bench_lineage [--customers 250000] [--requests 2000]

Each customer has four events (registered, ERP number assigned, payment terms set twice), so
the default stores 1,000,000 events through the library's ``save()``; the lineage view is
built by the real runner; then the hub (its own process) answers ``--requests`` lookups by
random ERP customer numbers, one connection, sequentially. The raw limit: the two queries
of the same lookup (the id, then the object's events) straight through psycopg.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid

import psycopg
from psycopg import sql

from adapters.bootstrap import Connections
from adapters.postgres.stores import store_class
from adapters.projections.runner import ProjectionRunner
from adapters.settings import Settings
from hub.domain.customer import Customer
from projections.lineage.projection import Lineage
from tests.bench.common import (
    Connection,
    database_url,
    hub_server,
    percentiles,
    scratch_schema,
    stamp,
    temp_dir,
)

SAVE = 1000


def fill(settings: Settings, customers: int) -> None:
    url = settings.database_url
    assert url
    store = store_class(Customer)(env=settings.postgres_env(url))
    try:
        for start in range(0, customers, SAVE):
            batch = []
            for i in range(start, min(start + SAVE, customers)):
                customer = Customer.register(stamp(), uuid.uuid4(), legal_name=f"Lineage {i}")
                customer.assign_number(stamp(), f"C-{i:07d}")
                customer.set_payment_terms(stamp(), "NET30")
                customer.set_payment_terms(stamp(), "NET45")
                batch.append(customer)
            store.save(*batch)
            done = min(start + SAVE, customers)
            if (start // SAVE) % 25 == 0 or done == customers:
                print(f"  stored {done * 4:,} / {customers * 4:,} events", flush=True)
    finally:
        store.close()


def raw_lookups(url: str, schema: str, numbers: list[str]) -> list[float]:
    ids = sql.Identifier(schema, "lineage_ids")
    events = sql.Identifier(schema, "lineage_events")
    find = sql.SQL("SELECT kind, object_id FROM {} WHERE external_id = %s").format(ids)
    history = sql.SQL("SELECT * FROM {} WHERE object_id = %s ORDER BY recorded_at").format(events)
    samples = []
    with psycopg.connect(url, autocommit=True) as conn:
        for number in numbers:
            start = time.perf_counter()
            row = conn.execute(find, (number,)).fetchone()
            assert row is not None, number
            conn.execute(history, (row[1],)).fetchall()
            samples.append(time.perf_counter() - start)
    return samples


async def api_lookups(port: int, key: str, numbers: list[str]) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    conn = await Connection.open(port)
    samples = []
    try:
        for number in numbers:
            start = time.perf_counter()
            status, body = await conn.request("GET", f"/v1/lineage/{number}", b"", headers)
            samples.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"lookup of {number} answered {status}: {body[:300]!r}")
    finally:
        conn.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=250_000)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    url = database_url()
    rng = random.Random(7)
    numbers = [f"C-{rng.randrange(args.customers):07d}" for _ in range(args.requests)]
    with scratch_schema(url, "bench_lineage") as schema:
        settings = Settings(database_url=url, schema_name=schema)
        print(f"storing {args.customers * 4:,} events")
        fill(settings, args.customers)
        print("building the lineage view")
        start = time.perf_counter()
        ProjectionRunner(Lineage(), Connections(settings), schema).catch_up()
        built = time.perf_counter() - start
        print(f"  built in {built:.0f} s ({args.customers * 4 / built:,.0f} events/s)")
        raw = raw_lookups(url, schema, numbers)
        with hub_server(url, schema, temp_dir()) as (port, key):
            asyncio.run(api_lookups(port, key, numbers[:50]))  # warm-up
            api = asyncio.run(api_lookups(port, key, numbers))
    raw50, raw99 = percentiles(raw)
    api50, api99 = percentiles(api)
    print()
    print("| benchmark | Concord | raw limit, same run | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| `GET /v1/lineage/{{ERP customer number}}`, {args.customers * 4:,} stored events, "
        f"{args.requests:,} sequential lookups | p50 {api50:.1f} ms, p99 {api99:.1f} ms | "
        f"the same two queries over psycopg: p50 {raw50:.2f} ms, p99 {raw99:.2f} ms | "
        f"{api99 / raw99:.1f}x at p99 |"
    )


if __name__ == "__main__":
    main()
