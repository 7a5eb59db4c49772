"""docker-compose.yml and the ops configs it mounts: valid, complete, and durable.

No Docker engine is needed: the file is validated against the Compose specification schema
shipped inside check-jsonschema (offline), and its content is checked with PyYAML.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

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

    result = subprocess.run(
        [str(find_nats_server()), "-c", str(ROOT / "ops" / "nats" / "nats.conf"), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
