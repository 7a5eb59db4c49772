"""The transaction lineage: every business object, every system id for it, every event."""
