"""Helpers for the projection tests: runners on a test's runtime, view rows, threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from adapters.bootstrap import Runtime
from adapters.projections.runner import ProjectionRunner
from adapters.projections.schema import exists
from adapters.projections.status import ProjectionStatus, projection_status, request_rebuild
from projections.definition import Projection
from projections.erp.customers import ErpCustomers


def runner(runtime: Runtime, projection: Projection | None = None, **kw: Any) -> ProjectionRunner:
    kw.setdefault("poll_interval_s", 0.1)
    return ProjectionRunner(
        projection or ErpCustomers(), runtime.connections, runtime.settings.schema_name, **kw
    )


def connect(runtime: Runtime) -> psycopg.Connection[Any]:
    assert runtime.settings.database_url
    return psycopg.connect(runtime.settings.database_url, autocommit=True)


def rows(
    runtime: Runtime, table: str = "erp_customers", order_by: str = "customer_id"
) -> list[tuple[Any, ...]]:
    with connect(runtime) as conn:
        if not exists(conn, runtime.settings.schema_name, table):
            return []  # the runner has not created it yet
        return conn.execute(
            sql.SQL("SELECT * FROM {} ORDER BY {}").format(
                sql.Identifier(runtime.settings.schema_name, table),
                sql.SQL(order_by),
            )
        ).fetchall()


def status(runtime: Runtime, projection: Projection | None = None) -> ProjectionStatus:
    with connect(runtime) as conn:
        return projection_status(
            conn, runtime.settings.schema_name, [projection or ErpCustomers()]
        )[0]


def rebuild(runtime: Runtime, projection: Projection | None = None) -> None:
    with connect(runtime) as conn:
        request_rebuild(conn, runtime.settings.schema_name, projection or ErpCustomers())


def wait_for(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def running(worker: ProjectionRunner) -> Iterator[threading.Thread]:
    """``worker.run`` on a thread for the block; stopped (and joined) afterwards."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker.run(stop)
        except BaseException as error:  # surfaced in the test below
            errors.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive(), "the runner did not stop"
    assert not errors, errors
