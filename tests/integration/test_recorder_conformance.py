"""The eventsourcing library's own recorder conformance cases, run against the exact
PostgreSQL configuration Concord builds (``Settings.postgres_env``), plus a guard that the
unsafe ``POSTGRES_ENABLE_DB_FUNCTIONS`` path stays off.
"""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory
from eventsourcing.tests.persistence import (
    ApplicationRecorderTestCase,
    NonInterleavingNotificationIDsBaseCase,
)
from eventsourcing.utils import Environment

from adapters.settings import Settings


class _ConcordRecorder:
    """Builds recorders the way Concord's stores get theirs: from ``Settings``' env."""

    env: dict[str, str]

    @pytest.fixture(autouse=True)
    def _concord_env(self, pg_env: dict[str, str]) -> None:
        self.env = pg_env
        self.factories: list[PostgresFactory] = []

    def teardown_method(self, method: Any) -> None:
        for factory in getattr(self, "factories", []):
            factory.close()

    def create_recorder(self) -> ApplicationRecorder:
        factory = PostgresFactory(Environment("conformance", self.env))
        self.factories.append(factory)
        recorder = factory.application_recorder()
        assert isinstance(recorder, PostgresApplicationRecorder)
        assert recorder.datastore.enable_db_functions is False
        return recorder


class TestApplicationRecorder(_ConcordRecorder, ApplicationRecorderTestCase):
    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestNonInterleavingNotificationIds(_ConcordRecorder, NonInterleavingNotificationIDsBaseCase):
    pass


def test_db_functions_are_never_enabled(database_url: str, pg_schema: str) -> None:
    """The DB-functions insert path writes into wrong tables and lets readers skip events."""
    env = Settings(database_url=database_url, schema_name=pg_schema).postgres_env(database_url)
    assert "POSTGRES_ENABLE_DB_FUNCTIONS" not in env
    factory = PostgresFactory(Environment("guard", env))
    try:
        recorder = factory.application_recorder()
        assert isinstance(recorder, PostgresApplicationRecorder)
        assert recorder.datastore.enable_db_functions is False
        # The default path locks the table before inserting: that is what keeps commit order
        # equal to notification order for tailing readers.
        assert recorder.lock_table_statements, "insert path must take the table lock"
    finally:
        factory.close()


del ApplicationRecorderTestCase, NonInterleavingNotificationIDsBaseCase
