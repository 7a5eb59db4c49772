"""Reading a Stripe request's parameters as Stripe does: every value arrives as a string
(form encoding), unknown names are refused naming the parameter, ``metadata`` merges and
``""`` unsets — each refusal a 400 ``invalid_request_error`` with ``param``.

Why apart from the endpoints (:mod:`adapters.sandbox.billing`): every endpoint reads its
parameters with these, and their errors are the ones a client library's caller sees.
"""

from __future__ import annotations

from typing import Any

from adapters.sandbox.stripe_wire import StripeFailure

__all__ = ["choice", "flag", "integer", "metadata", "only", "pause", "text"]

Params = dict[str, Any]
_MAX_METADATA_KEYS = 50


def only(params: Params, allowed: str) -> None:
    """Refuse a parameter the endpoint does not take (``allowed``: names, space-separated)."""
    names = set(allowed.split())
    for name in params:
        if name not in names and name != "expand":
            raise StripeFailure(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def text(params: Params, name: str, *, required: bool = False, limit: int = 5000) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise StripeFailure(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise StripeFailure(
            400, f"Invalid string: {name}", code="parameter_invalid_string", param=name
        )
    return value


def integer(
    params: Params, name: str, *, required: bool = False, minimum: int | None = 0
) -> int | None:
    value = text(params, name, required=required)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise StripeFailure(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
        ) from None
    if minimum is not None and number < minimum:
        raise StripeFailure(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=name,
        )
    return number


def flag(params: Params, name: str) -> bool | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if value not in ("true", "false"):
        raise StripeFailure(400, f"Invalid boolean: {value}", param=name)
    return bool(value == "true")


def choice(params: Params, name: str, options: tuple[str, ...], default: str | None) -> str | None:
    value = text(params, name) or default
    if value is not None and value not in options:
        raise StripeFailure(
            400,
            f"Invalid {name}: must be one of {', '.join(options)}",
            code="parameter_invalid_string" if value else None,
            param=name,
        )
    return value


def metadata(params: Params, current: dict[str, str] | None = None) -> dict[str, str]:
    """``metadata[k]=v`` merged into ``current``; ``metadata[k]=`` unsets k, ``metadata=``
    unsets all (as Stripe)."""
    result = dict(current or {})
    given = params.get("metadata")
    if given is None:
        return result
    if given == "":
        return {}
    if not isinstance(given, dict):
        raise StripeFailure(400, "Invalid hash", code="parameter_invalid_hash", param="metadata")
    for key, value in given.items():
        if not isinstance(value, str) or len(key) > 40 or len(value) > 500:
            raise StripeFailure(
                400,
                "Metadata keys are at most 40 characters and values at most 500",
                param=f"metadata[{key}]",
            )
        if value == "":
            result.pop(key, None)
        else:
            result[key] = value
    if len(result) > _MAX_METADATA_KEYS:
        raise StripeFailure(400, "Metadata can have at most 50 keys", param="metadata")
    return result


def pause(value: Any) -> dict[str, Any] | None:
    if value == "":
        return None
    if not isinstance(value, dict):
        raise StripeFailure(400, "Invalid hash", param="pause_collection")
    behavior = choice(value, "behavior", ("keep_as_draft", "mark_uncollectible", "void"), None)
    if behavior is None:
        raise StripeFailure(
            400,
            "Missing required param: pause_collection[behavior].",
            param="pause_collection[behavior]",
        )
    return {"behavior": behavior, "resumes_at": integer(value, "resumes_at")}
