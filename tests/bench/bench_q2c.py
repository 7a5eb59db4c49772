"""Quote-to-cash latency at a steady deal rate: closed-won CDC → ERP sales order and billing
subscription present in the sandboxes, beside the sandboxes' own service time and the raw
HTTP and NATS round trips measured in the same run.

    python -m tests.bench.bench_q2c [--rate 50] [--seconds 60] [--accounts 500] [--presend]
                                    [--lead 1.0] [--billing-rate 100] [--raw-seconds 5]

The estate is the e2e one (tests/e2e/q2c_support.py): ``concord serve`` as a real process on
PostgreSQL and NATS, the ERP, CRM and billing sandboxes in this process, the catalogue seeded.

* **Before the clock:** ``--accounts`` accounts are created in the CRM sandbox and their CDC
  delivered to Concord (arrays of 200, as a bulk import); the benchmark waits until the ERP
  holds their customers. Every deal's opportunity and lines (SETUP one-time, SEATS recurring,
  API usage: 7 CDC messages with the opportunity's repricing) are created in the sandbox.
* **Open loop:** deal *i* is won at ``t0 + i / rate`` whatever happened to the others. Its 7
  messages go to ``POST /v1/webhooks/salesforce`` one per request (as the sandbox sends
  them) ``--lead`` seconds before; the win (``StageName`` Closed Won in the sandbox, its
  CDC signed as the sandbox signs it) at its time, or when its own earlier messages were
  answered if they are late (the sandbox keeps a record's order; the slip is reported).
  ``--presend`` delivers the opportunities and lines before the clock instead (arrays of
  200), so the timed phase carries only the wins and what they cause.
* **Latency of a deal:** from the start of the win's POST to the moment the sales order
  (``externalId`` = opportunity id) is saved in the ERP sandbox AND the subscription
  (``metadata.sf_opportunity_id``) in the billing sandbox; both stamped by hooks on the
  sandboxes' record creation in this process (``time.perf_counter``, no polling).
* **Sandboxes' own latency:** every API call is timed inside the sandbox (an outermost ASGI
  wrapper: handler, fault and limit middleware), calls per deal counted, during the timed
  window. CRM milestone writes and their CDC echoes run as in production.
* **Raw limits, same run:** the same win POSTs at the same rate to a bare FastAPI route under
  uvicorn (its own process), its closed-loop rate; a JetStream publish → pull-consumer
  fetch round trip (nats-py) at the same rate, on the same NATS server.

Billing rate: ``--billing-rate`` sets the billing sandbox's per-second limit and Concord's
``CONCORD_STRIPE_RATE`` (100: Stripe live mode; test mode's 25/s cannot carry 50 deals/s at
two calls each).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nats
from fastapi import FastAPI, Request
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from adapters.connectors.exact_json import dumps_exact
from adapters.salesforce.ids import to_18
from adapters.sandbox import crm_cdc
from adapters.sandbox.billing import BillingSandbox
from adapters.sandbox.crm import UI_ORIGIN, CrmSandbox
from adapters.sandbox.erp import ErpSandbox
from adapters.sandbox.stripe_wire import RateWindow
from tests.bench.bench_relay import nats_url
from tests.bench.common import ROOT, Connection, database_url, free_port, scratch_schema, temp_dir
from tests.e2e.q2c_support import SALESFORCE_SECRET, Estate, estate

PATH = "/v1/webhooks/salesforce"
BARE = (sys.executable, "-m", "uvicorn", "tests.bench.bench_q2c:bare", "--factory")
BARE += ("--log-level", "warning", "--no-access-log")
CHUNK = 200
Log = list[tuple[float, float, int, str]]  # (start, seconds inside, status, call)
_ID_SEGMENT = re.compile(r"/(?:eid:)?[^/]*\d[^/]*")


def call_name(method: str, path: str) -> str:
    """``PATCH /sobjects/Opportunity/:id``: a call's kind, ids folded (counted per deal)."""
    return f"{method} {_ID_SEGMENT.sub('/:id', path)}"


# --- the sandboxes, timed and stamped ------------------------------------------------------------
class _Timing:
    """Outermost ASGI wrapper: the time each API call spends inside the sandbox."""

    def __init__(self, app: Callable[..., Awaitable[None]], log: Log) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_admin/"):
            await self.app(scope, receive, send)
            return
        status = [0]

        async def noted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        start = time.perf_counter()
        try:
            await self.app(scope, receive, noted)
        finally:
            seconds = time.perf_counter() - start
            self.log.append((start, seconds, status[0], call_name(scope["method"], scope["path"])))


