"""Salesforce Change Data Capture (Account, Opportunity, OpportunityLineItem, Product2,
Contract), posted by a CometD or Pub/Sub API bridge, translated to canonical."""

from adapters.salesforce.adapter import SalesforceAdapter
from adapters.salesforce.ids import to_18

__all__ = ["SalesforceAdapter", "to_18"]
