"""The projections as one background service (``concord serve``, ``concord projections run``).

Runners are synchronous (psycopg sessions, a transaction per batch), so each runs on a worker
thread of its own pool, sized to the runners: a runner holds its thread until stopped, so on
asyncio's default executor (``min(32, cpus + 4)`` threads) a seventh projection on a
two-CPU host would never start, and other ``to_thread`` work (health, the relay's set-up)
would wait behind the runners. The service bridges the asyncio stop event of
:func:`adapters.background.background` to the threads' stop flag.
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

        watcher = asyncio.create_task(forward())
        every = runners(settings, connections)
        pool = ThreadPoolExecutor(max_workers=len(every), thread_name_prefix="projection")
        loop = asyncio.get_running_loop()
        try:
            await asyncio.gather(*(loop.run_in_executor(pool, r.run, halt) for r in every))
        finally:
            halt.set()
            pool.shutdown(wait=False)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    return service
