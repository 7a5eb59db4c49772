"""The process's one PostgreSQL connection pool, shared by every store.

The library builds a datastore (and an eager pool) per ``Application``; Concord has five
stores plus its own tables, so per-store pools multiplied idle connections (one idle
``concord serve`` held about 32, and a few processes exhausted a shared server's
``max_connections``). The composition root builds this one and hands it to all of them.
"""

from __future__ import annotations

from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment


def open_datastore(env: dict[str, str], application_name: str) -> PostgresDatastore:
    """A datastore configured from the library's ``POSTGRES_*`` keys (parsed by the
    library's own factory, so every key means what its documentation says), whose
    connections name themselves ``application_name`` in ``pg_stat_activity``."""
    datastore = PostgresFactory(Environment("concord", env)).datastore
    # The pool opens on first use; until then its connection arguments can still change.
    kwargs = datastore.pool.kwargs
    assert isinstance(kwargs, dict)
    kwargs["application_name"] = application_name
    # Open now and wait for the pool's connections: a request arriving while they are
    # still being made would otherwise grow the pool past its size, for good.
    datastore.pool.open(wait=True, timeout=30)
    return datastore
