"""A Salesforce CDC burst: one bulk deal import, 10,000 signed messages, beside raw INSERTs.

    python -m tests.bench.bench_inbound_cdc [--deals 1000] [--lines 7] [--chunk 200]
                                            [--concurrency 4]

The import, in the order Salesforce commits it: ``--deals`` Account CREATEs, as many
Opportunity CREATEs (one per account, its ``Amount`` the sum of its lines), ``--lines``
OpportunityLineItem CREATEs per opportunity, then every opportunity's UPDATE to ``IsWon``
(1,000 deals of 7 lines: 10,000 messages). A bridge posts them as JSON arrays of
``--chunk`` messages to ``/v1/webhooks/salesforce`` with ``X-Concord-Signature``, over
``--concurrency`` connections in order. Every message is verified, logged raw, mirrored and
translated; accounts register customers, every won deal places one order. The products the
lines name are loaded into the catalogue first (``POST /v1/mappings/load``), as a deployment
does before its first import. At the end the run checks that every customer and order
exists and nothing is held.

The raw limit, in the same run, on the same PostgreSQL: the same message bytes INSERTed into
a scratch table, one autocommit INSERT per message (each message is its own transaction in
Concord too), and one multi-row INSERT per chunk (the most a bare table takes them at).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import time
from typing import Any

import orjson
import psycopg
from psycopg import sql

from adapters.salesforce import to_18
from tests.bench.bench_inbound import run
from tests.bench.common import Connection, database_url, hub_server, scratch_schema, temp_dir
from tests.e2e.inbound_support import unique_name
from tests.e2e.salesforce_support import JAN_1_MS, cdc, line_item, opportunity, sf_id, won

SECRET = "sf-bench-secret"
CURRENCY = "EUR"
UNIT_PRICE, QUANTITY = 120, 2


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Concord-Signature": digest}


def products(lines: int) -> list[str]:
    return [to_18(sf_id("01t", n, "Bk")) for n in range(lines)]


def catalogue(lines: int) -> dict[str, Any]:
    """One product per line position, its Product2 id mapped (``ops/mappings`` format)."""
    return {
        "version": 1,
        "products": [
            {
                "sku": f"BENCH-{n}",
                "name": f"Bench product {n}",
                "charge_type": "recurring",
                "billing_period": "month",
                "currency": CURRENCY,
                "ids": {"crm_product_ids": [product]},
            }
            for n, product in enumerate(products(lines))
        ],
    }


def account(n: int) -> dict[str, Any]:
    """An Account CREATE with its own name and web domain (distinct customers: accounts
    are matched before they register, and "Bulk Import 1" would be a look-alike of "Bulk
    Import 2", held for review)."""
    fields = {
        "Name": unique_name(n),
        "Type": "Customer",
        "Website": f"https://www.bulk-{n}.example",
        "BillingAddress": {
            "Street": f"Importweg {n}",
            "City": "Berlin",
            "PostalCode": "10115",
            "Country": "Germany",
            "CountryCode": "DE",
        },
        "CurrencyIsoCode": CURRENCY,
        "OwnerId": "005Dn000000USR1",
    }
    record = sf_id("001", n, "Bk")
    return cdc("Account", "CREATE", [record], fields, at_ms=JAN_1_MS + n, tx=f"bulk-a{n}")


def import_messages(deals: int, lines: int) -> list[dict[str, Any]]:
    """The whole import, in commit order."""
    found = [account(n) for n in range(deals)]
    amount = UNIT_PRICE * QUANTITY * lines
    found += [
        opportunity(
            sf_id("006", n, "Bk"),
            sf_id("001", n, "Bk"),
            amount=amount,
            currency=CURRENCY,
            at_ms=JAN_1_MS + 10_000_000 + n,
        )
        for n in range(deals)
    ]
    found += [
        line_item(
            sf_id("00k", n * lines + k, "Bk"),
            sf_id("006", n, "Bk"),
            product,
            quantity=QUANTITY,
            unit_price=UNIT_PRICE,
            total=UNIT_PRICE * QUANTITY,
            at_ms=JAN_1_MS + 20_000_000 + n * lines + k,
            seq=k + 1,
        )
        for n in range(deals)
        for k, product in enumerate(products(lines))
    ]
    found += [won(sf_id("006", n, "Bk"), at_ms=JAN_1_MS + 40_000_000 + n) for n in range(deals)]
    return found


def chunks(messages: list[dict[str, Any]], size: int) -> list[bytes]:
    return [orjson.dumps(messages[i : i + size]) for i in range(0, len(messages), size)]


async def load_catalogue(port: int, key: str, lines: int) -> None:
    admin = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = await Connection.open(port)
    try:
        status, body = await conn.request(
            "POST", "/v1/mappings/load", orjson.dumps(catalogue(lines)), admin
        )
        assert status == 200, body
    finally:
        conn.close()


def outcome(url: str, schema: str) -> tuple[dict[str, int], int, int]:
    """Deliveries by status, customers and orders cross-referenced from Salesforce."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT status, count(*) FROM {}.concord_inbound WHERE system = 'salesforce' "
                "GROUP BY status"
            ).format(sql.Identifier(schema))
        ).fetchall()
        refs = dict(
            conn.execute(
                sql.SQL(
                    "SELECT entity, count(*) FROM {}.concord_xref WHERE system = 'crm' "
                    "GROUP BY entity"
                ).format(sql.Identifier(schema))
            ).fetchall()
        )
    return {str(s): int(c) for s, c in rows}, refs.get("customer", 0), refs.get("order", 0)


def raw_inserts(url: str, messages: list[dict[str, Any]], size: int) -> tuple[float, float]:
    """Rows/s into a scratch table: one autocommit INSERT per message; one per chunk."""
    bodies = [orjson.dumps(m) for m in messages]
    with scratch_schema(url, "raw") as schema, psycopg.connect(url, autocommit=True) as conn:
        table = sql.Identifier(schema, "messages")
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, event_id text UNIQUE, body bytea)"
            ).format(table)
        )
        single = sql.SQL("INSERT INTO {} (event_id, body) VALUES (%s, %s)").format(table)
        started = time.perf_counter()
        for n, body in enumerate(bodies):
            conn.execute(single, (f"s{n}", body))
        one_each = len(bodies) / (time.perf_counter() - started)
        many = sql.SQL(
            "INSERT INTO {} (event_id, body) SELECT * FROM unnest(%s::text[], %s::bytea[])"
        ).format(table)
        started = time.perf_counter()
        for at in range(0, len(bodies), size):
            part = bodies[at : at + size]
            conn.execute(many, ([f"c{at + i}" for i in range(len(part))], part))
        per_chunk = len(bodies) / (time.perf_counter() - started)
    return one_each, per_chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=7, help="line items per opportunity")
    parser.add_argument("--chunk", type=int, default=200, help="messages per POST")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    url = database_url()
    os.environ["CONCORD_WEBHOOK_SECRETS"] = f"salesforce={SECRET}"
    messages = import_messages(args.deals, args.lines)
    bodies = chunks(messages, args.chunk)
    print(f"raw INSERT of {len(messages):,} messages ...", flush=True)
    raw_each, raw_chunk = raw_inserts(url, messages, args.chunk)
    with scratch_schema(url) as schema, hub_server(url, schema, temp_dir()) as (port, key):
        asyncio.run(load_catalogue(port, key, args.lines))

        async def post(conn: Connection, number: int) -> bool:
            body = bodies[number]
            status, _ = await conn.request("POST", "/v1/webhooks/salesforce", body, signed(body))
            return status in (200, 202)

        print(
            f"{len(messages):,} CDC messages in {len(bodies)} arrays, "
            f"{args.concurrency} connections ...",
            flush=True,
        )
        seconds, failed, latencies = asyncio.run(run(port, args.concurrency, len(bodies), post))
        statuses, customers, orders = outcome(url, schema)
    rate = len(messages) / seconds
    held = statuses.get("held", 0)
    print()
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| Salesforce CDC messages/s ({len(messages):,} in arrays of {args.chunk}, "
        f"{args.concurrency} connections) | {rate:,.0f} ({seconds:.1f} s) |"
    )
    print(f"| per array p50 / max | {_ms(latencies, 0.5)} / {_ms(latencies, 1.0)} |")
    print(
        f"| deliveries by status | {', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items()))} |"
    )
    print(
        f"| customers / orders placed | {customers:,} / {orders:,} (expected {args.deals:,} each) |"
    )
    print(f"| failed arrays, held | {failed}, {held} |")
    print(f"| raw INSERT, 1 message per transaction | {raw_each:,.0f} rows/s |")
    print(f"| raw INSERT, {args.chunk} per statement | {raw_chunk:,.0f} rows/s |")
    print(
        f"| ratio to 1 per transaction / to {args.chunk} per statement | "
        f"{rate / raw_each:.2f}x / {rate / raw_chunk:.3f}x |"
    )
    assert failed == 0 and held == 0, "the import did not go through"
    assert customers == args.deals and orders == args.deals, "customers or orders missing"


def _ms(samples: list[float], quantile: float) -> str:
    ordered = sorted(samples)
    return f"{ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000:,.0f} ms"


if __name__ == "__main__":
    main()
