"""Route groups of the ``/v1`` API; each module builds its routes for one runtime."""


def plural(entity: str) -> str:
    """URL collection name of an entity: ``order`` -> ``orders`` (all five take an -s)."""
    return f"{entity}s"
