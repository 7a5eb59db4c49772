"""uvicorn factory for multi-process serving: ``uvicorn api.server:app --factory``.

Each worker process builds its own runtime (one connection pool, writer thread) through the
composition root from the ``CONCORD_*`` environment; ``concord serve --workers N`` sets that
environment (including the embedded servers' URLs) and runs the relay and subscribers once,
in the parent. The app owns the worker's runtime and closes it on shutdown.
"""

from __future__ import annotations

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
    application = create_app(open_runtime(settings), owns_runtime=True)
    tune_for_serving()
    return application
