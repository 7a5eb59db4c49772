"""uvicorn factory for multi-process serving: ``uvicorn api.server:app --factory``.

Each worker process builds its own runtime (connection pools, writer thread) from the
``CONCORD_*`` environment; ``concord serve --workers N`` sets that environment (including the
embedded servers' URLs) and runs the relay and subscribers once, in the parent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from adapters.bootstrap import open_runtime
from adapters.gc_tuning import tune_for_serving
from adapters.settings import Settings
from adapters.telemetry import configure_metrics, configure_tracing
from api.app import create_app


def app() -> FastAPI:
    settings = Settings()
    configure_tracing(settings)
    configure_metrics(settings)
    runtime = open_runtime(settings)
    application = create_app(runtime)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await runtime.close_nats()
            runtime.close()

    application.router.lifespan_context = lifespan
    tune_for_serving()
    return application
