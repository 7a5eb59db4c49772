"""The ``concord`` CLI and the key ring a newcomer meets first.

``serve`` runs against this test's PostgreSQL schema (so no embedded server is started) with
uvicorn replaced by a probe that calls the app, so the test sees the real start-up path.
"""

from __future__ import annotations

import hashlib
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.keys import KeyRing, KeyRingError
from adapters.settings import Settings
from api.cli import app
from tests.e2e.conftest import TestClient

KEY = re.compile(r"cnc_[A-Za-z0-9_-]{43}")


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    """`serve` tunes the collector for serving; in-process here, so put it back after."""
    import gc

    saved = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("CONCORD_API_KEYS", "CONCORD_DATABASE_URL", "CONCORD_NATS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONCORD_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_keys_create_prints_key_once_and_stores_only_its_hash(env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["keys", "create", "--system", "crm", "--client-id", "sf"])
    assert result.exit_code == 0, result.output
    [key] = KEY.findall(result.output)
    assert "Authorization: Bearer" in result.output

    stored = (env / "keys.json").read_text()
    assert key not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored
    assert stat.S_IMODE((env / "keys.json").stat().st_mode) == 0o600

    caller = KeyRing.load(Settings(data_dir=env)).authenticate(key)
    assert caller is not None
    assert (caller.client_id, caller.system, caller.scopes) == (
        "sf",
        "crm",
        frozenset({"read", "write"}),
    )

    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert "sf" in listed.output and "crm" in listed.output
    assert key not in listed.output


def test_keys_create_refuses_bad_input_with_the_fix(env: Path) -> None:
    runner = CliRunner()
    bad_system = runner.invoke(app, ["keys", "create", "--system", "sap"])
    assert bad_system.exit_code == 1
    assert "crm, erp, billing, admin" in bad_system.output
    bad_scope = runner.invoke(app, ["keys", "create", "--system", "crm", "--scopes", "root"])
    assert bad_scope.exit_code == 1
    assert "read, write, admin" in bad_scope.output
    assert not (env / "keys.json").exists()
    empty = runner.invoke(app, ["keys", "list"])
    assert "concord keys create" in empty.output


def test_key_ring_from_settings_and_file_reload(env: Path) -> None:
    configured = "cnc_from-settings"
    digest = hashlib.sha256(configured.encode()).hexdigest()
    settings = Settings(data_dir=env, api_keys=f"etl:erp:read+write:{digest}")
    ring = KeyRing.load(settings)
    assert not ring.is_empty()
    caller = ring.authenticate(configured)
    assert caller is not None and caller.system == "erp"
    assert ring.authenticate("cnc_from-settingz") is None
    assert ring.authenticate("") is None

    # A key created by another process (another ring on the same file) works at once.
    new_key = KeyRing.load(settings).create("late", "billing", ["read"])
    late = ring.authenticate(new_key)
    assert late is not None and late.scopes == frozenset({"read"})

    with pytest.raises(KeyRingError, match="unknown system"):
        KeyRing.load(Settings(data_dir=env, api_keys=f"x:sap:read:{digest}"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_prints_admin_key_once_and_serves(
    env: Path,
    database_url: str,
    pg_schema: str,
    nats_url: str,
    stream_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    monkeypatch.setenv("CONCORD_DATABASE_URL", database_url)
    monkeypatch.setenv("CONCORD_SCHEMA", pg_schema)
    monkeypatch.setenv("CONCORD_NATS_URL", nats_url)
    monkeypatch.setenv("CONCORD_NATS_STREAM", stream_name)
    monkeypatch.setenv("CONCORD_NATS_SUBJECT_PREFIX", stream_name.lower())
    port = _free_port()
    seen: list[Any] = []

    def probe(asgi: Any, **options: Any) -> None:
        with TestClient(asgi) as http:
            seen.append((options, http.get("/v1/health").json()))

    monkeypatch.setattr(uvicorn, "run", probe)
    runner = CliRunner()

    first = runner.invoke(app, ["serve", "--port", str(port)])
    assert first.exit_code == 0, first.output
    keys = KEY.findall(first.output)
    assert len(keys) == 1
    assert f"http://127.0.0.1:{port}/docs" in first.output
    assert str(env.resolve()) in first.output
    options, health = seen[0]
    assert (options["host"], options["port"]) == ("127.0.0.1", port)
    assert health["status"] == "ok"
    caller = KeyRing.load(Settings(data_dir=env)).authenticate(keys[0])
    assert caller is not None and caller.system == "admin" and "admin" in caller.scopes

    second = runner.invoke(app, ["serve", "--port", str(port)])
    assert second.exit_code == 0, second.output
    assert KEY.findall(second.output) == []


def test_serve_names_the_fix_when_the_port_is_taken(env: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert "already in use" in result.output
    assert f"--port {port + 1}" in result.output


def test_keys_create_refuses_a_taken_client_id(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["keys", "create", "--system", "admin", "--client-id", "admin"])
    assert first.exit_code == 0, first.output
    stored = (env / "keys.json").read_bytes()
    again = runner.invoke(app, ["keys", "create", "--system", "crm", "--client-id", "admin"])
    assert again.exit_code == 1
    assert "'admin' is taken" in again.output
    assert (env / "keys.json").read_bytes() == stored


def test_keys_revoke_and_expiry_from_the_cli(env: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(
        app, ["keys", "create", "--system", "erp", "--client-id", "ns", "--expires", "30d"]
    )
    assert made.exit_code == 0, made.output
    [key] = KEY.findall(made.output)
    ring = KeyRing.load(Settings(data_dir=env))
    info = ring.find("ns")
    assert info is not None and info.expires_at is not None
    assert "expires " in runner.invoke(app, ["keys", "list"]).output
    assert ring.authenticate(key) is not None

    revoked = runner.invoke(app, ["keys", "revoke", "ns"])
    assert revoked.exit_code == 0, revoked.output
    assert "Revoked" in revoked.output
    assert ring.authenticate(key) is None
    assert "revoked " in runner.invoke(app, ["keys", "list"]).output

    stored = (env / "keys.json").read_bytes()
    unknown = runner.invoke(app, ["keys", "revoke", "nobody"])
    assert unknown.exit_code == 1 and "nobody" in unknown.output
    for bad in ("tomorrow", "2020-01-01T00:00:00Z", "2030-01-01T00:00:00"):
        refused = runner.invoke(
            app, ["keys", "create", "--system", "crm", "--client-id", "x", "--expires", bad]
        )
        assert refused.exit_code == 1, (bad, refused.output)
    assert (env / "keys.json").read_bytes() == stored
