"""Operating subscribers over the API and the CLI: lag, dead letters (list, show, retry,
discard) and replay, against real PostgreSQL and NATS with the sandbox as the ERP."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.background import background
from adapters.bootstrap import Runtime, open_runtime
from adapters.nats.runner import subscribers_service
from adapters.sandbox.target import TargetSystem, serve_in_thread
from adapters.settings import Settings
from api.app import create_app
from api.cli import app as cli
from tests.conftest import run_sync
from tests.e2e.conftest import TestClient, assert_problem, nats_settings
from tests.integration.subscriber_support import Stream, new_id


def _until(what: str, check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def target() -> Iterator[TargetSystem]:
    with serve_in_thread("erp") as running:
        yield running


@pytest.fixture
def settings(
    database_url: str,
    nats_url: str,
    pg_schema: str,
    stream_name: str,
    tmp_path: Path,
    target: TargetSystem,
) -> Settings:
    return nats_settings(
        database_url, nats_url, pg_schema, stream_name, tmp_path, targets=f"erp={target.url}"
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = open_runtime(settings)
    try:
        yield rt
    finally:
        rt.close()


def _publish(settings: Settings, *events: tuple[str, str, int]) -> None:
    import nats

    async def main() -> None:
        assert settings.nats_url
        nc = await nats.connect(settings.nats_url)
        stream = Stream(nc, settings)
        with contextlib.suppress(Exception):  # the stream exists from an earlier call
            await stream.create()
        for aggregate, aggregate_id, version in events:
            await stream.publish(aggregate, aggregate_id, version)
        await nc.close()

    run_sync(main())


def test_dead_letters_lag_and_replay_over_the_api(
    runtime: Runtime, settings: Settings, target: TargetSystem
) -> None:
    bad, good = new_id(), new_id()
    target.fail_aggregate(bad, status=422)
    _publish(settings, ("order", bad, 1), ("order", bad, 2), ("order", good, 1))
    admin_key = runtime.keys.create("ops", "admin", ["read", "write", "admin"])
    crm_key = runtime.keys.create("crm-app", "crm", ["read", "write"])
    headers = {"Authorization": f"Bearer {admin_key}"}
    with background("subs", subscribers_service(settings)), TestClient(create_app(runtime)) as http:
        _until("the good order delivered", lambda: target.versions(good) == [1])
        lag = _until(
            "one parked event",
            lambda: next(
                (
                    r
                    for r in http.get("/v1/subscribers", headers=headers).json()["items"]
                    if r["subscriber"] == "erp" and r["parked"] == 1
                ),
                None,
            ),
        )
        assert lag["running"] and lag["configured"] and lag["dead_letters"] == 1
        assert {
            r["subscriber"] for r in http.get("/v1/subscribers", headers=headers).json()["items"]
        } == {"erp", "crm", "billing"}

        denied = http.get("/v1/dead-letters", headers={"Authorization": f"Bearer {crm_key}"})
        assert_problem(denied, 403, "forbidden")
        (letter,) = http.get("/v1/dead-letters", headers=headers).json()["items"]
        assert letter["aggregate_id"] == bad and letter["reason"] == "permanent"
        detail = http.get(f"/v1/dead-letters/{letter['id']}", headers=headers).json()
        assert detail["envelope"]["version"] == 1 and len(detail["parked"]) == 1
        assert_problem(
            http.get("/v1/dead-letters/999999", headers=headers), 404, "dead-letter-not-found"
        )

        target.heal_aggregate(bad)
        retried = http.post(f"/v1/dead-letters/{letter['id']}/retry", headers=headers)
        assert retried.status_code == 202 and retried.json()["status"] == "retry_requested"
        _until("the held order released", lambda: target.versions(bad) == [1, 2])
        again = http.post(f"/v1/dead-letters/{letter['id']}/discard", headers=headers)
        assert_problem(again, 409, "dead-letter-state")
        assert http.get("/v1/dead-letters", headers=headers).json()["items"] == []
        everything = http.get("/v1/dead-letters?status=all", headers=headers).json()["items"]
        assert [d["status"] for d in everything] == ["delivered"]

        calls = len(target.calls)
        started = http.post(
            "/v1/subscribers/erp/replay", json={"aggregate": f"order:{bad}"}, headers=headers
        )
        assert started.status_code == 202, started.text
        job = _until(
            "the replay job",
            lambda: (lambda j: j if j["status"] != "running" else None)(
                http.get(started.headers["Location"], headers=headers).json()
            ),
        )
        assert job["status"] == "done" and job["result"]["delivered"] == 2
        assert job["done"] == job["total"] == 2
        assert len(target.calls) == calls + 2 and len(target.effects) == 3

        assert_problem(
            http.post("/v1/subscribers/ledger/replay", json={"from_position": 1}, headers=headers),
            404,
            "unknown-subscriber",
        )
        assert_problem(
            http.post("/v1/subscribers/crm/replay", json={"from_position": 1}, headers=headers),
            409,
            "subscriber-not-configured",
        )
        assert_problem(
            http.post(
                "/v1/subscribers/erp/replay",
                json={"from_position": 1, "since": "2026-01-01T00:00:00Z"},
                headers=headers,
            ),
            422,
            "invalid-replay",
        )
        assert_problem(
            http.post("/v1/subscribers/erp/replay", json={"aggregate": "nope"}, headers=headers),
            422,
            "validation-failed",
        )


def test_dead_letters_and_replay_from_the_cli(
    runtime: Runtime, settings: Settings, target: TargetSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (
        ("CONCORD_DATABASE_URL", settings.database_url),
        ("CONCORD_NATS_URL", settings.nats_url),
        ("CONCORD_SCHEMA", settings.schema_name),
        ("CONCORD_NATS_STREAM", settings.nats_stream),
        ("CONCORD_NATS_SUBJECT_PREFIX", settings.nats_subject_prefix),
        ("CONCORD_TARGETS", settings.targets),
        ("CONCORD_DATA_DIR", str(settings.data_dir)),
    ):
        monkeypatch.setenv(name, str(value))
    bad = new_id()
    target.fail_aggregate(bad, status=400, count=1)
    _publish(settings, ("invoice", bad, 1), ("invoice", bad, 2))
    runner = CliRunner()
    with background("subs", subscribers_service(settings)):
        _until(
            "a dead letter",
            lambda: "invoice:" + bad in runner.invoke(cli, ["dead-letters", "list"]).output,
        )
        listed = runner.invoke(cli, ["dead-letters", "list"])
        dead_id = listed.output.splitlines()[1].split()[0]
        shown = runner.invoke(cli, ["dead-letters", "show", dead_id])
        assert shown.exit_code == 0 and '"reason": "permanent"' in shown.output
        lag = runner.invoke(cli, ["subscribers"])
        assert lag.exit_code == 0 and "erp" in lag.output
        discarded = runner.invoke(cli, ["dead-letters", "discard", dead_id])
        assert discarded.exit_code == 0, discarded.output
        _until("v2 released", lambda: target.versions(bad) == [2])
        refused = runner.invoke(cli, ["dead-letters", "retry", dead_id])
        assert refused.exit_code == 1 and "discarded" in refused.output
    target.fail_aggregate(bad, status=400, count=1)
    replayed = runner.invoke(cli, ["replay", "erp", "--aggregate", f"invoice:{bad}"])
    assert replayed.exit_code == 2  # v1 is still refused by the target: reported, exit 2
    assert "Replayed 1 event(s)" in replayed.output and "failed 1" in replayed.output
    bad_usage = runner.invoke(cli, ["replay", "erp"])
    assert bad_usage.exit_code == 1 and "where to replay" in bad_usage.output
    unknown = runner.invoke(cli, ["replay", "ledger", "--from-position", "1"])
    assert unknown.exit_code == 1 and "no subscriber 'ledger'" in unknown.output
