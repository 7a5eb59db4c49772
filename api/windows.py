"""Month windows of the report routes (``GET /v1/metrics``, ``GET /v1/slas``).

Why a backwards window is refused rather than answered empty: an empty report reads as
"nothing happened", which for finance figures and SLAs is a wrong answer, not no answer.
A ``from`` after ``to`` is a caller's mistake, so it is a 422 problem ``invalid-window``
naming ``query.from`` (its own code: a relation between two parameters, which the OpenAPI
schema cannot state, unlike a malformed month, ``validation-failed``).
"""

from __future__ import annotations

from datetime import date

from api.errors import ProblemError


def require_forward(first: date, last: date, shown_from: str, shown_to: str) -> None:
    """Refuse a window whose first month is after its last (422 naming ``query.from``)."""
    if first <= last:
        return
    detail = f"from ({shown_from}) is after to ({shown_to}); give from at or before to"
    raise ProblemError(
        422,
        "invalid-window",
        detail,
        errors=[{"field": "query.from", "message": detail, "type": "invalid-window"}],
        title="From is after to",
    )