#: Webhook senders of the ERP and billing sandboxes (``--webhook-workers``).
WEBHOOK_WORKERS = [8]


class TimedErp(ErpSandbox):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.webhooks.workers = WEBHOOK_WORKERS[0]
        self.service: Log = []
        self.present: dict[str, float] = {}

    def app(self) -> Any:
        app = super().app()
        app.add_middleware(_Timing, log=self.service)
        return app

    def _after_save(self, kind: str, record: dict[str, Any]) -> None:
        super()._after_save(kind, record)
        if kind == "salesOrder" and isinstance(record.get("externalId"), str):
            self.present.setdefault(to_18(record["externalId"]), time.perf_counter())


class TimedBilling(BillingSandbox):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.webhooks.workers = WEBHOOK_WORKERS[0]
        self.service: Log = []
        self.present: dict[str, float] = {}

    def app(self) -> Any:
        app = super().app()
        app.add_middleware(_Timing, log=self.service)
        return app

    def _create_subscription(self, *args: Any, **kw: Any) -> dict[str, Any]:
        made: dict[str, Any] = super()._create_subscription(*args, **kw)
        opportunity = (made.get("metadata") or {}).get("sf_opportunity_id")
        if isinstance(opportunity, str):
            self.present.setdefault(to_18(opportunity), time.perf_counter())
        return made


class CapturingCrm(CrmSandbox):
    """The CRM sandbox, whose UI changes (the deals the benchmark makes) are kept for the
    benchmark to deliver on its schedule; Concord's writes and their CDC echoes go out
    through the sandbox's own webhook sender as usual."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.service: Log = []
        self.captured: list[dict[str, Any]] = []

    def app(self) -> Any:
        app = super().app()
        app.add_middleware(_Timing, log=self.service)
        return app

    def _publish(self, tx: list[crm_cdc.Change], origin: str) -> None:
        if origin != UI_ORIGIN:
            super()._publish(tx, origin)
            return
        url, self.webhooks.url = self.webhooks.url, None  # under self.lock, as every _publish
        start = len(self.cdc)
        try:
            super()._publish(tx, origin)
        finally:
            self.webhooks.url = url
        self.captured.extend(self.cdc[start:])

    def take(self) -> list[bytes]:
        with self.lock:
            taken, self.captured = self.captured, []
        return [dumps_exact(m) for m in taken]


# --- sending ---------------------------------------------------------------------------------
def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SALESFORCE_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Concord-Signature": digest}


class Pool:
    """Keep-alive connections to one port; a new one whenever all are busy (open loop)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[Connection] = []
        self.opened = 0

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        conn = self.idle.pop() if self.idle else None
        try:
            if conn is None:
                raise ConnectionError("none idle")
            status, answer = await conn.request("POST", path, body, headers)
        except (ConnectionError, IndexError, asyncio.IncompleteReadError):
            # none idle, or the server closed an idle one (keep-alive timeout): a new one
            if conn is not None:
                conn.close()
            conn = await Connection.open(self.port)
            self.opened += 1
            status, answer = await conn.request("POST", path, body, headers)
        self.idle.append(conn)
        return status, answer

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


async def post_ok(pool: Pool, body: bytes, path: str = PATH) -> None:
    status, answer = await pool.post(path, body, signed(body))
    if status >= 300:
        raise RuntimeError(f"POST {path} answered {status}: {answer[:300]!r}")


async def bulk(pool: Pool, messages: list[bytes], what: str) -> None:
    for i in range(0, len(messages), CHUNK):
        await post_ok(pool, b"[" + b",".join(messages[i : i + CHUNK]) + b"]")
    print(f"  delivered {len(messages):,} {what} CDC messages", flush=True)


@dataclass
class Deal:
    opportunity: str
    messages: list[bytes]
    win: bytes = b""
    due: float = 0.0
    won_at: float = 0.0
    won_wall: float = 0.0
    slip: float = 0.0
    error: str | None = None


@dataclass
class Run:
    deals: list[Deal]
    started: float
    ended: float = 0.0
    failures: list[str] = field(default_factory=list)


