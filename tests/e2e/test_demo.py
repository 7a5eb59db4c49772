"""``concord demo --no-wait`` as a user runs it (a real process, on the test's PostgreSQL
schema and NATS stream): it plays the quarter through the three sandboxes and the hub, and its
summary shows one deal per customer in every system, every deal done or explained, the
deliberate faults and what the hub made of them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.serving import free_port, serve_env


def _counts(output: str, system: str) -> dict[str, int]:
    """The demo's "Records per system" line of ``system``: kind → count."""
    found = re.search(rf"^  {system} +((?:\w+ \d+(?:, )?)+)$", output, re.MULTILINE)
    assert found, output
    return {kind: int(n) for kind, n in re.findall(r"(\w+) (\d+)", found.group(1))}


def _demo(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "api.cli", "demo", "--no-wait", "--port", str(free_port())]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_demo_plays_a_quarter_and_reports_it(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, tmp_path: Path
) -> None:
    env = serve_env(database_url, pg_schema, nats_url, stream_name, tmp_path)
    env.pop("CONCORD_TARGETS", None)
    done = _demo(env)
    output = done.stdout
    print(output)  # shown when an assertion fails
    assert done.returncode == 0, output + done.stderr
    # 33 customers (a parent and three subsidiaries among them), one deal each but the parent.
    crm = _counts(output, "crm")
    assert crm["Account"] == 33 and crm["Opportunity"] == 32
    erp = _counts(output, "erp")
    billing = _counts(output, "billing")
    # Exactly one ERP customer per deal's account (and the parent), one sales order per deal,
    # one subscription per deal despite the 429 outage and the duplicated webhooks.
    assert erp["customer"] == 33, output
    assert erp["salesOrder"] == 32, output
    assert billing["subscription"] == 32, output
    assert billing["refund"] == 1
    assert erp["invoice"] == billing["invoice"] > 32, output  # the first, then a cycle
    # The duplicated webhooks were recorded once: Concord holds what billing holds.
    concord = _counts(output, "concord")
    assert concord["customers"] == 33 and concord["orders"] == 32, output
    assert concord["contracts"] == 32 and concord["invoices"] == billing["invoice"], output
    assert "'EUR'" in output and "'USD'" in output  # invoices in both currencies
    deals = re.search(r"deals: 32 — (.*)", output)
    assert deals is not None, output
    tally = dict((s, int(n)) for s, n in re.findall(r"(\w+) (\d+)", deals.group(1)))
    assert tally.get("done", 0) >= 30, output  # the rest are listed with their reason
    for step in ("ERP outage", "SUPPORT mapped", "failed, retried: paid", "refund:"):
        assert step in output, output
    assert "flowchart" in output  # the lineage, as mermaid
    assert re.search(r"20\d\d-\d\d\s+USD\s", output) and re.search(
        r"20\d\d-\d\d\s+EUR\s", output
    ), output
    assert "order_to_activation" in output
    # The unmapped product was in the workbench until its mapping was loaded.
    assert re.search(r"before the fix: \d+ open exception\(s\) \{[^}]*'unmapped_sku': 2", output)
    assert "Open exceptions" in output
    # Again on the same database: refused, since the sandboxes' ids would meet the old ones.
    again = _demo(env)
    assert again.returncode == 1 and "already holds data" in again.stderr, again.stderr
