"""The projections as one background service (``concord serve``, ``concord projections run``).

Runners are synchronous (psycopg sessions, a transaction per batch), so each runs on a worker
thread; the service bridges the asyncio stop event of :func:`adapters.background.background`
to the threads' stop flag.

Why a pool of its own, one thread per runner: a runner never returns until stopped, and
asyncio's default executor has only ``min(32, cpus + 4)`` threads (6 on two cores), so
with more projections than that the last ones would never start (and would starve every
other ``to_thread`` call of the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from adapters.background import Service
from adapters.bootstrap import Connections
from adapters.projections.runner import ProjectionRunner
from adapters.settings import Settings
from projections.registry import all_projections


def runners(settings: Settings, connections: Connections) -> list[ProjectionRunner]:
    return [
        ProjectionRunner(
            projection,
            connections,
            settings.schema_name,
            batch=settings.projection_batch,
            poll_interval_s=settings.projection_poll_interval_s,
        )
        for projection in all_projections()
    ]


def projections_service(settings: Settings, connections: Connections) -> Service:
    """``service(stop)``: every projection's runner until ``stop`` is set."""

    async def service(stop: asyncio.Event) -> None:
        halt = threading.Event()

        async def forward() -> None:
            await stop.wait()
            halt.set()

        work = runners(settings, connections)
        pool = ThreadPoolExecutor(max_workers=max(1, len(work)), thread_name_prefix="projection")
        loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(forward())
        try:
            await asyncio.gather(*(loop.run_in_executor(pool, r.run, halt) for r in work))
        finally:
            halt.set()
            pool.shutdown(wait=False)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    return service
