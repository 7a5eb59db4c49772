"""NetSuite (the ERP) through Concord's signed user-event envelope, translated to canonical."""

from adapters.netsuite.adapter import NetSuiteAdapter

__all__ = ["NetSuiteAdapter"]
