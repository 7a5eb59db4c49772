"""uvicorn factory for benchmarks: the API over a runtime built from ``CONCORD_*``."""

from __future__ import annotations

from fastapi import FastAPI

from adapters.bootstrap import open_runtime
from adapters.settings import Settings
from api.app import create_app


def app() -> FastAPI:
    return create_app(open_runtime(Settings()))
