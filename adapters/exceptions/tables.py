"""``concord_exception_actions``: who acted on which stuck item, how, and when.

Why its own table and not the sources' columns: the sources keep their own states (a dead
letter's ``resolved_by``, a review's ``decided_by``), but a note on a rejected order or an
overdue step has nowhere else to go, and one table lets the lineage show every operator
action on an object beside its events.
"""

from __future__ import annotations

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_exception_actions (
        id            bigserial   PRIMARY KEY,
        exception_id  text        NOT NULL,
        object_kind   text        NOT NULL,
        object_id     text        NOT NULL,
        reason        text        NOT NULL,
        action        text        NOT NULL,
        note          text,
        actor         text        NOT NULL,
        at            timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS concord_exception_actions_exception
        ON {schema}.concord_exception_actions (exception_id, id)
    """,
    """
    CREATE INDEX IF NOT EXISTS concord_exception_actions_object
        ON {schema}.concord_exception_actions (object_id, object_kind)
    """,
]
