"""docker-compose.yml and the ops configs it mounts: valid, complete, and durable.

No Docker engine is needed: the file is validated against the Compose specification schema
shipped inside check-jsonschema (offline), and its content is checked with PyYAML.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from adapters.nats.identities import Scope, permissions

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_matches_compose_spec() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_and_wiring() -> None:
    services = _compose()["services"]
    assert {"postgres", "nats", "hub"} <= set(services)
    hub = services["hub"]
    assert hub["build"] == "."
    assert hub["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert hub["depends_on"]["nats"]["condition"] == "service_healthy"
    for key in ("CONCORD_DATABASE_URL", "CONCORD_NATS_URL", "CONCORD_API_KEYS"):
        assert key in hub["environment"]
    # NATS authenticates the hub's two identities with the passwords the server is given.
    nats_env = services["nats"]["environment"]
    for role in ("RELAY", "SUBSCRIBER"):
        assert hub["environment"][f"CONCORD_NATS_{role}_USER"] == f"concord-{role.lower()}"
        password = hub["environment"][f"CONCORD_NATS_{role}_PASSWORD"]
        assert password.startswith(f"${{CONCORD_NATS_{role}_PASSWORD:?")
        assert nats_env[f"NATS_{role}_PASSWORD"] == password
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["nats"]


def test_nats_config_is_mounted_and_durable() -> None:
    nats = _compose()["services"]["nats"]
    assert any(v.startswith("./ops/nats/nats.conf:") for v in nats["volumes"])
    image_version = nats["image"].split(":")[1].split("-")[0]
    assert tuple(int(p) for p in image_version.split(".")[:2]) >= (2, 12)
    conf = (ROOT / "ops" / "nats" / "nats.conf").read_text()
    assert "sync_interval: always" in conf
    assert "jetstream" in conf


def test_nats_config_is_accepted_by_nats_server() -> None:
    from adapters.embedded import find_nats_server

    def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(find_nats_server()), "-c", str(ROOT / "ops" / "nats" / "nats.conf"), "-t"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )

    passwords = {"NATS_RELAY_PASSWORD": "r", "NATS_SUBSCRIBER_PASSWORD": "s"}
    result = check({**os.environ, **passwords})
    assert result.returncode == 0, result.stdout + result.stderr
    # Without the passwords the server refuses to start rather than run open.
    unset = {k: v for k, v in os.environ.items() if k not in passwords}
    assert "NATS_RELAY_PASSWORD" in check(unset).stderr


def test_nats_config_grants_what_concord_grants_each_identity() -> None:
    """The relay alone publishes events; the subscriber identity is consume-only: the
    permissions in ops/nats/nats.conf are exactly those of adapters/nats/identities.py."""
    conf = (ROOT / "ops" / "nats" / "nats.conf").read_text()
    granted = {
        user: json.loads(found)
        for user, found in re.findall(
            r'"user": "([\w-]+)".*?\n\s*"permissions": (\{.*\})\}\n', conf
        )
    }
    assert granted == {
        "concord-relay": permissions("relay", Scope()),
        "concord-subscriber": permissions("subscriber", Scope()),
    }
