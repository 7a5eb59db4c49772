"""Single commands over HTTP at N concurrent connections, beside the raw save rate.

    python -m tests.bench.bench_commands [--seconds 10] [--concurrency 32]

Measures ``POST /v1/customers`` (register: validation, ownership, existence check, commit)
through the real server process, and in the same run the library's ``Application.save()``
with one aggregate per save — the rate a hub without group commit could not exceed.
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
    percentiles,
    raw_save_rate,
    scratch_schema,
    temp_dir,
)


async def load(
    port: int, key: str, concurrency: int, seconds: float
) -> tuple[int, int, list[float]]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ok = failed = 0
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(number: int) -> None:
        nonlocal ok, failed
        conn = await Connection.open(port)
        sent = 0
        try:
            while time.perf_counter() < stop_at:
                body = orjson.dumps({"legal_name": f"Bench {number}-{sent}", "currency": "USD"})
                started = time.perf_counter()
                status, _ = await conn.request("POST", "/v1/customers", body, headers)
                latencies.append(time.perf_counter() - started)
                sent += 1
                if status == 201:
                    ok += 1
                else:
                    failed += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return ok, failed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    args = parser.parse_args()
    url = database_url()

    print(f"raw Application.save(), 1 aggregate per save, {args.seconds:.0f} s ...", flush=True)
    raw = raw_save_rate(url, 1, args.seconds)
    print(f"  {raw:,.0f} saves/s", flush=True)

    with (
        scratch_schema(url) as schema,
        hub_server(url, schema, temp_dir(), args.workers) as (port, key),
    ):
        print("warming up the API (2 s) ...", flush=True)
        asyncio.run(load(port, key, args.concurrency, 2.0))
        print(
            f"HTTP POST /v1/customers, {args.concurrency} connections, {args.seconds:.0f} s ...",
            flush=True,
        )
        started = time.perf_counter()
        ok, failed, latencies = asyncio.run(load(port, key, args.concurrency, args.seconds))
        elapsed = time.perf_counter() - started
    rate = ok / elapsed
    p50, p99 = percentiles(latencies)
    print()
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| HTTP commands/s ({args.concurrency} connections, {args.workers} worker(s)) "
        f"| {rate:,.0f} |"
    )
    print(f"| p50 / p99 latency | {p50:.1f} ms / {p99:.1f} ms |")
    print(f"| failed requests | {failed} |")
    print(f"| raw `save()` 1 aggregate/save | {raw:,.0f}/s |")
    print(f"| ratio HTTP / raw | {rate / raw:.2f}x |")


if __name__ == "__main__":
    main()
