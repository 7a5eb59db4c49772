"""Fixtures for tests that need a whole hub runtime on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.bootstrap import Runtime, open_runtime
from adapters.settings import Settings


@pytest.fixture
def runtime(database_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Runtime]:
    """A hub on this test's own schema; closed (connections and writer thread) afterwards."""
    rt = open_runtime(Settings(database_url=database_url, schema_name=pg_schema, data_dir=tmp_path))
    try:
        yield rt
    finally:
        rt.close()
