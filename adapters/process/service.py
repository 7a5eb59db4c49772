"""The process manager as a background service: its tracked follower and its dispatcher.

Why together: the follower decides, the dispatcher executes, and neither is any use without
the other; ``concord serve`` runs both beside the API (and ``concord process run`` alone).
The follower is an ordinary projection runner (its own thread, session and advisory lock),
so it is supervised, resumes from its positions and rebuilds like every read model.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import timedelta

from adapters.background import Service
from adapters.bootstrap import Runtime
from adapters.process.dispatcher import dispatcher_service
from adapters.process.manager import QuoteToCash
from adapters.projections.runner import ProjectionRunner

__all__ = ["process_runner", "process_service", "quote_to_cash"]


def quote_to_cash(runtime: Runtime) -> QuoteToCash:
    minutes = runtime.settings.q2c_step_timeout_minutes
    return QuoteToCash(step_timeout=timedelta(minutes=minutes))


def process_runner(runtime: Runtime) -> ProjectionRunner:
    settings = runtime.settings
    return ProjectionRunner(
        quote_to_cash(runtime),
        runtime.connections,
        settings.schema_name,
        batch=settings.projection_batch,
        poll_interval_s=settings.projection_poll_interval_s,
    )


def process_service(runtime: Runtime) -> Service:
    """``service(stop)``: follow and dispatch until ``stop`` is set."""

    async def service(stop: asyncio.Event) -> None:
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        dispatch = dispatcher_service(runtime, runtime.settings.q2c_poll_interval_s, wake)
        runner = process_runner(runtime)

        def woken() -> None:
            loop.call_soon_threadsafe(wake.set)

        runner.on_commit = woken
        halt = threading.Event()
        follower = asyncio.create_task(asyncio.to_thread(runner.run, halt))
        try:
            await dispatch(stop)
        finally:
            halt.set()
            with contextlib.suppress(Exception):
                await follower

    return service
