"""A quarter of quote-to-cash, played against the three sandboxes and a running hub.

What ``concord demo`` shows: 33 customers (Globex Holdings with three subsidiaries), one deal
each — implementation fee (one-time), platform licence (recurring, 12/24/36-month terms) and
API overage (usage), in USD or EUR — won in the CRM; an ERP outage of 429s while the first
deals arrive; a product nobody mapped (premium support) that holds its deals until the
mapping is loaded halfway; a billing cycle with usage, one payment failing then retried, a
duplicated billing webhook; an upgrade, a downgrade, a renewal and a cancellation made in
billing; a line change in the CRM after the order was placed; a refund.

Why a plain script over the sandboxes' own APIs (the CRM's UI helpers, Stripe's REST API,
billing's ``/_admin/bill``) and Concord's public API: it is what an operator could do by
hand, so the demo proves the hub, not a shortcut into it. Deterministic: no randomness, every
quantity and date follows from the deal's index and today's quarter.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx

from adapters.sandbox.billing import BillingSandbox
from adapters.sandbox.crm import CrmSandbox
from adapters.sandbox.erp import ErpSandbox

__all__ = [
    "PRODUCTS",
    "Hub",
    "Quarter",
    "Report",
    "Systems",
    "catalogue_entry",
    "erp_items",
    "play_quarter",
]

#: SKU → (name, charge type, ERP item id, price per currency: per seat and year for the
#: licence, per call for usage, once for the fee).
PRODUCTS: dict[str, tuple[str, str, str, dict[str, str]]] = {
    "IMPL": ("Implementation", "one_time", "7001", {"USD": "15000.00", "EUR": "14000.00"}),
    "PLAT": ("Platform licence", "recurring", "7002", {"USD": "1200.00", "EUR": "1080.00"}),
    "API": ("API overage", "usage", "7003", {"USD": "0.05", "EUR": "0.04"}),
    "SUPPORT": ("Premium support", "recurring", "7004", {"USD": "2400.00", "EUR": "2160.00"}),
}
#: The product the catalogue lacks at first: its deals wait until it is mapped.
UNMAPPED = "SUPPORT"
SF_CHARGE = {"one_time": "One-Time", "recurring": "Recurring", "usage": "Usage"}
FINISHED = frozenset({"done", "rejected", "cancelled", "failed", "on_hold"})

#: Customers: (name, currency, parent index or None). Index 0 is the parent of 1-3.
CUSTOMERS: list[tuple[str, str, int | None]] = [
    ("Globex Holdings", "USD", None),
    ("Globex US", "USD", 0),
    ("Globex Deutschland", "EUR", 0),
    ("Globex France", "EUR", 0),
    *[
        (name, "EUR" if i % 3 == 1 else "USD", None)
        for i, name in enumerate(
            [
                "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
                "Acme", "Soylent", "Tyrell", "Cyberdyne", "Massive Dynamic", "Aperture",
                "Vandelay", "Wonka", "Oscorp", "Gringotts", "Monarch", "Nakatomi",
                "Pied Piper", "Dunder Mifflin", "Bluth", "Prestige", "Virtucon",
                "Gekko", "Rekall", "Zorg", "Oceanic", "Duff", "Krusty", "Sirius",
            ]
        )
    ],
]  # fmt: skip


def erp_items() -> dict[str, str]:
    """The ERP's item master (internal id → item name) the sandbox is seeded with."""
    return {item: sku for sku, (_, _, item, _) in PRODUCTS.items()}


@dataclass
class Hub:
    """Concord's API as the demo calls it (an admin key)."""

    base: str
    key: str

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, f"{self.base}{path}", headers=headers, timeout=30, **kw)

    def count(self, collection: str) -> int:
        """How many ``collection`` Concord holds (every page of its listing)."""
        total, path = 0, f"/v1/{collection}?limit=500"
        while path:
            answer = self.call("GET", path)
            answer.raise_for_status()
            page = answer.json()
            total += len(page["items"])
            path = page["next"]
        return total

    def json(self, path: str, **params: Any) -> Any:
        answer = self.call("GET", path, params=params)
        answer.raise_for_status()
        return answer.json() if "json" in answer.headers.get("content-type", "") else answer.text


@dataclass
class Systems:
    """The three sandboxes (objects served in this process) and their base URLs."""

    erp: ErpSandbox
    crm: CrmSandbox
    billing: BillingSandbox
    billing_url: str
    billing_key: str


