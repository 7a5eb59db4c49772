"""``concord serve`` says where events go, and warns, naming the fix, when they go nowhere.

In process (``uvicorn.run`` replaced by a no-op, as in tests/e2e/test_cli_keys.py), against
this test's PostgreSQL schema and NATS stream, so the real start-up path prints the banner.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.cli import app
from tests.e2e.serving import free_port

WARNING = "WARNING: no delivery target is configured"


@pytest.fixture(autouse=True)
def _serving_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
    pg_schema: str,
    nats_url: str,
    stream_name: str,
) -> Iterator[None]:
    import uvicorn

    saved = gc.get_threshold()  # `serve` tunes the collector for serving; put it back after
    monkeypatch.delenv("CONCORD_API_KEYS", raising=False)
    monkeypatch.delenv("CONCORD_TARGETS", raising=False)
    monkeypatch.setenv("CONCORD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CONCORD_DATABASE_URL", database_url)
    monkeypatch.setenv("CONCORD_SCHEMA", pg_schema)
    monkeypatch.setenv("CONCORD_NATS_URL", nats_url)
    monkeypatch.setenv("CONCORD_NATS_STREAM", stream_name)
    monkeypatch.setenv("CONCORD_NATS_SUBJECT_PREFIX", stream_name.lower())

    def started(asgi: Any, **options: Any) -> None:
        """Where uvicorn would serve: return at once (as after Ctrl-C)."""

    monkeypatch.setattr(uvicorn, "run", started)
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)


def serve() -> str:
    result = CliRunner().invoke(app, ["serve", "--port", str(free_port())])
    assert result.exit_code == 0, result.output
    return result.output


def test_serve_warns_when_no_target_is_configured_and_names_the_fix() -> None:
    output = serve()
    assert WARNING in output
    assert "fix: set CONCORD_TARGETS" in output
    assert "erp, crm, billing" in output  # the names it may take
    assert "Targets" not in output


def test_serve_lists_the_targets_and_does_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CONCORD_TARGETS", "erp=http://127.0.0.1:9/erp,crm=https://user:secret@127.0.0.1:9/crm"
    )
    output = serve()
    assert WARNING not in output
    assert "erp -> http://127.0.0.1:9/erp" in output
    assert "crm -> https://user:***@127.0.0.1:9/crm" in output
    assert "secret" not in output
