"""System-of-record ownership: which system may write which field of which entity.

The policy is data (``adapters/ownership.yaml``, versioned, shipped in the package) so a
company can change who owns what without a release. The hub checks every command against
it before anything runs; ``admin`` callers (operators, migrations) are exempt and their
writes are stamped ``api``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.domain.errors import OwnershipViolation

OWNER_SYSTEMS = frozenset({"crm", "erp", "billing", "hub"})
READER_SYSTEMS = frozenset({"crm", "erp", "billing"})
ADMIN = "admin"


def _as_set(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


class EntityOwnership(BaseModel):
    """Owners of one entity's fields; ``default`` covers fields not listed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: list[str] = Field(min_length=1)
    fields: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("default", mode="before")
    @classmethod
    def _default_list(cls, value: Any) -> Any:
        return _as_set(value)

    @field_validator("fields", mode="before")
    @classmethod
    def _field_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _as_set(v) for k, v in value.items()}
        return value

    @field_validator("default", "fields")
    @classmethod
    def _known_systems(cls, value: Any) -> Any:
        owners = value if isinstance(value, list) else [o for v in value.values() for o in v]
        unknown = sorted(set(owners) - OWNER_SYSTEMS)
        if unknown:
            raise ValueError(f"unknown system(s) {unknown}; use {sorted(OWNER_SYSTEMS)}")
        return value

    def owners(self, field: str) -> list[str]:
        return self.fields.get(field, self.default)


class OwnershipPolicy(BaseModel):
    """The whole policy, as loaded from the versioned file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    entities: dict[str, EntityOwnership]
    personal_data: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict,
        description="Per entity, each personal field and the systems that may read it; "
        "admin callers read everything, other systems see the field redacted.",
    )

    @field_validator("personal_data")
    @classmethod
    def _known_readers(cls, value: dict[str, dict[str, list[str]]]) -> Any:
        readers = {r for fields in value.values() for names in fields.values() for r in names}
        unknown = sorted(readers - READER_SYSTEMS)
        if unknown:
            raise ValueError(f"unknown reader system(s) {unknown}; use {sorted(READER_SYSTEMS)}")
        return value

    def hidden_from(self, caller_system: str, entity: str) -> frozenset[str]:
        """Personal fields of ``entity`` that ``caller_system`` may not read.

        Why a read policy beside the write policy: ownership says who may *change* a field,
        but personal data (GDPR art. 5(1)(c), data minimisation) should reach only the
        systems that need it to do their job, whoever wrote it.
        """
        if caller_system == ADMIN:
            return frozenset()
        fields = self.personal_data.get(entity, {})
        return frozenset(name for name, readers in fields.items() if caller_system not in readers)

    def owners(self, entity: str, field: str) -> list[str]:
        try:
            return self.entities[entity].owners(field)
        except KeyError:
            raise ValueError(f"ownership policy has no entity {entity!r}") from None

    def check(self, caller_system: str, entity: str, fields: list[str]) -> None:
        """Refuse the first field ``caller_system`` does not own (guard clause for commands)."""
        if caller_system == ADMIN:
            return
        for field in fields:
            owners = self.owners(entity, field)
            if caller_system not in owners:
                raise OwnershipViolation(
                    f"{caller_system} may not change {entity}.{field}: "
                    f"it is owned by {' or '.join(owners)}",
                    field=field,
                    owner=",".join(owners),
                    caller=caller_system,
                )
