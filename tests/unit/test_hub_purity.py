"""``hub/`` decides and does no I/O: no HTTP, no OpenTelemetry, no persistence wiring.

Checked on the source (imports and names), so a later change that lets a transport or a
storage detail back into the domain fails here rather than in review.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from adapters.postgres.committer import DependencyFailed, StoreBusy, StoreUnavailable
from hub.application.ports import StoreError
from hub.application.service import IdempotencyMismatch, UnknownCommand
from hub.domain import errors
from hub.domain.errors import DomainError

HUB = Path(__file__).resolve().parents[2] / "hub"

#: Imports the hub must not make: transports, telemetry, drivers, and our outer layers.
FORBIDDEN = (
    "adapters",
    "api",
    "projections",
    "fastapi",
    "starlette",
    "http",
    "httpx",
    "opentelemetry",
    "psycopg",
    "psycopg_pool",
    "nats",
    "eventsourcing.application",
    "eventsourcing.persistence",
    "eventsourcing.postgres",
)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_hub_imports_no_transport_telemetry_or_storage() -> None:
    offending = {
        f"{path.relative_to(HUB.parent)}: {name}"
        for path in HUB.rglob("*.py")
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not offending, sorted(offending)


def test_hub_configures_no_persistence_topics() -> None:
    for path in HUB.rglob("*.py"):
        text = path.read_text()
        for key in ("TRANSCODER_TOPIC", "MAPPER_TOPIC", "PERSISTENCE_MODULE", "POSTGRES_"):
            assert key not in text, f"{path.relative_to(HUB.parent)} names {key}"


def test_domain_errors_carry_a_code_and_no_status() -> None:
    classes = [
        c for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, DomainError)
    ] + [IdempotencyMismatch, UnknownCommand]
    for cls in classes:
        assert not hasattr(cls, "status"), f"{cls.__name__} carries an HTTP status"
        assert cls.code and isinstance(cls.retryable, bool)
    assert errors.ConcurrencyConflict.retryable and not errors.InvalidTransition.retryable
    assert errors.ConcurrencyConflict.code != errors.InvalidTransition.code


def test_store_failures_are_not_domain_errors() -> None:
    for cls in (StoreBusy, StoreUnavailable):
        assert issubclass(cls, StoreError) and not issubclass(cls, DomainError)
        assert cls.retryable and not hasattr(cls, "status")
    # A batch line built on a failed line is a rule of bulk ingest, not a storage failure.
    assert issubclass(DependencyFailed, DomainError)
