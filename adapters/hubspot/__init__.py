"""HubSpot CRM webhooks (Webhooks API v3 batches), translated to canonical."""

from adapters.hubspot.adapter import HubSpotAdapter
from adapters.hubspot.deals import DealRules

__all__ = ["DealRules", "HubSpotAdapter"]
