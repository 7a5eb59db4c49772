"""Run asyncio services (relay, subscribers) on their own thread and event loop.

``concord serve`` runs them beside the API so one command is a whole hub; a thread of their
own keeps their CPU work (building envelopes, JSON) from adding latency to API requests on
uvicorn's loop, and lets a sync caller stop them cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("concord.background")

Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@contextmanager
def background(name: str, *services: Service, restart_delay: float = 1.0) -> Iterator[None]:
    """Run each ``service(stop)`` until the block ends; a service that fails is restarted
    (after ``restart_delay``) so a transient outage at start-up does not stop publishing."""
    loop = asyncio.new_event_loop()
    stop: asyncio.Event | None = None
    started = threading.Event()

    async def supervise(service: Service, stop_event: asyncio.Event) -> None:
        while not stop_event.is_set():
            try:
                await service(stop_event)
            except Exception:
                log.exception("%s: service failed; restarting in %.0f s", name, restart_delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), restart_delay)

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        started.set()
        await asyncio.gather(*(supervise(s, stop) for s in services))

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name=name, daemon=True
    )
    thread.start()
    started.wait(10)
    try:
        yield
    finally:
        if stop is not None:
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
