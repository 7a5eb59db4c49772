"""JSON responses rendered with orjson.

Why our own class: FastAPI's ``ORJSONResponse`` is deprecated (it now prefers serialising via
response models), but the hub already hands the API JSON-ready dicts (``aggregate_view``,
receipts), so re-validating them through a response model would only cost time on the hot
path. Routes build these responses directly; response models are declared for OpenAPI only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


def _default(value: Any) -> Any:
    """orjson knows datetimes and UUIDs; money is Decimal and must stay exact (a string)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, default=_default, option=orjson.OPT_NON_STR_KEYS)


class JSONBytes(JSONResponse):
    """``application/json`` rendered by orjson (Decimals as strings).

    A ``JSONResponse`` subclass so that FastAPI documents each route's ``response_model``
    as the body's schema; for any other response class it writes ``{"type": "string"}``,
    which left every generated client without typed results.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class ProblemResponse(JSONBytes):
    """RFC 9457 ``application/problem+json``."""

    media_type = PROBLEM_MEDIA_TYPE
