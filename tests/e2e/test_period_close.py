"""``concord close 2024-01`` on the realistic quarter: a closed month keeps its frozen
figures in ``GET /v1/metrics``; a later, backdated event shows as an adjustment against them,
never a silent restatement; closing twice, before the projection ran or while it is behind
is refused with the fix named."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from adapters.projections.runner import ProjectionRunner
from api.cli import app
from projections.metrics.projection import Metrics
from tests.e2e.conftest import Api
from tests.integration.quarter import _bill, play

JANUARY = {"from": "2024-01", "to": "2024-01", "currency": "USD"}


def close(api: Api, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    settings = api.runtime.settings
    monkeypatch.setenv("CONCORD_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("CONCORD_SCHEMA", settings.schema_name)
    result = CliRunner().invoke(app, ["close", *args])
    return result.exit_code, result.output


def catch_up(api: Api) -> None:
    rt = api.runtime
    ProjectionRunner(Metrics(), rt.connections, rt.settings.schema_name).catch_up()


def test_a_closed_month_is_frozen_and_later_changes_are_adjustments(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    quarter = play(api.runtime)
    code, out = close(api, monkeypatch, "2024-01")
    assert code == 1 and "has never run" in out and "concord projections run" in out
    catch_up(api)
    (before,) = api.get("/v1/metrics", params=JANUARY, role="reader").json()["items"]
    assert before["closed"] is False and before["adjustments"] == {}

    code, out = close(api, monkeypatch, "2024-01", "--note", "January signed off", "--by", "cfo")
    assert code == 0, out
    assert "Closed 2024-01" in out and "by cfo" in out
    (frozen,) = api.get("/v1/metrics", params=JANUARY, role="reader").json()["items"]
    assert frozen == before | {"closed": True}

    code, out = close(api, monkeypatch, "2024-01")
    assert code == 1 and "was closed at" in out and "by cfo" in out

    # Billing sends a January invoice late: 250.00 USD, one-time, tax excluded.
    line = {"sku": "SETUP", "amount": "250.00", "charge_type": "one_time"}
    _bill(api.runtime, quarter.globex, "USD", "2024-01-20", [line], order_id=quarter.deal)
    code, out = close(api, monkeypatch, "2024-02")
    assert code == 1 and "not applied yet" in out  # the projection is behind
    catch_up(api)
    (after,) = api.get("/v1/metrics", params=JANUARY, role="reader").json()["items"]
    assert {k: after[k] for k in before if k not in ("closed", "adjustments")} == {
        k: before[k] for k in before if k not in ("closed", "adjustments")
    }  # the frozen figures did not move
    assert after["closed"] is True
    assert after["adjustments"]["billings"] == "250.00"
    assert set(after["adjustments"]) <= {"billings", "deferred", "receivables", "recognised"}

    # February is open: it shows the live figures, the late invoice's balances included.
    window = {"from": "2024-02", "to": "2024-02", "currency": "USD"}
    (february,) = api.get("/v1/metrics", params=window, role="reader").json()["items"]
    assert february["closed"] is False and february["adjustments"] == {}
    assert close(api, monkeypatch, "2024-02")[0] == 0


def test_a_bad_month_is_refused_naming_the_form(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("2024-13", "24-01", "2024-1", "January"):
        code, out = close(api, monkeypatch, bad)
        assert code == 1 and "YYYY-MM" in out, (bad, out)
