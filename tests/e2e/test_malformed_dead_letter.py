"""A malformed dead letter (a message that was not an envelope) cannot be retried.

Regression: retrying one delivered ``{"raw": …}`` to the target with an empty idempotency key
and marked it delivered. It is refused with 409 ("discard it") over HTTP and in the CLI, and
stays as it was; discarding it works.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from adapters.bootstrap import Runtime
from api.cli import app
from tests.e2e.conftest import Api, assert_problem


def _malformed(runtime: Runtime) -> int:
    settings = runtime.settings
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL(
                "INSERT INTO {}.concord_dead_letters (subscriber, event_id, event_type, "
                "aggregate, aggregate_id, version, stream_seq, subject, envelope, reason, "
                "error, attempts, first_failed_at, last_failed_at, status) VALUES ('erp', '', "
                "'', '', '#7', 0, 7, 'concord.v1.order.X.y', %s, 'malformed', 'not JSON', 1, "
                "now(), now(), 'dead') RETURNING id"
            ).format(sql.Identifier(settings.schema_name)),
            (Jsonb({"raw": "not json"}),),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _row(runtime: Runtime, dead_letter_id: int) -> tuple[Any, ...]:
    assert runtime.settings.database_url
    with psycopg.connect(runtime.settings.database_url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT status, resolved_by FROM {}.concord_dead_letters WHERE id = %s").format(
                sql.Identifier(runtime.settings.schema_name)
            ),
            (dead_letter_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_retrying_a_malformed_dead_letter_is_409_and_changes_nothing(api: Api) -> None:
    letter = _malformed(api.runtime)
    before = _row(api.runtime, letter)
    refused = api.post(f"/v1/dead-letters/{letter}/retry", role="admin")
    problem = assert_problem(refused, 409, "dead-letter-malformed")
    assert "discard it" in problem["detail"]
    assert _row(api.runtime, letter) == before == ("dead", None)
    discarded = api.post(f"/v1/dead-letters/{letter}/discard", role="admin")
    assert discarded.status_code == 200, discarded.text
    assert discarded.json()["status"] == "discarded"


def test_the_cli_refuses_it_too(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = api.runtime.settings
    assert settings.database_url
    monkeypatch.setenv("CONCORD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONCORD_SCHEMA", settings.schema_name)
    letter = _malformed(api.runtime)
    result = CliRunner().invoke(app, ["dead-letters", "retry", str(letter)])
    assert result.exit_code == 1, result.output
    assert "discard it" in result.output
    assert _row(api.runtime, letter) == ("dead", None)
