"""Route groups of the ``/v1`` API; each module builds its routes for one runtime."""


def plural(entity: str) -> str:
    """URL collection name of an entity: ``order`` -> ``orders`` (all five take an -s)."""
    return f"{entity}s"


def article(noun: str) -> str:
    """``a customer``, ``an order``, ``an invoice``: summaries are read by people."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
