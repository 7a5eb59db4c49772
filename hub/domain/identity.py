"""Deterministic identities.

``uuid5(NAMESPACE, f"{system}:{kind}:{external_id}")`` makes re-ingesting the same source
record hit the same aggregate, so a replayed webhook or migration line cannot create a twin.
"""

from __future__ import annotations

from uuid import UUID, uuid4, uuid5

NAMESPACE = UUID("6f1c1b1e-8f55-4c0f-9d7e-3c0a8e6d2b11")


def external_id(system: str, kind: str, external: str) -> UUID:
    """Canonical id of the aggregate that ``system`` calls ``external`` (kind e.g. ``order``)."""
    return uuid5(NAMESPACE, f"{system}:{kind}:{external}")


def new_id() -> UUID:
    """A fresh id for an aggregate that has no source id (created directly over the API)."""
    return uuid4()
