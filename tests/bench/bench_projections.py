"""Projection rebuild rate and live lag, beside raw batched inserts of the same rows.

python -m tests.bench.bench_projections [--events 500000] [--lag-rate 1000] [--lag-seconds 20]

* **Rebuild**: ``--events`` customers are stored through the library's ``save()`` (1,000 per
  save), the ERP customers view (``erp``) is built, then rebuilt through the real path (shadow
  tables from position 0, then the swap): events/s of the rebuild. The raw limit: the very
  rows of the view inserted into a copy of its table with ``executemany``, 500 rows per
  transaction (the runner's batch), in the same run.
* **Live lag**: a writer commits ``--lag-rate`` events/s (10 saves of rate/100 every 10 ms)
  while the runner follows live; the lag of an event is the time from its ``save()``
  returning to the commit of the batch that applied it.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from adapters.bootstrap import Connections
from adapters.postgres.stores import store_class
from adapters.projections.runner import ProjectionRunner
from adapters.projections.status import request_rebuild
from adapters.settings import Settings
from hub.domain.customer import Customer
from projections.definition import Envelope, Position, ViewCursor
from projections.erp.customers import ErpCustomers
from tests.bench.common import database_url, percentiles, scratch_schema, stamp

SAVE = 1000
BATCH = 500
JSON_OIDS = {114, 3802}  # json, jsonb


def fill(store: Any, total: int, prefix: str) -> list[uuid.UUID]:
    ids = []
    for start in range(0, total, SAVE):
        batch = [
            Customer.register(stamp(), uuid.uuid4(), legal_name=f"{prefix} {start + i}")
            for i in range(min(SAVE, total - start))
        ]
        store.save(*batch)
        ids += [c.id for c in batch]
        if (start // SAVE) % 50 == 0 or start + SAVE >= total:
            print(f"  stored {min(start + SAVE, total):,} / {total:,} events", flush=True)
    return ids


def raw_insert_rate(url: str, schema: str, tables: list[str]) -> tuple[int, float]:
    """The view's own rows into empty copies of its tables, ``BATCH`` rows per transaction
    (table after table): (rows, rows/s)."""
    with psycopg.connect(url) as conn:
        batches = []
        for table in tables:
            view = sql.Identifier(schema, table)
            copy = sql.Identifier(schema, f"raw__{table}")
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(copy, view))
            rows = _adaptable(conn.execute(sql.SQL("SELECT * FROM {}").format(view)))
            if rows:
                marks = ", ".join(["%s"] * len(rows[0]))
                insert = sql.SQL("INSERT INTO {} VALUES (" + marks + ")").format(copy)
                batches += [(insert, rows[i : i + BATCH]) for i in range(0, len(rows), BATCH)]
        conn.commit()
        total = sum(len(rows) for _, rows in batches)
        start = time.perf_counter()
        with conn.cursor() as cursor:
            for insert, rows in batches:
                cursor.executemany(insert, rows)
                conn.commit()
        return total, total / (time.perf_counter() - start)


def _adaptable(cursor: psycopg.Cursor[Any]) -> list[tuple[Any, ...]]:
    """The rows, their JSON columns wrapped back for psycopg (it reads them as dicts)."""
    json = {i for i, c in enumerate(cursor.description or []) if c.type_code in JSON_OIDS}
    return [
        tuple(Jsonb(v) if i in json and v is not None else v for i, v in enumerate(row))
        for row in cursor.fetchall()
    ]


def timed_rebuild(settings: Settings, runner: ProjectionRunner) -> float:
    """Request a rebuild and run it through the real path (shadow tables from position 0,
    then the swap): its seconds."""
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        request_rebuild(conn, settings.schema_name, runner.projection)
    shown = [0]

    def progress(done: int, total: int) -> None:
        if done - shown[0] >= 100_000 or done >= total:
            shown[0] = done
            print(f"  rebuilt {done:,} / {total:,} events", flush=True)

    runner.on_progress = progress
    start = time.perf_counter()
    runner.catch_up()
    return time.perf_counter() - start


def rebuild(settings: Settings, events: int) -> tuple[float, float, float]:
    url = settings.database_url
    assert url
    store = store_class(Customer)(env=settings.postgres_env(url))
    try:
        fill(store, events, "Rebuild")
    finally:
        store.close()
    connections = Connections(settings)
    runner = ProjectionRunner(ErpCustomers(), connections, settings.schema_name, batch=BATCH)
    start = time.perf_counter()
    runner.catch_up()
    first = events / (time.perf_counter() - start)
    print(f"  first build: {first:,.0f} events/s", flush=True)
    rate = events / timed_rebuild(settings, runner)
    print(f"  rebuild (shadow + swap): {rate:,.0f} events/s", flush=True)
    _, raw = raw_insert_rate(url, settings.schema_name, ["erp_customers"])
    print(f"  raw executemany of the same rows: {raw:,.0f} rows/s", flush=True)
    return first, rate, raw


class Timed(ErpCustomers):
    """The ERP customers view noting which aggregates each batch applied."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        self.pending.append(str(event["aggregate_id"]))
        super().apply(event, at, cursor)


