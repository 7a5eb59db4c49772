"""Read models: PostgreSQL tables that BI tools and auditors read, built from the event log.

Each read model lives in its own folder and is a :class:`projections.definition.Projection`:
its name, a code version, the stores it follows, its tables (every table and column with a
comment) and an ``apply`` that turns one event envelope into row writes. This package knows
nothing of PostgreSQL connections: the runner (``adapters/projections``) reads the stores,
hands each event to ``apply`` with a cursor onto the right generation of the tables (live or
shadow), and commits the writes with the tracking positions in one transaction.
"""
