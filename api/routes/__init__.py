"""Route groups of the ``/v1`` API; each module builds its routes for one runtime."""

from fastapi import Path

from hub.domain.bounded import NO_NUL


def any_id(description: str) -> object:
    """The path parameter of a lookup by any system's id (lineage, processes): bounded like
    every external id Concord accepts."""
    return Path(min_length=1, max_length=255, pattern=NO_NUL, description=description)


def plural(entity: str) -> str:
    """URL collection name of an entity: ``order`` -> ``orders`` (all five take an -s)."""
    return f"{entity}s"


def article(noun: str) -> str:
    """``a customer``, ``an order``, ``an invoice``: summaries are read by people."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