async def one_deal(world: Estate, pool: Pool, deal: Deal, lead: float) -> None:
    crm = world.crm_sandbox
    assert isinstance(crm, CapturingCrm)
    try:
        await asyncio.sleep(max(0.0, deal.due - lead - time.perf_counter()))
        for body in deal.messages:
            await post_ok(pool, body)
        await asyncio.sleep(max(0.0, deal.due - time.perf_counter()))
        deal.slip = time.perf_counter() - deal.due
        crm.win(deal.opportunity)
        (body,) = crm.take()
        deal.win = body
        deal.won_at = time.perf_counter()
        deal.won_wall = time.time()
        await post_ok(pool, body)
    except Exception as failed:  # reported, the run goes on
        deal.error = repr(failed)


async def drive(
    world: Estate, pool: Pool, deals: list[Deal], rate: float, lead: float, drain_s: float
) -> Run:
    erp, billing = world.erp_sandbox, world.billing_sandbox
    assert isinstance(erp, TimedErp) and isinstance(billing, TimedBilling)
    t0 = time.perf_counter() + lead + 0.5
    for i, deal in enumerate(deals):
        deal.due = t0 + i / rate
    run = Run(deals, t0)
    tasks = [asyncio.create_task(one_deal(world, pool, d, lead)) for d in deals]
    last = deals[-1].due
    while True:
        await asyncio.sleep(1.0)
        now = time.perf_counter()
        won = sum(1 for d in deals if d.won_at)
        done = sum(1 for d in deals if _finished(world, d))
        print(
            f"  t={now - t0:5.1f}s won {won:,} / {len(deals):,}, in both systems {done:,}, "
            f"in flight {won - done:,}; webhooks queued: ERP {erp.webhooks.pending}, "
            f"billing {billing.webhooks.pending}, CRM {world.crm_sandbox.webhooks.pending}",
            flush=True,
        )
        if done >= len(deals) or (now > last and all(t.done() for t in tasks) and done >= won):
            break
        if now > last + drain_s:
            run.failures.append(f"{won - done} deals not in both systems {drain_s:.0f} s after")
            late = next(d for d in deals if not _finished(world, d))
            print(await asyncio.to_thread(world.explain, late.opportunity), flush=True)
            break
    run.ended = time.perf_counter()
    for task in tasks:
        task.cancel()
    return run


def _finished(world: Estate, deal: Deal) -> bool:
    erp, billing = world.erp_sandbox, world.billing_sandbox
    assert isinstance(erp, TimedErp) and isinstance(billing, TimedBilling)
    return deal.opportunity in erp.present and deal.opportunity in billing.present


# --- raw limits ----------------------------------------------------------------------------
def bare() -> FastAPI:
    """A bare FastAPI route that reads the body and answers 200 (``--factory`` for uvicorn)."""
    app = FastAPI()

    @app.post(PATH)
    async def hook(request: Request) -> dict[str, str]:
        await request.body()
        return {"status": "ok"}

    return app


async def open_loop_posts(port: int, bodies: list[bytes], rate: float) -> list[float]:
    pool = Pool(port)
    start = time.perf_counter() + 0.2
    latencies: list[float] = []

    async def send(i: int, body: bytes) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        began = time.perf_counter()
        await post_ok(pool, body)
        latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(send(i, b) for i, b in enumerate(bodies)))
    pool.close()
    return latencies


async def closed_loop_rate(port: int, body: bytes, seconds: float, connections: int = 16) -> float:
    done = 0
    end = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        conn = await Connection.open(port)
        while time.perf_counter() < end:
            await conn.request("POST", PATH, body, signed(body))
            done += 1
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.perf_counter() - start)


