"""Running ``concord serve`` as a real process, for the tests that need one."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def start_serve(
    env: dict[str, str], port: int, *, capture: bool, args: list[str] | None = None
) -> subprocess.Popen[str]:
    """``concord serve --port`` from this checkout; output piped (``capture``) or dropped."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from api.cli import main; main()",
            "serve",
            "--port",
            str(port),
            *(args or []),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if capture else subprocess.DEVNULL,
        text=True,
    )


def free_port() -> int:
    """A free port below the kernel's ephemeral range, for a server started later.

    Why not port 0's answer: that port is free again once the probe closes, and anything
    that binds port 0 meanwhile (a sandbox of the same test, any client's outgoing
    connection) may be handed the very same one, so the hub started after them found its
    port taken. Ports below the ephemeral range are never handed out that way."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 20_000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def serve_env(
    database_url: str, pg_schema: str, nats_url: str, stream_name: str, data_dir: Path
) -> dict[str, str]:
    """The environment of a hub on this test's schema, stream and data folder."""
    return dict(
        os.environ,
        CONCORD_DATABASE_URL=database_url,
        CONCORD_SCHEMA=pg_schema,
        CONCORD_NATS_URL=nats_url,
        CONCORD_NATS_STREAM=stream_name,
        CONCORD_NATS_SUBJECT_PREFIX=stream_name.lower(),
        CONCORD_DATA_DIR=str(data_dir),
    )


def wait_healthy(base: str, deadline: float) -> bool:
    """Poll ``/v1/health`` until it answers 200 or ``deadline`` (monotonic) passes."""
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


def interrupt(server: subprocess.Popen[str]) -> None:
    """Stop it as a user would (Ctrl-C), killing it only if it does not stop in 30 s."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
