"""Domain errors.

Every rule an aggregate enforces says *no* with one of these, never with a bare
``ValueError``: the API maps each class to one HTTP status and a problem+json body, so
the class name is part of the contract. ``field`` names the input that broke the rule
(dotted path such as ``lines.0.unit_price``) so a client can point at it.
"""

from __future__ import annotations

from uuid import UUID


class DomainError(Exception):
    """A command was refused by a business rule; nothing was recorded."""

    status = 422
    code = "rule-violated"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidValue(DomainError):
    """An input value has the right type but is not acceptable (bad currency, negative qty)."""

    code = "invalid-value"


class CurrencyMismatch(DomainError):
    """Two amounts in different currencies met; Concord never converts silently."""

    code = "currency-mismatch"


class InvalidTransition(DomainError):
    """The aggregate's status does not allow this command (e.g. amending a cancelled contract)."""

    status = 409
    code = "invalid-transition"


class Overapplication(DomainError):
    """More money would be applied, refunded or credited than is open."""

    code = "over-application"


class NotFound(DomainError):
    """No aggregate with that id (or external id) exists."""

    status = 404
    code = "not-found"


class AlreadyExists(DomainError):
    """An aggregate with that id exists already (e.g. re-creating from the same source id).

    ``existing`` names the aggregate that is already there (entity and id) when it is known,
    so a client that re-sent a create can carry on with that aggregate instead of guessing.
    """

    status = 409
    code = "already-exists"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        existing: tuple[str, UUID] | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.existing = existing


class ConcurrencyConflict(DomainError):
    """Someone else changed the aggregate between our read and our write."""

    status = 409
    code = "concurrent-modification"


class VersionMismatch(DomainError):
    """``If-Match`` named a version that is no longer the current one."""

    status = 412
    code = "stale-version"


class OwnershipViolation(DomainError):
    """The caller's system does not own a field the command would change."""

    status = 403
    code = "field-not-owned"

    def __init__(self, message: str, *, field: str, owner: str, caller: str) -> None:
        super().__init__(message, field=field)
        self.owner = owner
        self.caller = caller
