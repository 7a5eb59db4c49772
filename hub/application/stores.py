"""One eventsourcing ``Application`` per aggregate type: its own events table, lock and log.

Per-aggregate stores let writers of different kinds proceed in parallel (each insert takes
an EXCLUSIVE lock on its own table only) and give each kind its own notification log for the
relay and projections. The classes are built from the aggregate catalogue so adding an
aggregate adds its store.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.utils import get_topic

from hub.application.mapper import OrjsonTranscoder, PydanticMapper
from hub.domain.base import Aggregate, AggregateSnapshot

#: Snapshot every N events. Contracts collect amendments and usage, so they get a short one.
SNAPSHOT_EVERY: dict[str, int] = {"contract": 50}
DEFAULT_SNAPSHOT_EVERY = 100


class Store(Application[UUID]):
    """Base of the per-aggregate applications (names: ``customers``, ``orders`` ...)."""

    aggregate_class: ClassVar[type[Aggregate]]
    snapshot_class = AggregateSnapshot
    env: ClassVar[dict[str, str]] = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "IS_SNAPSHOTTING_ENABLED": "y",
    }


_classes: dict[type[Aggregate], type[Store]] = {}


def store_class(aggregate_class: type[Aggregate]) -> type[Store]:
    """The application class for an aggregate type (created once, cached)."""
    if aggregate_class not in _classes:
        entity = aggregate_class.entity
        attrs: dict[str, Any] = {
            "name": f"{entity}s",
            "aggregate_class": aggregate_class,
            "snapshotting_intervals": {
                aggregate_class: SNAPSHOT_EVERY.get(entity, DEFAULT_SNAPSHOT_EVERY)
            },
            "__module__": __name__,
            "__qualname__": f"{aggregate_class.__name__}Store",
        }
        _classes[aggregate_class] = type(f"{aggregate_class.__name__}Store", (Store,), attrs)
    return _classes[aggregate_class]
