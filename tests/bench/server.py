"""The benchmarks serve the API exactly as ``concord serve --workers N`` does."""

from api.server import app

__all__ = ["app"]
