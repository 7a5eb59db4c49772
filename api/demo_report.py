"""The closing summary of ``concord demo``: what the quarter did, the records each system
holds, one deal's lineage, the reconciled metrics, the SLAs and the open exceptions — all
read back from the sandboxes and Concord's public API (what an operator would look at)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import typer

from adapters.sandbox.demo_quarter import Hub, Report, Systems

#: The records counted per system (the sandboxes' own kinds).
COUNTED = {
    "crm": ("Account", "Opportunity", "OpportunityLineItem"),
    "erp": ("customer", "salesOrder", "invoice", "customerPayment"),
    "billing": ("customer", "subscription", "invoice", "payment_intent", "refund"),
}


#: Concord's own objects counted (its listing endpoints).
CONCORD = ("customers", "orders", "contracts", "invoices", "payments")


def _title(text: str) -> None:
    typer.echo()
    typer.secho(text, bold=True)


def _quarter(today: date) -> tuple[str, str]:
    first = 3 * ((today.month - 1) // 3) + 1
    return f"{today.year}-{first:02d}", f"{today.year}-{first + 2:02d}"


def print_report(report: Report, systems: Systems, hub: Hub) -> None:
    _title("What happened")
    for line in report.events:
        typer.echo(f"  - {line}")
    _title("Records per system")
    for name, kinds in COUNTED.items():
        sandbox = getattr(systems, name)
        counts = ", ".join(f"{kind} {sandbox.count(kind)}" for kind in kinds)
        typer.echo(f"  {name:<8} {counts}")
    by_currency = Counter(str(i.get("currency")).upper() for i in systems.billing.all("invoice"))
    typer.echo(f"  billing invoices by currency: {dict(sorted(by_currency.items()))}")
    held = ", ".join(f"{kind} {hub.count(kind)}" for kind in CONCORD)
    typer.echo(f"  concord  {held}")
    _deals(report)
    if report.deals:
        _lineage(hub, report.deals[0].opportunity)
    _metrics(hub)
    _slas(hub)
    _exceptions(hub)


def _deals(report: Report) -> None:
    _title("Deals")
    tally = Counter(report.statuses.get(d.opportunity, "unknown") for d in report.deals)
    typer.echo(
        f"  deals: {len(report.deals)} — " + ", ".join(f"{s} {n}" for s, n in sorted(tally.items()))
    )
    for deal in report.deals:
        status = report.statuses.get(deal.opportunity, "unknown")
        if status != "done":
            why = report.reasons.get(deal.opportunity) or "-"
            typer.echo(f"  {deal.opportunity} {status}: {why}")


def _lineage(hub: Hub, opportunity: str) -> None:
    _title(f"Lineage of deal {opportunity} (mermaid)")
    answer = hub.call("GET", f"/v1/lineage/{opportunity}", params={"format": "mermaid"})
    text = answer.text if answer.status_code == 200 else f"(lineage: {answer.status_code})"
    for line in text.splitlines():
        typer.echo(f"  {line}")


def _metrics(hub: Hub) -> None:
    start, end = _quarter(date.today())
    _title(f"Metrics {start} .. {end} (GET /v1/metrics)")
    body: dict[str, Any] = hub.json("/v1/metrics", **{"from": start, "to": end})
    columns = ("bookings", "acv", "billings", "cash", "recognised", "deferred", "receivables")
    typer.echo(f"  {'month':<8}{'cur':<5}" + "".join(f"{c:>14}" for c in columns))
    for row in body["items"]:
        cells = "".join(f"{row[c]:>14}" for c in columns)
        typer.echo(f"  {row['month']:<8}{row['currency']:<5}{cells}")
    if not body["items"]:
        typer.echo("  (no rows yet: the metrics projection has not run)")


def _slas(hub: Hub) -> None:
    _title("SLAs (GET /v1/slas)")
    body: dict[str, Any] = hub.json("/v1/slas")
    for month in body["months"]:
        figures = {k: v for k, v in month.items() if k not in ("sla", "month", "unit", "items")}
        shown = ", ".join(f"{k} {v}" for k, v in figures.items())
        typer.echo(
            f"  {month['sla']:<20} {month['month']}: {month['items']} items, {shown} "
            f"({month['unit']})"
        )
    typer.echo(f"  breaching now: {len(body['breaching'])}")


def _exceptions(hub: Hub) -> None:
    _title("Open exceptions (GET /v1/exceptions)")
    body: dict[str, Any] = hub.json("/v1/exceptions")
    typer.echo(f"  open: {body['count']} {body['counts']}")
    for group in body["groups"]:
        item = group["items"][0]
        typer.echo(
            f"  [{group['reason']}] {group['object']['kind']} {group['object']['id']}: "
            f"{item['summary']} ({group['count']})"
        )
