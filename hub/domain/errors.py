"""Domain errors.

Every rule an aggregate enforces says *no* with one of these, never with a bare
``ValueError``. An error carries what the refusal *is*, not how a transport shows it:
``code`` is a stable machine-readable kind (part of the contract), ``retryable`` says
whether sending the same request again can succeed, and ``field`` names the input that
broke the rule (dotted path such as ``lines.0.unit_price``) so a client can point at it.
The API maps each class to an HTTP status in ``api/errors.py``; the hub knows no HTTP.
"""

from __future__ import annotations

from uuid import UUID


class DomainError(Exception):
    """A command was refused by a business rule; nothing was recorded."""

    code = "rule-violated"
    #: A rule refusal repeats for the same request; only a race (see
    #: :class:`ConcurrencyConflict`) clears by itself.
    retryable = False

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
    """The aggregate's status does not allow this command (e.g. amending a cancelled contract).

    Not retryable: the aggregate will not leave that status by itself, unlike a
    :class:`ConcurrencyConflict`, which a re-read and retry resolves."""

    code = "invalid-transition"


class MergedAway(InvalidTransition):
    """The customer was merged into a survivor; an action must name the survivor instead.

    ``survivor_id`` is the customer that survives (the end of the merge chain), so the
    caller can resend the command there without another lookup.
    """

    code = "customer-merged"

    def __init__(self, message: str, *, field: str | None, survivor_id: UUID) -> None:
        super().__init__(message, field=field)
        self.survivor_id = survivor_id


class Overapplication(DomainError):
    """More money would be applied, refunded or credited than is open."""

    code = "over-application"


class NotFound(DomainError):
    """No aggregate with that id (or external id) exists."""

    code = "not-found"


class AlreadyExists(DomainError):
    """An aggregate with that id exists already (e.g. re-creating from the same source id).

    ``existing`` names the aggregate that is already there (entity and id) when it is known,
    so a client that re-sent a create can carry on with that aggregate instead of guessing.
    """

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
    """Someone else changed the aggregate between our read and our write; retry."""

    code = "concurrent-modification"
    retryable = True


class VersionMismatch(DomainError):
    """``If-Match`` named a version that is no longer the current one (re-read first)."""

    code = "stale-version"


class OwnershipViolation(DomainError):
    """The caller's system does not own a field the command would change."""

    code = "field-not-owned"

    def __init__(self, message: str, *, field: str, owner: str, caller: str) -> None:
        super().__init__(message, field=field)
        self.owner = owner
        self.caller = caller


class ForeignIdentifier(DomainError):
    """The caller tried to link an id that belongs to another system's records.

    Each system vouches only for its own ids: a CRM linking a billing id could point billing's
    webhooks at the wrong customer and make billing's real link look like a duplicate.
    """

    code = "foreign-id"
