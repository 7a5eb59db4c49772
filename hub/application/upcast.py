"""Reading old events as the current event class: ``class_version`` upcasting.

An event class that changes shape bumps ``class_version`` and gains
``upcast_v1_v2(state)`` ...; whoever reads stored state (the storage mapper, the envelope
views) passes it through :func:`upcast` first, so history always reads in today's shape.
"""

from __future__ import annotations

from typing import Any


def upcast(cls: type[Any], state: dict[str, Any]) -> dict[str, Any]:
    """Bring a stored event's state up to ``cls.class_version`` step by step."""
    version = state.pop("class_version", 1)
    target = getattr(cls, "class_version", 1)
    while version < target:
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    return state