class TimedRunner(ProjectionRunner):
    """Stamps the commit time of every batch on the aggregates it applied."""

    def __init__(self, projection: Timed, *args: Any, **kw: Any) -> None:
        super().__init__(projection, *args, **kw)
        self.timed = projection
        self.committed: dict[str, float] = {}

    def _batch(self, generation: str, before: Position | None = None) -> int:
        self.timed.pending.clear()
        total = super()._batch(generation, before)
        now = time.perf_counter()
        for aggregate in self.timed.pending:
            self.committed.setdefault(aggregate, now)
        return total


def live_lag(settings: Settings, rate: int, seconds: float) -> tuple[float, float, int]:
    url = settings.database_url
    assert url
    store = store_class(Customer)(env=settings.postgres_env(url))
    runner = TimedRunner(Timed(), Connections(settings), settings.schema_name, batch=BATCH)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    saved: dict[str, float] = {}
    per_tick = max(1, rate // 100)
    try:
        time.sleep(2)  # the runner has caught up with the rebuild run's events
        tick = time.perf_counter()
        end = tick + seconds
        while tick < end:
            batch = [
                Customer.register(stamp(), uuid.uuid4(), legal_name="Live") for _ in range(per_tick)
            ]
            store.save(*batch)
            now = time.perf_counter()
            saved.update({str(c.id): now for c in batch})
            tick += 0.01
            pause = tick - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline and not all(a in runner.committed for a in saved):
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        store.close()
    lags = [runner.committed[a] - t for a, t in saved.items() if a in runner.committed]
    p50, p99 = percentiles(lags)
    return p50, p99, len(saved) - len(lags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--lag-rate", type=int, default=1000)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    args = parser.parse_args()
    url = database_url()
    with scratch_schema(url, "bench_proj") as schema:
        settings = Settings(database_url=url, schema_name=schema)
        print(f"storing {args.events:,} events, then building and rebuilding the view")
        first, rate, raw = rebuild(settings, args.events)
        print(f"live follow at {args.lag_rate:,} events/s for {args.lag_seconds:.0f} s")
        p50, p99, missing = live_lag(settings, args.lag_rate, args.lag_seconds)
    print()
    print("| benchmark | Concord | raw limit, same run | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| projection rebuild (`erp`, {args.events:,} events, shadow + swap) | "
        f"{rate:,.0f} events/s (first build {first:,.0f}/s) | executemany of the same rows, "
        f"{BATCH} per transaction: {raw:,.0f} rows/s | {rate / raw:.2f}x |"
    )
    print(
        f"| live lag commit → view at {args.lag_rate:,} events/s | p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms{f', {missing} never applied' if missing else ''} | | |"
    )


if __name__ == "__main__":
    main()
