"""Rebuild rate of EVERY projection on one realistic store, beside raw batched inserts of
the rows each one wrote, in the same run.

python -m tests.bench.bench_projection_rates [--events 500000] [--only erp,crm] [--profile NAME]
                                             [--keep-store SCHEMA]

The store (``tests/bench/realistic_store.py``): accounts of a customer, a deal with
one-time, recurring and usage lines, its amended contract with usage, invoices with lines,
payments applied, some credits and refunds, stored through the stores' batched ``save()``.
Then for each projection of ``projections/registry.py``: a first build, then a rebuild
through the real path (shadow tables from position 0, then the swap). Its rate is given
over the events of the stores it follows and over all stored events. The raw limit: the
very rows of its rebuilt tables inserted into empty copies with ``executemany``, 500 rows
per transaction (the runner's batch). ``--profile NAME`` runs that projection's rebuild
under cProfile and prints the top functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from adapters.bootstrap import Connections
from adapters.gc_tuning import tune_for_serving
from adapters.projections.runner import ProjectionRunner
from adapters.projections.schema import SHADOW_SUFFIX
from adapters.settings import Settings
from projections.definition import Projection
from projections.registry import all_projections
from tests.bench.bench_projections import BATCH, raw_insert_rate, timed_rebuild
from tests.bench.common import database_url, scratch_schema
from tests.bench.realistic_store import fill

TARGET = 20_000
TARGET_RATIO = 0.5


@dataclass(frozen=True)
class Rates:
    name: str
    followed: int
    first: float  # events/s of the first build (over the followed events)
    seconds: float  # of the rebuild
    rows: int
    raw: float  # rows/s

    @property
    def rate(self) -> float:
        return self.followed / self.seconds


def measure(
    settings: Settings, projection: Projection, counts: dict[str, int], profile: bool
) -> Rates:
    followed = sum(counts.get(store, 0) for store in projection.stores)
    runner = ProjectionRunner(projection, Connections(settings), settings.schema_name, batch=BATCH)
    start = time.perf_counter()
    runner.catch_up()
    first = followed / (time.perf_counter() - start)
    print(f"  {projection.name}: first build {first:,.0f} events/s", flush=True)
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    seconds = timed_rebuild(settings, runner)
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    tables = [table.name for table in projection.tables]
    rows, raw = raw_insert_rate(settings.database_url or "", settings.schema_name, tables)
    rates = Rates(projection.name, followed, first, seconds, rows, raw)
    print(
        f"  {projection.name}: rebuild {rates.rate:,.0f} events/s, raw {raw:,.0f} rows/s "
        f"({rows:,} rows)",
        flush=True,
    )
    return rates


def table(results: list[Rates], total: int) -> None:
    print(
        "| projection | events followed | rebuild events/s (over all events) | rows written "
        "(rebuild rows/s) | raw `executemany` rows/s | ratio | targets |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in results:
        ratio = r.rate / r.raw
        missed = [f"< {TARGET:,}/s"] if r.rate < TARGET else []
        missed += [f"< {TARGET_RATIO}x raw"] if ratio < TARGET_RATIO else []
        print(
            f"| `{r.name}` | {r.followed:,} | {r.rate:,.0f} ({total / r.seconds:,.0f}) | "
            f"{r.rows:,} ({r.rows / r.seconds:,.0f}) | {r.raw:,.0f} | {ratio:.2f}x | "
            f"{'missed: ' + ', '.join(missed) if missed else 'met'} |"
        )


@contextmanager
def kept_schema(url: str, name: str) -> Iterator[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
    yield name


def stored(settings: Settings) -> dict[str, int]:
    """Events per store already in the schema (none: it is new)."""
    counts: dict[str, int] = {}
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        for store in ("customers", "products", "orders", "contracts", "invoices", "payments"):
            table = f'"{settings.schema_name}"."{store}_events"'
            found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if found and found[0]:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(
                        sql.Identifier(settings.schema_name, f"{store}_events")
                    )
                ).fetchone()
                counts[store] = int(row[0]) if row else 0
    return counts


def forget(settings: Settings, projection: Projection) -> None:
    """Drop what an earlier run built of ``projection`` (its tables, views, tracking rows):
    every run measures a first build from nothing."""
    schema = settings.schema_name
    with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
        for view in reversed(projection.views):
            conn.execute(
                sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, view.name))
            )
        for table in projection.tables:
            for name in (table.name, f"{table.name}{SHADOW_SUFFIX}", f"raw__{table.name}"):
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(schema, name))
                )
        for tracking in ("concord_projections", "concord_projection_positions"):
            found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{tracking}"',)).fetchone()
            if found and found[0]:
                column = "name" if tracking == "concord_projections" else "projection"
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = %s").format(
                        sql.Identifier(schema, tracking), sql.Identifier(column)
                    ),
                    (projection.name,),
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--only", default="", help="comma-separated projection names")
    parser.add_argument("--profile", default="", help="profile this projection's rebuild")
    parser.add_argument(
        "--keep-store",
        default="",
        metavar="SCHEMA",
        help="store the events in this schema and keep it; a later run with the same schema "
        "measures on the stored events again (its projections' tables are dropped first)",
    )
    args = parser.parse_args()
    tune_for_serving()  # as `concord projections rebuild` and `concord serve` run them
    only = {name for name in args.only.split(",") if name}
    projections = [p for p in all_projections() if not only or p.name in only]
    url = database_url()
    with (
        kept_schema(url, args.keep_store)
        if args.keep_store
        else scratch_schema(url, "bench_rates") as schema
    ):
        settings = Settings(database_url=url, schema_name=schema)
        counts = stored(settings) if args.keep_store else {}
        if sum(counts.values()) < args.events:
            print(f"storing {args.events:,} events", flush=True)
            start = time.perf_counter()
            counts = fill(settings, args.events)
            print(f"  stored in {time.perf_counter() - start:.0f} s", flush=True)
        total = sum(counts.values())
        print(f"  {total:,} events: {counts}", flush=True)
        for projection in projections:
            forget(settings, projection)
        results = [measure(settings, p, counts, p.name == args.profile) for p in projections]
    print()
    print(f"load average at the end: {os.getloadavg()}")
    table(results, total)


if __name__ == "__main__":
    main()
