"""Lineage for auditors: every object, every system's id for it, and every event linked."""
