"""Signed Stripe ``invoice.paid`` webhooks beside the same canonical commands, one run.

    python -m tests.bench.bench_inbound [--count 2000] [--concurrency 32]

Each ``invoice.paid`` delivery is verified (Stripe-Signature), logged raw, translated and
committed as two canonical commands (payment receive + apply) with its receipt. The
comparison sends the same two commands per invoice to ``/v1`` (``POST /v1/payments`` then
``POST /v1/payments/{id}/apply``), as an integration that already speaks canonical would.
Invoices are issued beforehand through ``invoice.finalized`` webhooks (not timed). The raw
limit of the store (``Application.save()``, one aggregate per save) is measured too.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from typing import Any

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
from tests.e2e.inbound_support import stripe_customer, stripe_event, stripe_invoice

SECRET = "whsec_bench"
ACCOUNT = "001Dn00000BenchIAZ"


def signed(body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={digest}"}


async def run(
    port: int,
    concurrency: int,
    count: int,
    send: Callable[[Connection, int], Any],
) -> tuple[float, int, list[float]]:
    """``count`` items over ``concurrency`` connections; (seconds, failures, latencies)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(count):
        queue.put_nowait(number)
    failures = 0
    latencies: list[float] = []

    async def worker() -> None:
        nonlocal failures
        conn = await Connection.open(port)
        try:
            while True:
                try:
                    number = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                ok = await send(conn, number)
                latencies.append(time.perf_counter() - started)
                failures += 0 if ok else 1
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, failures, latencies


