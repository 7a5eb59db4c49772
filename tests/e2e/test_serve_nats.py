"""``concord serve`` as a user runs it: a real server process whose relay publishes every
command's events to NATS, and which stops cleanly on SIGINT."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import ROOT, free_port, interrupt, serve_env, start_serve, wait_healthy
from tests.integration.relay_support import stream_messages

KEY = re.compile(r"cnc_[A-Za-z0-9_-]{20,}")


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_publishes_committed_events_to_nats(
    database_url: str,
    pg_schema: str,
    nats_url: str,
    stream_name: str,
    tmp_path: Path,
    workers: int,
) -> None:
    port = free_port()
    env = serve_env(database_url, pg_schema, nats_url, stream_name, tmp_path)
    env.pop("CONCORD_TARGETS", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from api.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        key = None
        deadline = time.monotonic() + 60
        assert server.stdout is not None
        while key is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            output.append(line)
            found = KEY.search(line)
            key = found.group(0) if found else None
        assert key, "".join(output)
        banner = "".join(output)
        assert "WARNING: no delivery target is configured" in banner, banner
        assert "fix: set CONCORD_TARGETS" in banner and "erp, crm, billing" in banner
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        wait_healthy(base, deadline)
        created = httpx.post(
            f"{base}/v1/customers",
            json={"legal_name": "Relay Test Ltd"},
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        customer_id = created.json()["id"]
        messages: list[dict[str, object]] = []
        while time.monotonic() < deadline and not messages:
            messages = stream_messages(nats_url, stream_name)
            time.sleep(0.1)
        assert len(messages) == 1
        envelope = messages[0]["envelope"]
        assert isinstance(envelope, dict)
        assert envelope["aggregate_id"] == customer_id
        assert envelope["type"] == "CustomerRegistered"
        # Personal fields travel sealed with the customer's key, never in clear.
        assert str(envelope["data"]["legal_name"]).startswith("pii:v1:")
        assert "Relay Test Ltd" not in str(messages)
        # The relay runs in the parent process; an API worker (another process with
        # --workers 2) still sees it run and its lag, from PostgreSQL.
        relay: dict[str, object] = {}
        while time.monotonic() < deadline and relay.get("lag") != 0:
            health = httpx.get(f"{base}/v1/health", headers=headers, timeout=10)
            assert health.status_code == 200, health.text
            relay = health.json()["checks"]["relay"]
        assert relay["running"] is True and relay["lag"] == 0, relay
    finally:
        interrupt(server)
    assert server.returncode == 0


def test_sigterm_stops_serve_and_its_embedded_servers(tmp_path: Path) -> None:
    """`docker stop` / systemd send SIGTERM: the hub must stop the servers it started."""
    import psutil  # type: ignore[import-untyped]

    env = {
        k: v for k, v in os.environ.items() if k not in {"CONCORD_DATABASE_URL", "CONCORD_NATS_URL"}
    }
    env["CONCORD_DATA_DIR"] = str(tmp_path)
    port = free_port()
    server = start_serve(env, port, capture=True)
    assert server.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        output.append(line)
        if "Uvicorn running" in line or not line:
            break
    assert any("Uvicorn running" in line for line in output), "".join(output)

    def ours() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            mine = any(str(tmp_path) in part for part in proc.info["cmdline"] or [])
            if mine and proc.pid != server.pid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        return found

    assert ours(), "the embedded servers should be running"
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0, "".join(output) + server.stdout.read()
    deadline = time.monotonic() + 20
    while ours() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ours() == []
