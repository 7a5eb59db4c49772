"""Chargebee webhooks (API v2, Product Catalog 2.0, HTTP Basic), translated to canonical."""

from adapters.chargebee.adapter import ChargebeeAdapter

__all__ = ["ChargebeeAdapter"]