async def prepare(port: int, key: str, count: int) -> str:
    """A CRM account linked to Stripe, an active subscription, ``2 * count`` open invoices."""
    admin = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = await Connection.open(port)
    try:
        status, body = await conn.request(
            "POST",
            "/v1/keys",
            orjson.dumps({"system": "crm", "client_id": "bench-crm", "scopes": ["write"]}),
            admin,
        )
        crm = {
            "Authorization": f"Bearer {orjson.loads(body)['key']}",
            "Content-Type": "application/json",
            "Concord-Source-Record-Id": ACCOUNT,
        }
        status, body = await conn.request(
            "POST", "/v1/customers", orjson.dumps({"legal_name": "Bench AG"}), crm
        )
        assert status == 201, body
        customer_id = orjson.loads(body)["id"]
        linked = stripe_event("customer.created", stripe_customer("cus_B", ACCOUNT), "evt_c", 1)
        status, body = await conn.request("POST", "/v1/webhooks/stripe", linked, signed(linked))
        assert status == 200, body
        order = {
            "customer_id": customer_id,
            "opportunity_id": "OPP-B",
            "lines": [
                {"sku": "P", "quantity": "1", "unit_price": "25.00", "charge_type": "recurring"}
            ],
            "currency": "EUR",
            "term_months": 12,
            "start_date": "2026-01-01",
            "booking_date": "2025-12-20",
        }
        status, body = await conn.request("POST", "/v1/orders", orjson.dumps(order), admin)
        assert status == 201, body
        contract = {
            "order_id": orjson.loads(body)["id"],
            "customer_id": customer_id,
            "items": [
                {
                    "sku": "P",
                    "rate_plan": "m",
                    "quantity": "1",
                    "unit_price": "25.00",
                    "billing_period": "month",
                    "charge_type": "recurring",
                }
            ],
            "currency": "EUR",
            "term_start": "2026-01-01",
            "term_end": "2026-12-31",
        }
        status, body = await conn.request("POST", "/v1/contracts", orjson.dumps(contract), admin)
        assert status == 201, body
        contract_id = orjson.loads(body)["id"]
        status, body = await conn.request(
            "POST",
            f"/v1/contracts/{contract_id}/activate",
            orjson.dumps({"billing_subscription_id": "sub_B"}),
            admin,
        )
        assert status == 200, body
        # The invoices' price must be mapped, or every invoice would be held for it.
        catalogue = {
            "version": 1,
            "products": [
                {"sku": "P", "charge_type": "recurring", "billing_period": "month",
                 "ids": {"billing_price_ids": ["price_plat"]}},
            ],
        }  # fmt: skip
        status, body = await conn.request(
            "POST", "/v1/mappings/load", orjson.dumps(catalogue), admin
        )
        assert status == 200 and not orjson.loads(body)["refused"], body
    finally:
        conn.close()

    async def issue(conn: Connection, number: int) -> bool:
        invoice = stripe_invoice(
            f"in_{number}", "cus_B", subscription="sub_B", number=f"B-{number}"
        )
        body = stripe_event("invoice.finalized", invoice, f"evt_f{number}", 1767312000)
        status, _ = await conn.request("POST", "/v1/webhooks/stripe", body, signed(body))
        return status == 200

    _, failures, _ = await run(port, 32, 2 * count, issue)
    assert failures == 0, f"{failures} invoices were not issued"
    return customer_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="deliveries per side")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    url = database_url()
    os.environ["CONCORD_WEBHOOK_SECRETS"] = f"stripe={SECRET}"

    print("raw Application.save(), 1 aggregate per save, 5 s ...", flush=True)
    raw = raw_save_rate(url, 1, 5.0)
    with scratch_schema(url) as schema, hub_server(url, schema, temp_dir()) as (port, key):
        print(f"issuing {2 * args.count:,} invoices through invoice.finalized ...", flush=True)
        customer_id = asyncio.run(prepare(port, key, args.count))
        admin = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        ids: dict[str, str] = {}

        async def lookups() -> None:
            conn = await Connection.open(port)
            try:
                for number in range(args.count, 2 * args.count):
                    status, body = await conn.request(
                        "GET", f"/v1/lookup/billing/invoice/in_{number}", b"", admin
                    )
                    assert status == 200, body
                    ids[f"in_{number}"] = orjson.loads(body)["id"]
            finally:
                conn.close()

        asyncio.run(lookups())

        async def webhook(conn: Connection, number: int) -> bool:
            invoice = stripe_invoice(
                f"in_{number}", "cus_B", subscription="sub_B", status="paid", number=f"B-{number}"
            )
            body = stripe_event("invoice.paid", invoice, f"evt_p{number}", 1767916800)
            status, _ = await conn.request("POST", "/v1/webhooks/stripe", body, signed(body))
            return status == 200

        async def canonical(conn: Connection, number: int) -> bool:
            invoice_id = ids[f"in_{args.count + number}"]
            money = {"amount": "25.00", "currency": "EUR"}
            payment = {
                "customer_id": customer_id,
                "amount": money,
                "method": "card",
                "received_at": "2026-01-09T00:00:00Z",
            }
            status, body = await conn.request("POST", "/v1/payments", orjson.dumps(payment), admin)
            if status != 201:
                return False
            payment_id = orjson.loads(body)["id"]
            status, _ = await conn.request(
                "POST",
                f"/v1/payments/{payment_id}/apply",
                orjson.dumps({"invoice_id": invoice_id, "amount": money}),
                admin,
            )
            return status == 200

        print(f"invoice.paid webhooks, {args.concurrency} connections ...", flush=True)
        hook_s, hook_failed, hook_lat = asyncio.run(
            run(port, args.concurrency, args.count, webhook)
        )
        print(f"canonical receive + apply, {args.concurrency} connections ...", flush=True)
        canon_s, canon_failed, canon_lat = asyncio.run(
            run(port, args.concurrency, args.count, canonical)
        )
    hook_rate, canon_rate = args.count / hook_s, args.count / canon_s
    hook_p50, hook_p99 = percentiles(hook_lat)
    canon_p50, canon_p99 = percentiles(canon_lat)
    print()
    print("| measure | value |")
    print("|---|---|")
    print(
        f"| Stripe `invoice.paid` deliveries/s ({args.concurrency} connections) "
        f"| {hook_rate:,.0f} |"
    )
    print(f"| p50 / p99 per delivery | {hook_p50:.1f} ms / {hook_p99:.1f} ms |")
    print(f"| same commands over `/v1` (receive + apply), pairs/s | {canon_rate:,.0f} |")
    print(f"| p50 / p99 per pair | {canon_p50:.1f} ms / {canon_p99:.1f} ms |")
    print(f"| ratio webhook / canonical | {hook_rate / canon_rate:.2f}x |")
    print(f"| failed | {hook_failed} webhooks, {canon_failed} canonical pairs |")
    print(f"| raw `save()` 1 aggregate/save | {raw:,.0f}/s |")


if __name__ == "__main__":
    main()