@dataclass
class Deal:
    opportunity: str
    customer: str
    currency: str
    term_months: int
    seats: int
    skus: list[str]
    lines: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    """What the quarter did, for the closing summary (and the test)."""

    deals: list[Deal] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def note(self, line: str) -> None:
        self.events.append(line)


Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: a step's count moved (the CLI draws it)."""


class Quarter:
    """The scenario. ``play()`` runs it; each step reports through ``progress``."""

    def __init__(
        self, systems: Systems, hub: Hub, progress: Progress, *, timeout: float = 90
    ) -> None:
        self.s = systems
        self.hub = hub
        self.progress = progress
        self.timeout = timeout
        self.report = Report()
        self.crm_products: dict[str, str] = {}
        self.prices: dict[tuple[str, str], str] = {}
        self.changes: list[tuple[str, Deal]] = []
        today = date.today()
        self.quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        self.today = today
        self._billing = httpx.Client(
            base_url=systems.billing_url,
            headers={"Authorization": f"Bearer {systems.billing_key}"},
            timeout=30,
        )

    # --- the quarter -------------------------------------------------------------------------
    def play(self) -> Report:
        self.seed()
        accounts = self.customers()
        deals = self.plan(accounts)
        half = len(deals) // 2
        # The ERP is rate-limited (429 for a few seconds) while the first half arrives.
        self.s.erp.faults.add({"kind": "outage", "seconds": 4, "status": 429, "retry_after": 1})
        self.report.note("ERP outage: every call answered 429 for 4 s while deals arrived")
        self.win(deals[:half], "deals won (first half)")
        self.settle(deals[:half], "deals through the loop (first half)")
        refused = sum(1 for call in list(self.s.erp.calls) if call.status == 429)
        self.report.note(f"the ERP answered {refused} call(s) 429; the connector retried them")
        self.map_unmapped()
        self.win(deals[half:], "deals won (second half)")
        self.settle(deals, "deals through the loop (all)")
        self.billing_cycle(deals)
        self.amendments(deals)
        self.refund(deals)
        self.drain()
        self.settle(deals, "deals settled after the changes")
        self.verify()
        return self.report

    def seed(self) -> None:
        """The catalogue in the CRM (products, prices per currency), billing (products and
        monthly prices per currency) and Concord (mappings) — all but the unmapped SKU."""
        skus = list(PRODUCTS)
        for done, sku in enumerate(skus, 1):
            name, charge, _, by_currency = PRODUCTS[sku]
            self.crm_products[sku] = self.s.crm.create_product(
                name, sku, prices=by_currency, charge_type=SF_CHARGE[charge]
            )
            if charge != "one_time":
                self._billing_prices(sku, name, charge, by_currency)
            if sku != UNMAPPED:
                self._map(sku)
            self.progress("catalogue seeded (CRM, billing, Concord)", done, len(skus))
        self.report.note(
            f"catalogue: {len(skus)} products; {UNMAPPED} deliberately left unmapped in Concord"
        )

    def _billing_prices(self, sku: str, name: str, charge: str, prices: dict[str, str]) -> None:
        product = self._stripe("POST", "/v1/products", {"name": name, "metadata[sku]": sku})
        for currency, price in prices.items():
            minor = Decimal(price) * 100  # USD and EUR: two decimals
            form = {
                "product": product["id"],
                "currency": currency.lower(),
                "recurring[interval]": "month",
                "metadata[sku]": sku,
            }
            if charge == "usage":
                form["recurring[usage_type]"] = "metered"
                form["unit_amount_decimal"] = str(minor.normalize())
            else:  # the CRM's price is per seat and year
                form["unit_amount"] = str((minor / 12).quantize(Decimal(1)))
            self.prices[(sku, currency)] = self._stripe("POST", "/v1/prices", form)["id"]

    def _map(self, sku: str) -> None:
        _, charge, item, by_currency = PRODUCTS[sku]
        billing = [self.prices[(sku, c)] for c in by_currency if (sku, c) in self.prices]
        body = catalogue_entry(charge, self.crm_products[sku], item, billing)
        answer = self.hub.call("PUT", f"/v1/mappings/{sku}", json=body)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"mapping {sku} refused: {answer.text}")

    def customers(self) -> list[tuple[str, str]]:
        """Accounts in the CRM, parents first: (account id, currency)."""
        made: list[tuple[str, str]] = []
        for done, (name, currency, parent) in enumerate(CUSTOMERS, 1):
            slug = name.lower().replace(" ", "-")
            account = self.s.crm.create_account(
                name,
                parent_id=None if parent is None else made[parent][0],
                website=f"https://{slug}.example",
                currency=currency,
            )
            made.append((account, currency))
            self.progress("customers created in the CRM", done, len(CUSTOMERS))
        self.report.note(
            f"customers: {len(made)} accounts, {CUSTOMERS[0][0]} the parent of "
            f"{sum(1 for c in CUSTOMERS if c[2] == 0)}"
        )
        return made

    def plan(self, accounts: list[tuple[str, str]]) -> list[Deal]:
        """One deal per customer but the holding (it buys through its subsidiaries)."""
        deals = []
        for i, (account, currency) in enumerate(accounts[1:]):
            skus = ["PLAT", "API"] + (["IMPL"] if i % 3 != 2 else [])
            if i % 8 == 5:
                skus.append(UNMAPPED)
            term = 1 if i == 7 else (12, 24, 36)[i % 3]  # deal 7: a monthly pilot that renews
            deal = Deal("", account, currency, term, seats=5 + (i * 7) % 40, skus=skus)
            deals.append(deal)
        return deals

    def win(self, deals: list[Deal], step: str) -> None:
        days = max((self.today - self.quarter_start).days, 1)
        for done, deal in enumerate(deals, 1):
            index = len(self.report.deals)
            close = self.quarter_start + timedelta(days=(index * days) // len(CUSTOMERS))
            if deal.term_months == 1:  # the pilot started a week ago: renewed by its next bill
                close = self.today - timedelta(days=7)
            name = f"{self.s.crm.get('Account', deal.customer)['Name']} {deal.term_months}m"
            crm = self.s.crm
            deal.opportunity = crm.create_opportunity(
                deal.customer,
                name,
                close_date=close.isoformat(),
                currency=deal.currency,
                term_months=deal.term_months,
            )
            for sku in deal.skus:
                _, charge, _, prices = PRODUCTS[sku]
                quantity = {"PLAT": deal.seats, "API": 20_000, "IMPL": 1}.get(sku, 1)
                price = None  # the list price; a recurring line is priced over the whole term
                if charge == "recurring":
                    yearly = Decimal(prices[deal.currency])
                    price = (yearly * deal.term_months / 12).quantize(Decimal("0.01"))
                deal.lines[sku] = crm.add_line(
                    deal.opportunity,
                    self.crm_products[sku],
                    quantity=quantity,
                    unit_price=price,
                    service_date=close.isoformat(),
                )
            crm.win(deal.opportunity)
            self.report.deals.append(deal)
            self.progress(step, done, len(deals))
        currencies = Counter(d.currency for d in deals)
        self.report.note(
            f"{step}: {len(deals)} ({', '.join(f'{n} {c}' for c, n in sorted(currencies.items()))})"
        )

    def settle(self, deals: list[Deal], step: str) -> None:
        """Wait until each deal's process has finished, or waits on something named."""
        deadline = time.monotonic() + self.timeout
        while True:
            finished = 0
            for deal in deals:
                status, reason = self.status(deal)
                self.report.statuses[deal.opportunity] = status
                self.report.reasons[deal.opportunity] = reason or "-"
                if status in FINISHED or (UNMAPPED in deal.skus and status == "held"):
                    finished += 1
            self.progress(step, finished, len(deals))
            if finished == len(deals) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        tally = Counter(self.report.statuses[d.opportunity] for d in deals)
        self.report.note(f"{step}: {dict(sorted(tally.items()))}")

    def status(self, deal: Deal) -> tuple[str, str | None]:
        """The deal's process status and why it is not done (None when it is)."""
        answer = self.hub.call("GET", f"/v1/processes/{deal.opportunity}")
        if answer.status_code == 404:  # no order yet: held inbound (unmapped product)
            return "held", "no order placed yet (held in inbound: a product has no mapping)"
        answer.raise_for_status()
        found = answer.json()
        status = str(found["status"])
        return status, None if status == "done" else found.get("reason")

    def map_unmapped(self) -> None:
        waiting = [d for d in self.report.deals if UNMAPPED in d.skus]
        # Their deals are held for the missing mapping (the workbench lists them) first.
        deadline = time.monotonic() + self.timeout
        stuck = self.hub.json("/v1/exceptions")
        while stuck["counts"].get("unmapped_sku", 0) < len(waiting):
            if time.monotonic() > deadline:
                break
            time.sleep(0.3)
            stuck = self.hub.json("/v1/exceptions")
        self.report.note(
            f"before the fix: {stuck['count']} open exception(s) {stuck['counts']} in the "
            f"workbench for the {len(waiting)} deal(s) using {UNMAPPED}"
        )
        self._map(UNMAPPED)
        self.progress(f"mapping of {UNMAPPED} loaded", 1, 1)
        self.report.note(
            f"halfway: {UNMAPPED} mapped in Concord; {len(waiting)} deal(s) holding on it released"
        )

    # --- billing -----------------------------------------------------------------------------
    def subscription(self, deal: Deal) -> dict[str, Any] | None:
        """A copy of the deal's billing subscription (the sandbox's records are live)."""
        with self.s.billing.lock:
            for sub in self.s.billing.all("subscription"):
                if sub.get("metadata", {}).get("sf_opportunity_id") == deal.opportunity:
                    return copy.deepcopy(sub)
        return None

    def billing_cycle(self, deals: list[Deal]) -> None:
        """One monthly cycle of every running subscription, with usage; the first bill's
        payment fails and is retried; two webhooks are sent twice."""
        running = [(d, s) for d in deals if (s := self.subscription(d)) is not None]
        self.s.billing.faults.add({"kind": "duplicate_webhook", "count": 2})
        self.report.note("billing: the next 2 webhooks sent twice (duplicate_webhook)")
        failed = None
        for done, (deal, sub) in enumerate(running, 1):
            usage_price = self.prices[("API", deal.currency)]
            calls = 10_000 + 2_500 * (done % 7)
            body: dict[str, Any] = {"subscription": sub["id"], "usage": {usage_price: calls}}
            if failed is None:
                body["fail_payment"] = True
            answer = self._admin("/_admin/bill", body)
            if failed is None and answer.get("invoice"):
                failed = (deal, answer["invoice"]["id"])
            self.progress("billing cycle (/_admin/bill, with usage)", done, len(running))
        self.report.note(f"billing cycle: {len(running)} subscriptions invoiced with usage")
        if failed is not None:
            deal, invoice = failed
            retried = self._admin("/_admin/retry_payment", {"invoice": invoice})["invoice"]
            self.report.note(
                f"payment of invoice {invoice} ({deal.opportunity}) failed, retried: "
                f"{retried['status']}"
            )
            self.progress("failed payment retried", 1, 1)

    def amendments(self, deals: list[Deal]) -> None:
        """Upgrade, downgrade, renewal and cancellation in billing; a CRM line change (what
        Concord made of each: :meth:`verify`)."""
        running = [(d, s) for d in deals if (s := self.subscription(d)) is not None]
        plans = [(d, s) for d, s in running if d.term_months > 1]
        if len(plans) < 3:
            self.report.note("amendments: too few running subscriptions, skipped")
            return
        for (deal, sub), (change, factor) in zip(
            plans[:2], (("upgrade", 2), ("downgrade", 0.5)), strict=True
        ):
            item = self._licence(sub, deal)
            seats = max(1, int(item["quantity"] * factor))
            self._stripe(
                "POST",
                f"/v1/subscriptions/{sub['id']}",
                {
                    "items[0][id]": item["id"],
                    "items[0][quantity]": str(seats),
                    "proration_behavior": "create_prorations",
                },
            )
            self.report.note(
                f"{change} in billing: {deal.opportunity} {item['quantity']} → {seats} seats"
            )
            self.changes.append((change, deal))
        deal, sub = plans[2]
        self._stripe("DELETE", f"/v1/subscriptions/{sub['id']}", {})
        self.report.note(f"cancellation in billing: {deal.opportunity} subscription cancelled")
        self.changes.append(("cancellation", deal))
        pilot = next(((d, s) for d, s in running if d.term_months == 1), None)
        if pilot is not None:
            self.report.note(
                f"renewal: {pilot[0].opportunity} is a 1-month pilot; its billing cycle "
                "carried it past its term end (renewed by billing)"
            )
            self.changes.append(("renewal", pilot[0]))
        deal = plans[3][0] if len(plans) > 3 else plans[0][0]
        line = deal.lines["PLAT"]
        self.s.crm.update("OpportunityLineItem", line, {"Quantity": Decimal(deal.seats + 5)})
        self.report.note(f"CRM line change after the order: {deal.opportunity} +5 seats")
        self.changes.append(("CRM line change", deal))
        self.progress("upgrade, downgrade, cancellation, renewal, CRM change", 1, 1)

    def _licence(self, sub: dict[str, Any], deal: Deal) -> dict[str, Any]:
        """The subscription's licence item (a PLAT price; else its first licensed item)."""
        mine = {self.prices[("PLAT", currency)] for currency in PRODUCTS["PLAT"][3]}
        licensed = [
            i for i in sub["items"]["data"] if i["price"]["recurring"]["usage_type"] != "metered"
        ]
        return next((i for i in licensed if i["price"]["id"] in mine), licensed[0])

    def refund(self, deals: list[Deal]) -> None:
        """A partial refund of one paid invoice."""
        for deal in deals:
            sub = self.subscription(deal)
            if sub is None:
                continue
            paid = [
                pi
                for pi in self.s.billing.all("payment_intent")
                if pi.get("customer") == sub["customer"] and pi.get("status") == "succeeded"
            ]
            if paid:
                amount = max(1, int(paid[0]["amount"]) // 10)
                self._stripe(
                    "POST", "/v1/refunds", {"payment_intent": paid[0]["id"], "amount": str(amount)}
                )
                self.report.note(
                    f"refund: {amount / 100:.2f} {deal.currency} of {paid[0]['id']} "
                    f"({deal.opportunity})"
                )
                self.progress("refund", 1, 1)
                return

    def verify(self) -> None:
        """What Concord's contract of each changed deal says now (the change went through,
        or visibly did not)."""
        for change, deal in self.changes:
            found = self.hub.call("GET", f"/v1/processes/{deal.opportunity}")
            contract_id = found.json().get("contract_id") if found.status_code == 200 else None
            if not contract_id:
                self.report.note(f"after the {change}: {deal.opportunity} has no contract")
                continue
            answer = self.hub.call("GET", f"/v1/contracts/{contract_id}")
            state = answer.json().get("state", {}) if answer.status_code == 200 else {}
            seats = [i.get("quantity") for i in state.get("items", []) if i.get("sku") == "PLAT"]
            self.report.note(
                f"after the {change}: Concord's contract of {deal.opportunity} is "
                f"{state.get('status')}, {seats[0] if seats else '?'} seats, term end "
                f"{state.get('term_end')}"
                + (
                    f", cancelled from {state['cancellation_date']}"
                    if state.get("cancellation_date")
                    else ""
                )
            )

    def drain(self) -> None:
        """Until every sandbox has sent its webhooks (Concord has them)."""
        deadline = time.monotonic() + self.timeout
        systems = (self.s.erp, self.s.crm, self.s.billing)
        while time.monotonic() < deadline and any(s.webhooks.pending for s in systems):
            time.sleep(0.2)
        # Every invoice billing issued (duplicated webhooks included) is Concord's once.
        while time.monotonic() < deadline and self.hub.count("invoices") < self.s.billing.count(
            "invoice"
        ):
            time.sleep(0.5)
        time.sleep(1.0)  # the last webhooks' effects reach the read models

    # --- wire helpers ------------------------------------------------------------------------
    def _stripe(self, method: str, path: str, form: dict[str, str]) -> dict[str, Any]:
        answer = self._billing.request(method, path, data=form if method == "POST" else None)
        if answer.status_code >= 400:
            raise RuntimeError(f"billing {method} {path}: {answer.status_code} {answer.text}")
        result: dict[str, Any] = answer.json()
        return result

    def _admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self._billing.post(path, json=body)
        if answer.status_code >= 400:
            raise RuntimeError(f"billing {path}: {answer.status_code} {answer.text}")
        result: dict[str, Any] = answer.json()
        return result


def play_quarter(systems: Systems, hub: Hub, progress: Progress) -> Report:
    """Play the quarter (see the module's docstring) and say what happened."""
    return Quarter(systems, hub, progress).play()


def catalogue_entry(
    charge: str, crm_product: str, erp_item: str, billing_prices: list[str]
) -> dict[str, Any]:
    """The ``PUT /v1/mappings/<sku>`` body of a product the three systems hold: its CRM
    product, ERP item and billing prices (one per currency; none for a one-time fee, which
    the ERP invoices), billed monthly unless it is one-time."""
    ids: dict[str, list[str]] = {"crm_product_ids": [crm_product], "erp_item_ids": [erp_item]}
    if billing_prices:
        ids["billing_price_ids"] = billing_prices
    body: dict[str, Any] = {"charge_type": charge, "ids": ids}
    if charge != "one_time":
        body["billing_period"] = "month"
    return body
