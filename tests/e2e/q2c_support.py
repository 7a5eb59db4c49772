"""A whole estate for quote-to-cash tests: the three sandboxes (CRM, ERP, billing) served in
this process, and ``concord serve`` as a real process wired to them — its connectors pointed
at the sandboxes, the sandboxes' pushes pointed at its webhooks, signed both ways."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from adapters.sandbox.base import Running, serve_in_thread
from adapters.sandbox.billing import BillingSandbox
from adapters.sandbox.crm import CrmSandbox
from adapters.sandbox.demo_quarter import catalogue_entry
from adapters.sandbox.erp import ErpSandbox
from tests.e2e.serving import ROOT, free_port, interrupt, serve_env, start_serve, wait_healthy

NETSUITE_SECRET = "ns_q2c_secret"
SALESFORCE_SECRET = "sf_q2c_secret"
STRIPE_SECRET = "whsec_q2c_secret"
STRIPE_KEY = "sk_test_q2c"
KEY = re.compile(r"cnc_[A-Za-z0-9_-]{20,}")

#: The catalogue of the estate: SKU → (charge type, ERP item id, price per currency).
PRODUCTS: dict[str, tuple[str, str, dict[str, str]]] = {
    "SETUP": ("one_time", "7001", {"USD": "1500.00", "EUR": "1400.00"}),
    # Per seat over a 12-month term: a whole monthly price in both currencies (100, 90).
    "SEATS": ("recurring", "7002", {"USD": "1200.00", "EUR": "1080.00"}),
    "API": ("usage", "7003", {"USD": "0.05", "EUR": "0.04"}),
}
#: Products every system holds but the catalogue maps only to the CRM at first (a product
#: launched before anyone told Concord its ERP item and billing price): ``Estate.map``.
LATE: dict[str, tuple[str, str, dict[str, str]]] = {
    "PREMIUM": ("recurring", "7004", {"USD": "2400.00", "EUR": "2160.00"}),
}
_ALL = {**PRODUCTS, **LATE}


@dataclass
class Service:
    """One separately run part of Concord and what it printed."""

    args: tuple[str, ...]
    process: subprocess.Popen[str]
    output: list[str]

    def kill9(self) -> None:
        """``kill -9``: no signal handler, no cleanup, whatever was in flight stays so."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@dataclass
