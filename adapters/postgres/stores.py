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
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment, get_topic

from adapters.postgres.mapper import OrjsonTranscoder, PydanticMapper
from hub.domain.base import Aggregate, AggregateSnapshot

#: Snapshot every N events. Contracts collect amendments and usage, so they get a short one.
SNAPSHOT_EVERY: dict[str, int] = {"contract": 50}
DEFAULT_SNAPSHOT_EVERY = 100


class SharedDatastoreFactory(PostgresFactory):
    """The library's PostgreSQL factory on a datastore (and pool) it does not own.

    By default each ``Application`` builds its own datastore and connection pool, which
    for five stores meant five eager pools (about 30 idle connections per process). The
    composition root builds one :class:`PostgresDatastore` and every store shares it;
    closing a store therefore leaves the pool open for the others (the root closes it).
    """

    def __init__(self, env: Environment, datastore: PostgresDatastore) -> None:
        InfrastructureFactory.__init__(self, env)  # not the base's: it builds a datastore
        self.datastore = datastore

    def close(self) -> None:
        """The shared pool outlives any one store."""


class Store(Application[UUID]):
    """Base of the per-aggregate applications (names: ``customers``, ``orders`` ...)."""

    aggregate_class: ClassVar[type[Aggregate]]
    snapshot_class = AggregateSnapshot
    env: ClassVar[dict[str, str]] = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "MAPPER_TOPIC": get_topic(PydanticMapper),
        "IS_SNAPSHOTTING_ENABLED": "y",
    }

    def __init__(
        self, env: dict[str, str] | None = None, datastore: PostgresDatastore | None = None
    ) -> None:
        """``datastore``: the shared one from the composition root; without it the store
        builds its own from ``env`` (the library's default, one pool per store)."""
        self._shared = datastore
        super().__init__(env=env)

    def construct_factory(self, env: Environment) -> InfrastructureFactory[Any]:
        if self._shared is None:
            return super().construct_factory(env)
        return SharedDatastoreFactory(env, self._shared)


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
