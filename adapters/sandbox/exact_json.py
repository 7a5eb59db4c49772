"""JSON with exact decimal numbers, for sandboxes whose real system sends money as numbers.

Why: Salesforce and NetSuite write currency as JSON numbers (``12000.50``); Concord reads
them as Decimal. orjson has no Decimal type and a float would round some values, so a
Decimal is written through a marker string that is then replaced by its digits.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_MARK = "\x00dec:"
_MARKED = re.compile(rb'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"')
_DECODER = json.JSONDecoder(parse_float=Decimal)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return _MARK + format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any) -> bytes:
    """``value`` as JSON; every Decimal as a number with exactly its digits."""
    return _MARKED.sub(rb"\1", orjson.dumps(value, default=_default))


def loads(raw: bytes) -> Any:
    """JSON with its fractional numbers as Decimal (``ValueError`` when it is not JSON)."""
    return _DECODER.decode(raw.decode("utf-8"))