class Estate:
    erp: Running
    crm: Running
    billing: Running
    base: str
    key: str
    server: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    crm_products: dict[str, str] = field(default_factory=dict)
    prices: dict[tuple[str, str], str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    services: list[Service] = field(default_factory=list)

    def start(self, *args: str) -> Service:
        """``concord <args>`` as a process of its own on the estate's environment (the
        parts ``--without`` left out of serve: ``subscribe``, ``process run``)."""
        process = subprocess.Popen(
            [sys.executable, "-c", "from api.cli import main; main()", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        service = Service(args, process, [])
        drain(process, service.output)
        self.services.append(service)
        return service

    def stop_services(self) -> None:
        for service in self.services:
            if service.process.poll() is None:
                interrupt(service.process)

    @property
    def crm_sandbox(self) -> CrmSandbox:
        assert isinstance(self.crm.sandbox, CrmSandbox)
        return self.crm.sandbox

    @property
    def erp_sandbox(self) -> ErpSandbox:
        assert isinstance(self.erp.sandbox, ErpSandbox)
        return self.erp.sandbox

    @property
    def billing_sandbox(self) -> BillingSandbox:
        assert isinstance(self.billing.sandbox, BillingSandbox)
        return self.billing.sandbox

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}", **kw.pop("headers", {})}
        return httpx.request(method, f"{self.base}{path}", headers=headers, timeout=30, **kw)

    def map(self, sku: str) -> httpx.Response:
        """``PUT /v1/mappings/<sku>``: the SKU's id in every system."""
        charge, item, by_currency = _ALL[sku]
        priced = [self.prices[(sku, c)] for c in by_currency if (sku, c) in self.prices]
        body = catalogue_entry(charge, self.crm_products[sku], item, priced)
        answer = self.api("PUT", f"/v1/mappings/{sku}", json=body)
        assert answer.status_code in (200, 201), answer.text
        return answer

    def process(self, any_id: str) -> dict[str, Any] | None:
        answer = self.api("GET", f"/v1/processes/{any_id}")
        return answer.json() if answer.status_code == 200 else None

    def wait(self, check: Callable[[], Any], what: str, deal: str, timeout: float = 60) -> Any:
        """``wait_until``; on a timeout, what each part holds (for the failure report)."""
        try:
            return wait_until(check, what, timeout)
        except AssertionError as late:
            raise AssertionError(f"{late}\n{self.explain(deal)}") from None

    def explain(self, deal: str) -> str:
        lines = [f"process: {self.process(deal)}"]
        for name, running in (("crm", self.crm), ("erp", self.erp), ("billing", self.billing)):
            hooks = [
                (d.type, d.status, d.error) for d in running.sandbox.webhooks.deliveries.values()
            ]
            records = {k: len(v) for k, v in running.sandbox.records.items()}
            calls = [(c.method, c.path, c.status) for c in running.sandbox.calls]
            lines += [
                f"{name} records {records}",
                f"{name} calls {calls[-20:]}",
                f"{name} webhooks {hooks[-20:]}",
            ]
        lines.append(f"held: {self.api('GET', '/v1/inbound/held').text[:2000]}")
        lines.append(f"exceptions: {self.api('GET', '/v1/exceptions').text[:3000]}")
        lines.append("serve output (last lines):\n" + "".join(self.output[-40:]))
        for service in self.services:
            tail = "".join(service.output[-30:])
            lines.append(f"{' '.join(service.args)} output (last lines):\n{tail}")
        return "\n".join(lines)

    def deal(
        self,
        account: str,
        name: str,
        *,
        currency: str = "USD",
        seats: int = 10,
        usage: int = 1000,
        setup: bool = True,
        close_date: str = "2026-01-15",
        term_months: int = 12,
        extra: dict[str, int] | None = None,
    ) -> str:
        """An opportunity with its lines in the CRM sandbox, won (the CDC goes to Concord)."""
        crm = self.crm_sandbox
        opportunity = crm.create_opportunity(
            account, name, close_date=close_date, currency=currency, term_months=term_months
        )
        crm.add_line(
            opportunity, self.crm_products["SEATS"], quantity=seats, service_date="2026-02-01"
        )
        crm.add_line(opportunity, self.crm_products["API"], quantity=usage)
        if setup:
            crm.add_line(opportunity, self.crm_products["SETUP"], quantity=1)
        for sku, quantity in (extra or {}).items():
            crm.add_line(
                opportunity, self.crm_products[sku], quantity=quantity, service_date="2026-02-01"
            )
        crm.win(opportunity)
        return opportunity


def drain(process: subprocess.Popen[str], into: list[str]) -> threading.Thread:
    """Read a process's piped output into ``into`` until it ends: a pipe nobody reads fills
    (64 KiB of retry warnings under faults) and the process blocks on its next log line."""

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            into.append(line)

    thread = threading.Thread(target=pump, name=f"drain-{process.pid}", daemon=True)
    thread.start()
    return thread


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def _seed_billing(billing: Running) -> dict[tuple[str, str], str]:
    """Products and monthly prices in the billing sandbox (recurring and usage SKUs)."""
    prices: dict[tuple[str, str], str] = {}
    auth = {"Authorization": f"Bearer {STRIPE_KEY}"}
    with httpx.Client(base_url=billing.url, headers=auth, timeout=10) as http:
        for sku, (charge, _, by_currency) in _ALL.items():
            if charge == "one_time":
                continue
            product = http.post("/v1/products", data={"name": sku, "metadata[sku]": sku})
            assert product.status_code == 200, product.text
            for currency, price in by_currency.items():
                minor = Decimal(price) * 100  # USD and EUR: two decimals
                form = {
                    "product": product.json()["id"],
                    "currency": currency.lower(),
                    "recurring[interval]": "month",
                }
                if charge == "usage":
                    form["recurring[usage_type]"] = "metered"
                    form["unit_amount_decimal"] = str(minor.normalize())
                else:  # the CRM's price is per seat over the 12-month term
                    form["unit_amount"] = str((minor / 12).quantize(Decimal(1)))
                made = http.post("/v1/prices", data=form)
                assert made.status_code == 200, made.text
                prices[(sku, currency)] = made.json()["id"]
    return prices


def _catalogue(estate: Estate) -> None:
    """The product catalogue: every system's id of each SKU (a billing price per currency:
    the Stripe connector picks the one in the contract's currency); the ``LATE`` products
    by their CRM id only."""
    for sku in PRODUCTS:
        estate.map(sku)
    for sku, (charge, _, _) in LATE.items():
        body: dict[str, Any] = {
            "charge_type": charge,
            "ids": {"crm_product_ids": [estate.crm_products[sku]]},
            "billing_period": "month",
        }
        answer = estate.api("PUT", f"/v1/mappings/{sku}", json=body)
        assert answer.status_code in (200, 201), answer.text


@contextmanager
def estate(
    database_url: str,
    pg_schema: str,
    nats_url: str,
    stream_name: str,
    data_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    without: str = "",
    kinds: tuple[type[ErpSandbox], type[CrmSandbox], type[BillingSandbox]] = (
        ErpSandbox,
        CrmSandbox,
        BillingSandbox,
    ),
) -> Iterator[Estate]:
    """``kinds``: the sandbox classes (the benchmark passes subclasses that time their
    calls and stamp the records it waits for)."""
    port = free_port()
    hooks = f"http://127.0.0.1:{port}/v1/webhooks"
    erp_kind, crm_kind, billing_kind = kinds
    erp = erp_kind(secret=NETSUITE_SECRET, items={item: sku for sku, (_, item, _) in _ALL.items()})
    crm = crm_kind(SALESFORCE_SECRET)
    billing = billing_kind(STRIPE_SECRET, STRIPE_KEY, webhook_url=f"{hooks}/stripe")
    erp.webhooks.configure(f"{hooks}/netsuite")
    crm.webhooks.configure(f"{hooks}/salesforce")
    with ExitStack() as stack:
        running = [stack.enter_context(serve_in_thread(s)) for s in (erp, crm, billing)]
        env = serve_env(database_url, pg_schema, nats_url, stream_name, data_dir)
        env.pop("CONCORD_TARGETS", None)
        env.update(
            CONCORD_NETSUITE_URL=running[0].url,
            CONCORD_SALESFORCE_URL=running[1].url,
            CONCORD_SALESFORCE_TOKEN="00D_sandbox_token",
            CONCORD_STRIPE_URL=running[2].url,
            CONCORD_STRIPE_API_KEY=STRIPE_KEY,
            CONCORD_WEBHOOK_SECRETS=(
                f"netsuite={NETSUITE_SECRET},salesforce={SALESFORCE_SECRET},stripe={STRIPE_SECRET}"
            ),
            CONCORD_PROJECTION_POLL_INTERVAL_S="0.2",
        )
        env.update(extra_env or {})
        extra = ["--without", without] if without else []
        server = start_serve(env, port, capture=True, args=extra)
        output: list[str] = []
        stack.callback(interrupt, server)
        key = None
        deadline = time.monotonic() + 90
        assert server.stdout is not None
        while key is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                break
            output.append(line)
            found = KEY.search(line)
            key = found.group(0) if found else None
        assert key, "".join(output)
        base = f"http://127.0.0.1:{port}"
        assert wait_healthy(base, deadline), "".join(output)
        world = Estate(
            running[0],
            running[1],
            running[2],
            base=base,
            key=key,
            server=server,
            output=output,
            env=env,
        )
        drain(server, output)
        stack.callback(world.stop_services)
        for sku, (charge, _, by_currency) in _ALL.items():
            world.crm_products[sku] = crm.create_product(
                sku, sku, prices=by_currency, charge_type=_sf_charge(charge)
            )
        world.prices = _seed_billing(running[2])
        _catalogue(world)
        yield world


def _sf_charge(charge: str) -> str:
    return {"one_time": "One-Time", "recurring": "Recurring", "usage": "Usage"}[charge]