async def raw_http(bodies: list[bytes], rate: float, seconds: float) -> tuple[list[float], float]:
    port = free_port()
    proc = subprocess.Popen(
        [*BARE, "--port", str(port)],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                (await Connection.open(port)).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        count = max(1, int(rate * seconds))
        picked = [bodies[i % len(bodies)] for i in range(count)]
        latencies = await open_loop_posts(port, picked, rate)
        most = await closed_loop_rate(port, bodies[0], min(3.0, seconds))
        return latencies, most
    finally:
        proc.terminate()
        proc.wait(10)


async def raw_nats(url: str, rate: float, seconds: float, body: bytes) -> list[float]:
    """JetStream publish (acknowledged) → a pull consumer's fetch of it, one at a time."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    stream = f"BENCH_Q2C_RAW_{uuid.uuid4().hex[:8].upper()}"
    subject = f"{stream.lower()}.raw"
    await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    await js.add_consumer(stream, ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT))
    sub = await js.pull_subscribe_bind(durable="raw", stream=stream)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    count = max(1, int(rate * seconds))

    async def consume() -> None:
        while len(latencies) < count:
            try:
                msgs = await sub.fetch(16, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                latencies.append(time.perf_counter() - sent[msg.headers["n"]])  # type: ignore[index]
                await msg.ack()

    consumer = asyncio.create_task(consume())
    start = time.perf_counter() + 0.2
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        sent[str(i)] = time.perf_counter()
        await js.publish(subject, body, headers={"n": str(i)})
    await asyncio.wait_for(consumer, 30)
    await js.delete_stream(stream)
    await nc.close()
    return latencies


# --- the run -----------------------------------------------------------------------------------
def drain(stream: Any, tail: deque[str]) -> None:
    """Read the server's output so its pipe never fills (the last lines kept for errors)."""
    for line in stream:
        tail.append(line)


def names(count: int) -> list[str]:
    """Company names far apart from each other (similar ones go to match review)."""
    rng = random.Random(9)
    letters = "bcdfghjklmnpqrstvwxz"
    vowels = "aeiou"

    def word() -> str:
        return "".join(rng.choice(letters) + rng.choice(vowels) for _ in range(4)).title()

    return [f"{word()} {word()}" for _ in range(count)]


def known(world: Estate, accounts: list[str]) -> bool:
    """Every account is a customer in Concord (inbound answers 202 and settles after)."""
    while accounts:
        answer = world.api("GET", f"/v1/lookup/crm/customer/{accounts[-1]}")
        if answer.status_code != 200:
            world.output[-1:] = [answer.text]
            return False
        accounts.pop()
    return True


def prepare(world: Estate, accounts: int, deals: int) -> tuple[list[str], list[bytes], list[Deal]]:
    crm = world.crm_sandbox
    assert isinstance(crm, CapturingCrm)
    ids = [
        crm.create_account(name, website=f"https://{name.replace(' ', '').lower()}.example")
        for name in names(accounts)
    ]
    account_messages = crm.take()
    made: list[Deal] = []
    for i in range(deals):
        opportunity = crm.create_opportunity(
            ids[i % accounts], f"Bench deal {i}", close_date="2026-01-15", term_months=12
        )
        crm.add_line(
            opportunity, world.crm_products["SEATS"], quantity=10, service_date="2026-02-01"
        )
        crm.add_line(opportunity, world.crm_products["API"], quantity=1000)
        crm.add_line(opportunity, world.crm_products["SETUP"], quantity=1)
        made.append(Deal(to_18(opportunity), crm.take()))
        if (i + 1) % 1000 == 0:
            print(f"  made {i + 1:,} / {deals:,} deals in the CRM sandbox", flush=True)
    return [to_18(i) for i in ids], account_messages, made


def wait_for(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def quantiles(samples: list[float]) -> str:
    if not samples:
        return "none"
    return (
        f"p50 {statistics.median(samples) * 1000:,.0f} ms, p90 {ms(samples, 0.9):,.0f}, "
        f"p99 {ms(samples, 0.99):,.0f}, max {max(samples) * 1000:,.0f}"
    )


def service_row(name: str, log: Log, window: tuple[float, float], deals: int) -> str:
    inside = [(s, d, st) for s, d, st, _ in log if window[0] <= s <= window[1]]
    times = [d for _, d, _ in inside]
    refused = sum(1 for _, _, st in inside if st == 429)
    if not times:
        return f"| {name} | 0 | | | |"
    return (
        f"| {name} | {len(times):,} | {len(times) / max(deals, 1):.1f} | "
        f"{statistics.median(times) * 1000:.2f} / {ms(times, 0.99):.2f} / "
        f"{max(times) * 1000:.1f} | {refused:,} |"
    )


async def measure(args: argparse.Namespace, world: Estate) -> None:
    erp, crm, billing = world.erp_sandbox, world.crm_sandbox, world.billing_sandbox
    assert isinstance(erp, TimedErp) and isinstance(billing, TimedBilling)
    assert isinstance(crm, CapturingCrm)
    billing.rate = RateWindow(args.billing_rate)
    total = max(1, int(args.rate * args.seconds))
    accounts = min(args.accounts, total)
    print(f"preparing {accounts:,} accounts and {total:,} deals in the CRM sandbox", flush=True)
    ids, account_messages, deals = prepare(world, accounts, total)
    pool = Pool(int(world.base.rsplit(":", 1)[1]))
    await bulk(pool, account_messages, "account")
    try:
        await asyncio.to_thread(wait_for, lambda: known(world, ids), "the customers", 20)
    except RuntimeError:
        print(world.output[-1], world.api("GET", "/v1/inbound/held").text[:2000])
        raise
    print(f"  Concord knows the {accounts:,} customers", flush=True)
    if args.presend:
        await bulk(pool, [m for d in deals for m in d.messages], "opportunity and line")
        for deal in deals:
            deal.messages = []
    load_before = os.getloadavg()
    print(f"driving {args.rate:g} deals/s for {args.seconds:g} s (open loop)", flush=True)
    run = await drive(world, pool, deals, args.rate, args.lead, args.drain)
    load_after = os.getloadavg()
    pool.close()
    print("raw limits: bare FastAPI route, JetStream round trip", flush=True)
    wins = [d.win for d in deals[:50] if d.win] or [b'{"x": 1}']
    http_lat, http_max = await raw_http(wins, args.rate, args.raw_seconds)
    nats_lat = await raw_nats(args.nats_url, args.rate, args.raw_seconds, wins[0])
    report(args, world, run, http_lat, http_max, nats_lat, (load_before, load_after))


def stages(world: Estate, deals: list[Deal], sample: int = 100) -> list[tuple[str, list[float]]]:
    """Where a deal's time goes, from its process record (``GET /v1/processes``: each step's
    start and end, written by the process manager) for up to ``sample`` deals."""
    erp, billing = world.erp_sandbox, world.billing_sandbox
    assert isinstance(erp, TimedErp) and isinstance(billing, TimedBilling)
    marks: dict[str, list[float]] = {}
    step = max(1, len(deals) // sample)
    for deal in deals[::step]:
        found = world.process(deal.opportunity)
        if not found or not deal.won_at:
            continue
        by = {s["step"]: s for s in found["steps"]}

        def at(stamp: str | None, won: float = deal.won_wall) -> float | None:
            return datetime.fromisoformat(stamp).timestamp() - won if stamp else None

        points = {
            "process manager: order validated": at((by.get("validate") or {}).get("done_at")),
            "ERP sandbox: sales order saved": erp.present.get(deal.opportunity, 0) - deal.won_at,
            "process manager: contract created (ERP acceptance seen)": at(
                (by.get("contract") or {}).get("done_at")
            ),
            "billing sandbox: subscription saved": billing.present.get(deal.opportunity, 0)
            - deal.won_at,
        }
        for name, value in points.items():
            if value is not None and value > 0:
                marks.setdefault(name, []).append(value)
    return list(marks.items())


def report(
    args: argparse.Namespace,
    world: Estate,
    run: Run,
    http_lat: list[float],
    http_max: float,
    nats_lat: list[float],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    erp, crm, billing = world.erp_sandbox, world.crm_sandbox, world.billing_sandbox
    assert isinstance(erp, TimedErp) and isinstance(billing, TimedBilling)
    assert isinstance(crm, CapturingCrm)
    deals = run.deals
    won = [d for d in deals if d.won_at]
    both = [
        max(erp.present[d.opportunity], billing.present[d.opportunity]) - d.won_at
        for d in won
        if _finished(world, d)
    ]
    to_erp = [erp.present[d.opportunity] - d.won_at for d in won if d.opportunity in erp.present]
    to_billing = [
        billing.present[d.opportunity] - d.won_at for d in won if d.opportunity in billing.present
    ]
    span = max(d.won_at for d in won) - min(d.won_at for d in won) if len(won) > 1 else 1.0
    achieved = (len(won) - 1) / span if len(won) > 1 else 0.0
    slips = [d.slip for d in won]
    errors = [d.error for d in deals if d.error]
    window = (run.started, run.ended)
    mode = (
        "opportunity + lines sent before the clock"
        if args.presend
        else (f"7 opportunity/line messages {args.lead:g} s before each win")
    )
    print()
    print(
        f"{len(deals):,} deals at {args.rate:g}/s target, {mode}; load average "
        f"{loads[0][0]:.2f} before, {loads[1][0]:.2f} after (1 min); billing limit "
        f"{args.billing_rate:g}/s"
    )
    if errors or run.failures:
        print(f"failures: {run.failures} {len(errors)} send errors, first: {errors[:3]}")
    print()
    print("| measure | figure |")
    print("|---|---|")
    print(
        f"| wins sent | {len(won):,} at {achieved:.1f}/s achieved (schedule slip p99 "
        f"{ms(slips, 0.99) if slips else 0:.0f} ms) |"
    )
    print(
        f"| win → sales order AND subscription ({len(both):,} of {len(deals):,} deals by the "
        f"end) | {quantiles(both)} |"
    )
    print(f"| win → ERP sales order | {quantiles(to_erp)} |")
    print(f"| win → billing subscription | {quantiles(to_billing)} |")
    print(
        f"| raw: same POSTs to a bare FastAPI route at {args.rate:g}/s | {quantiles(http_lat)};"
        f" closed loop {http_max:,.0f} req/s |"
    )
    print(f"| raw: JetStream publish → pull fetch at {args.rate:g}/s | {quantiles(nats_lat)} |")
    print()
    print("| stage (time since the win's POST, sampled deals) | p50 / p90 / max ms |")
    print("|---|---:|")
    for name, values in stages(world, won):
        print(
            f"| {name} | {statistics.median(values) * 1000:,.0f} / {ms(values, 0.9):,.0f} / "
            f"{max(values) * 1000:,.0f} |"
        )
    print()
    print("| sandbox (time inside its handlers) | calls | per deal | p50 / p99 / max ms | 429 |")
    print("|---|---:|---:|---:|---:|")
    for name, log in (("ERP", erp.service), ("billing", billing.service), ("CRM", crm.service)):
        print(service_row(name, log, window, len(won)))
    print()
    print("| calls per deal, by kind (timed window) | per deal |")
    print("|---|---:|")
    for name, log in (("ERP", erp.service), ("billing", billing.service), ("CRM", crm.service)):
        kinds = Counter(c for s, _, _, c in log if window[0] <= s <= window[1])
        for kind, count in kinds.most_common(8):
            print(f"| {name}: `{kind}` | {count / max(len(won), 1):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="deals won per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the timed run")
    parser.add_argument("--accounts", type=int, default=500, help="accounts the deals cycle")
    parser.add_argument("--presend", action="store_true", help="opportunities before the clock")
    parser.add_argument("--lead", type=float, default=1.0, help="s from a deal's lines to its win")
    parser.add_argument("--billing-rate", type=float, default=100.0)
    parser.add_argument(
        "--q2c-poll", type=float, default=None, help="CONCORD_Q2C_POLL_INTERVAL_S (0.2)"
    )
    parser.add_argument("--drain", type=float, default=60.0, help="s to wait after the last win")
    parser.add_argument("--raw-seconds", type=float, default=5.0)
    parser.add_argument(
        "--poll", type=float, default=None, help="CONCORD_PROJECTION_POLL_INTERVAL_S"
    )
    parser.add_argument(
        "--webhook-workers",
        type=int,
        default=8,
        help="concurrent webhook senders of the ERP and billing sandboxes (CRM CDC: 1, ordered)",
    )
    args = parser.parse_args()
    WEBHOOK_WORKERS[0] = args.webhook_workers
    with ExitStack() as stack:
        url = nats_url(stack, "always")
        args.nats_url = url
        db = database_url()
        schema = stack.enter_context(scratch_schema(db, "bench_q2c"))
        stream = f"BENCH_Q2C_{uuid.uuid4().hex[:8].upper()}"
        env = {"CONCORD_STRIPE_RATE": str(args.billing_rate), "CONCORD_RATE_LIMIT_PER_S": "0"}
        if args.poll is not None:
            env["CONCORD_PROJECTION_POLL_INTERVAL_S"] = str(args.poll)
        if args.q2c_poll is not None:
            env["CONCORD_Q2C_POLL_INTERVAL_S"] = str(args.q2c_poll)
        print("starting concord serve and the three sandboxes", flush=True)
        world = stack.enter_context(
            estate(
                db,
                schema,
                url,
                stream,
                Path(temp_dir()),
                extra_env=env,
                kinds=(TimedErp, CapturingCrm, TimedBilling),
            )
        )
        tail: deque[str] = deque(maxlen=50)
        assert world.server.stdout is not None
        threading.Thread(target=drain, args=(world.server.stdout, tail), daemon=True).start()
        try:
            asyncio.run(measure(args, world))
        except BaseException:
            print("".join(tail), file=sys.stderr)
            raise


if __name__ == "__main__":
    main()
