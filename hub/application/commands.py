"""The command catalogue: every create/command an API client or batch line can issue.

One :class:`CommandSpec` per use case ties together the input model (validated at the
boundary, unknown fields refused), the aggregate method it calls, and the entity fields it
writes (checked against the ownership policy before anything runs). The HTTP routes, the
NDJSON batch endpoint and the OpenAPI document are all generated from this one table, so a
command cannot exist in one of them and be missing from another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from hub.domain.base import Aggregate
from hub.domain.provenance import Stamp

if TYPE_CHECKING:
    from hub.application.unit import Unit


class CommandInput(BaseModel):
    """Base of every command's input: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoInput(CommandInput):
    """For commands that need nothing but the aggregate (e.g. ``validate``)."""


InputT = TypeVar("InputT", bound=CommandInput)
AggregateT = TypeVar("AggregateT", bound=Aggregate)

#: Makes a new aggregate from a validated input of type ``InputT``.
Creator = Callable[[Stamp, UUID, InputT, "Unit"], Aggregate]
#: Changes an existing aggregate (the spec checked its type) with an input of type ``InputT``.
Handler = Callable[[Aggregate, Stamp, InputT, "Unit"], None]


class Command(Protocol):
    """A spec as the hub and the API see it, whatever its input type: the typed seam.

    The catalogue holds specs of many input types; callers hand any :class:`CommandInput`
    to :meth:`run_create`/:meth:`run_handle`, and the spec checks it is its own model
    before its typed function runs, so no handler is ever called with ``Any``."""

    @property
    def entity(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def input_model(self) -> type[CommandInput]: ...
    @property
    def summary(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def creates(self) -> bool: ...

    def fields_written(self, payload: CommandInput) -> list[str]: ...

    def natural_id(self, payload: CommandInput) -> UUID | None: ...

    def run_create(
        self, stamp: Stamp, aggregate_id: UUID, payload: CommandInput, unit: Unit
    ) -> Aggregate: ...

    def run_handle(
        self, aggregate: Aggregate, stamp: Stamp, payload: CommandInput, unit: Unit
    ) -> None: ...


@dataclass(frozen=True)
class CommandSpec(Generic[InputT]):
    """One use case. ``create`` specs make a new aggregate; others change an existing one.

    ``writes`` lists the entity fields the command changes, for the ownership check. When
    ``writes_from_input`` is true, the input fields the caller actually sent count as well
    (a partial update only touches what it names).
    """

    entity: str
    name: str
    input_model: type[InputT]
    summary: str
    create: Creator[InputT] | None = None
    handle: Handler[InputT] | None = None
    writes: tuple[str, ...] = ()
    writes_from_input: bool = False
    description: str = ""
    identify: Callable[[InputT], UUID] | None = None
    """For aggregates whose id follows from their input (a product from its SKU)."""

    @property
    def creates(self) -> bool:
        return self.create is not None

    def fields_written(self, payload: CommandInput) -> list[str]:
        """Entity fields this call would change (ownership is checked on each)."""
        names = list(self.writes)
        if self.writes_from_input:
            names += [n for n in payload.model_fields_set if n not in names]
        return names

    def natural_id(self, payload: CommandInput) -> UUID | None:
        """The id the input itself determines, if this kind of aggregate has one."""
        return None if self.identify is None else self.identify(self._own(payload))

    def run_create(
        self, stamp: Stamp, aggregate_id: UUID, payload: CommandInput, unit: Unit
    ) -> Aggregate:
        if self.create is None:
            raise TypeError(f"{self.entity}.{self.name} does not create an aggregate")
        return self.create(stamp, aggregate_id, self._own(payload), unit)

    def run_handle(
        self, aggregate: Aggregate, stamp: Stamp, payload: CommandInput, unit: Unit
    ) -> None:
        if self.handle is None:
            raise TypeError(f"{self.entity}.{self.name} creates; it changes no aggregate")
        self.handle(aggregate, stamp, self._own(payload), unit)

    def _own(self, payload: CommandInput) -> InputT:
        if not isinstance(payload, self.input_model):
            raise TypeError(
                f"{self.entity}.{self.name} takes {self.input_model.__name__}, "
                f"not {type(payload).__name__}"
            )
        return payload


def on(
    cls: type[AggregateT], handler: Callable[[AggregateT, Stamp, InputT, Unit], None]
) -> Handler[InputT]:
    """A handler for aggregates of type ``cls``: checks the loaded aggregate's type, so the
    typed ``handler`` never sees another kind (the id might name one)."""

    def run(aggregate: Aggregate, stamp: Stamp, data: InputT, unit: Unit) -> None:
        if not isinstance(aggregate, cls):
            raise TypeError(f"{aggregate.id} is a {aggregate.entity}, not a {cls.entity}")
        handler(aggregate, stamp, data, unit)

    return run


@dataclass
class Catalogue:
    """All command specs, keyed by ``(entity, name)``; filled by each aggregate's module."""

    specs: dict[tuple[str, str], Command] = field(default_factory=dict)

    def add(self, *specs: Command) -> None:
        for spec in specs:
            key = (spec.entity, spec.name)
            if key in self.specs:
                raise ValueError(f"command {spec.entity}.{spec.name} declared twice")
            self.specs[key] = spec

    def get(self, entity: str, name: str) -> Command | None:
        return self.specs.get((entity, name))

    def for_entity(self, entity: str) -> list[Command]:
        return [s for (e, _), s in self.specs.items() if e == entity]

    def all(self) -> list[Command]:
        return list(self.specs.values())
