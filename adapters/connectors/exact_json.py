"""JSON with ``Decimal`` written as a JSON number, digit for digit.

Why: NetSuite (and the ERP sandbox standing in for it) reads and writes money as JSON
numbers in major units. A float on the way would turn ``0.1`` into ``0.1000000000000000055…``
for anything that does not print the shortest repr, and the stdlib refuses Decimals; orjson's
``Fragment`` puts the Decimal's own text in the document.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

__all__ = ["dumps_exact"]


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f").encode())
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON")


def dumps_exact(document: Any) -> bytes:
    """``document`` as JSON bytes, every finite ``Decimal`` as an exact JSON number."""
    return orjson.dumps(document, default=_exact)
