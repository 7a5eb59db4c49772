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
from typing import TYPE_CHECKING, Any
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


Creator = Callable[[Stamp, UUID, Any, "Unit"], Aggregate]
Handler = Callable[[Aggregate, Stamp, Any, "Unit"], None]


@dataclass(frozen=True)
class CommandSpec:
    """One use case. ``create`` specs make a new aggregate; others change an existing one.

    ``writes`` lists the entity fields the command changes, for the ownership check. When
    ``writes_from_input`` is true, the input fields the caller actually sent count as well
    (a partial update only touches what it names).
    """

    entity: str
    name: str
    input_model: type[CommandInput]
    summary: str
    create: Creator | None = None
    handle: Handler | None = None
    writes: tuple[str, ...] = ()
    writes_from_input: bool = False
    description: str = ""

    @property
    def creates(self) -> bool:
        return self.create is not None

    def fields_written(self, payload: CommandInput) -> list[str]:
        """Entity fields this call would change (ownership is checked on each)."""
        names = list(self.writes)
        if self.writes_from_input:
            names += [n for n in payload.model_fields_set if n not in names]
        return names


@dataclass
class Catalogue:
    """All command specs, keyed by ``(entity, name)``; filled by each aggregate's module."""

    specs: dict[tuple[str, str], CommandSpec] = field(default_factory=dict)

    def add(self, *specs: CommandSpec) -> None:
        for spec in specs:
            key = (spec.entity, spec.name)
            if key in self.specs:
                raise ValueError(f"command {spec.entity}.{spec.name} declared twice")
            self.specs[key] = spec

    def get(self, entity: str, name: str) -> CommandSpec | None:
        return self.specs.get((entity, name))

    def for_entity(self, entity: str) -> list[CommandSpec]:
        return [s for (e, _), s in self.specs.items() if e == entity]

    def all(self) -> list[CommandSpec]:
        return list(self.specs.values())
