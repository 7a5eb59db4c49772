"""The wire rules of Stripe's API, for the billing sandbox: form-encoded parameters, the
error shape, ``Idempotency-Key`` replay, the per-second request limit and search queries.

Why apart from the objects (:mod:`adapters.sandbox.billing`): these are the parts a client
library depends on byte for byte (the SDK decodes errors by ``error.type``, retries on 409
and 429, and sends ``items[0][price]=…``), and each is tested on its own.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

__all__ = [
    "IdempotencyStore",
    "RateWindow",
    "Stored",
    "StripeFailure",
    "error_body",
    "parse_form",
    "search_filter",
]

MAX_KEY_LENGTH = 255
_PART = re.compile(r"\[([^\[\]]*)\]")


def error_body(
    error_type: str, message: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """``{"error": {...}}`` as Stripe answers every failure."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param is not None:
        error["param"] = param
    return {"error": error}


class StripeFailure(Exception):
    """A refused request. ``saved``: whether an idempotent replay returns it again (Stripe
    saves a result once an endpoint began executing; a request refused by validation
    before that is not saved, so the same key may be retried with fixed parameters)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(error_type, message, code, param)
        self.body["error"].update(extra or {})
        self.saved = saved


def missing(kind: str, object_id: str, param: str = "id") -> StripeFailure:
    return StripeFailure(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


def _path(name: str) -> list[str]:
    head, _, rest = name.partition("[")
    return [head, *_PART.findall("[" + rest)] if rest else [head]


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if value and all(k.isdigit() for k in value):
            return [value[k] for k in sorted(value, key=int)]
    return value


def parse_form(raw: str) -> dict[str, Any]:
    """``items[0][price]=p&metadata[k]=v&expand[]=x`` → nested dicts and lists.

    Values stay strings (as Stripe receives them); each endpoint coerces what it reads."""
    root: dict[str, Any] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True, max_num_fields=2000):
        parts = _path(name)
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":  # ``expand[]=x``: an appended list element
                break
            if last:
                node[part] = value
            else:
                following = parts[index + 1]
                if following == "":
                    existing = node.setdefault(part, [])
                    if not isinstance(existing, list):
                        raise StripeFailure(400, f"Invalid array: {name}", param=name)
                    existing.append(value)
                    break
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise StripeFailure(400, f"Invalid hash: {name}", param=name)
                node = child
    return dict(_listify(root))


@dataclass
class Stored:
    """One idempotency key's first request and, once done, its answer."""

    fingerprint: bytes
    request_id: str
    status: int = 0
    body: bytes = b""
    done: bool = False


class IdempotencyStore:
    """Keys → the first answer (Stripe keeps them at least 24 hours; here: until reset)."""

    def __init__(self) -> None:
        self._keys: dict[str, Stored] = {}
        self._lock = threading.Lock()

    @staticmethod
    def fingerprint(method: str, path: str, params: Mapping[str, Any]) -> bytes:
        return orjson.dumps([method, path, params], option=orjson.OPT_SORT_KEYS)

    def begin(self, key: str, fingerprint: bytes, request_id: str) -> Stored | None:
        """None: the key is new and now in flight. A :class:`Stored`: replay it. Raises the
        409 (in flight) or the 400 ``idempotency_error`` (other parameters)."""
        if len(key) > MAX_KEY_LENGTH:
            raise StripeFailure(
                400,
                f"Idempotency keys may be at most {MAX_KEY_LENGTH} characters long.",
                param="Idempotency-Key",
            )
        with self._lock:
            found = self._keys.get(key)
            if found is None:
                self._keys[key] = Stored(fingerprint, request_id)
                return None
        if not found.done:
            raise StripeFailure(
                409,
                "There is currently another in-progress request using this idempotency "
                "key. Please try again later.",
                code="idempotency_key_in_use",
            )
        if found.fingerprint != fingerprint:
            raise StripeFailure(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request.",
                error_type="idempotency_error",
            )
        return found

    def finish(self, key: str, status: int, body: bytes, saved: bool) -> None:
        with self._lock:
            if not saved:
                self._keys.pop(key, None)
                return
            stored = self._keys[key]
            stored.status, stored.body, stored.done = status, body, True

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()


class RateWindow:
    """At most ``per_s`` requests in any one-second window (Stripe: 25/s in test mode)."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> bool:
        if self.per_s <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] >= 1.0:
                self._times.popleft()
            if len(self._times) >= self.per_s:
                return False
            self._times.append(now)
            return True


_CLAUSE = re.compile(r"^\s*(metadata\['([^']+)'\]|[a-z_]+)\s*:\s*'([^']*)'\s*$")


def search_filter(query: str) -> list[tuple[str, str | None, str]]:
    """Clauses of a Stripe search query this sandbox understands: ``field:'value'`` and
    ``metadata['key']:'value'`` joined by ``AND``; ``(field, metadata key, value)`` each."""
    clauses = []
    for part in re.split(r"\s+AND\s+", query.strip()):
        found = _CLAUSE.match(part)
        if found is None:
            raise StripeFailure(
                400,
                f"The sandbox understands field:'value' and metadata['key']:'value' "
                f"clauses joined by AND; cannot parse {part!r}",
                code="parameter_invalid_string",
                param="query",
            )
        field, key, value = found.groups()
        clauses.append(("metadata", key, value) if key else (field, None, value))
    return clauses


def matches(record: Mapping[str, Any], clauses: list[tuple[str, str | None, str]]) -> bool:
    for field, key, value in clauses:
        actual = record.get("metadata", {}).get(key) if key else record.get(field)
        if str(actual) != value:
            return False
    return True
