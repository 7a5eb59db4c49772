"""Outbound connectors: how a subscriber hands one event to one external system."""
