"""Bulk ingest over ``POST /v1/batch`` beside raw ``save()`` of 100 aggregates per call.

python -m tests.bench.bench_bulk [--lines 50000] [--chunk 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson

from tests.bench.common import (
    Connection,
    database_url,
    hub_server,
    raw_save_rate,
    scratch_schema,
    temp_dir,
)


def ndjson(prefix: str, start: int, count: int) -> bytes:
    lines = [
        orjson.dumps(
            {
                "entity": "customer",
                "command": "register",
                "data": {"legal_name": f"Bulk {i}", "currency": "EUR"},
                "provenance": {"source_record_id": f"{prefix}-{i}"},
            }
        )
        for i in range(start, start + count)
    ]
    return b"\n".join(lines)


async def ingest(
    port: int, key: str, total: int, chunk: int, prefix: str = "bulk"
) -> tuple[int, float]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    conn = await Connection.open(port)
    accepted = 0
    started = time.perf_counter()
    try:
        for start in range(0, total, chunk):
            status, body = await conn.request(
                "POST", "/v1/batch", ndjson(prefix, start, chunk), headers
            )
            if status != 200:
                raise RuntimeError(f"batch failed with {status}: {body[:300]!r}")
            accepted += int(orjson.loads(body)["accepted"])
            print(f"  {accepted:,} / {total:,} lines", flush=True)
    finally:
        conn.close()
    return accepted, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    url = database_url()

    print(f"raw Application.save(), 100 aggregates per save, {args.seconds:.0f} s ...", flush=True)
    raw = raw_save_rate(url, 100, args.seconds)
    print(f"  {raw:,.0f} events/s", flush=True)

    with scratch_schema(url) as schema, hub_server(url, schema, temp_dir()) as (port, key):
        asyncio.run(ingest(port, key, args.chunk, args.chunk, "warm"))  # warm-up, not counted
        print(f"POST /v1/batch, {args.lines:,} lines in chunks of {args.chunk:,} ...", flush=True)
        accepted, elapsed = asyncio.run(ingest(port, key, args.lines, args.chunk))
    rate = accepted / elapsed
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| bulk ingest events/s | {rate:,.0f} |")
    print(f"| raw `save()` 100 aggregates/save | {raw:,.0f}/s |")
    print(f"| ratio bulk / raw | {rate / raw:.2f}x |")


if __name__ == "__main__":
    main()
