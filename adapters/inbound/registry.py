"""Every source system Concord speaks, by the name in ``POST /v1/webhooks/<name>``."""

from __future__ import annotations

from adapters.chargebee import ChargebeeAdapter
from adapters.hubspot import DealRules, HubSpotAdapter
from adapters.inbound.source import SourceAdapter
from adapters.netsuite import NetSuiteAdapter
from adapters.salesforce import SalesforceAdapter
from adapters.settings import Settings
from adapters.stripe import StripeAdapter


def build_adapters(settings: Settings) -> dict[str, SourceAdapter]:
    """One adapter per system, configured from settings (metadata keys and the like)."""
    adapters: list[SourceAdapter] = [
        StripeAdapter(
            account_key=settings.stripe_account_metadata_key,
            erp_customer_key=settings.stripe_erp_customer_metadata_key,
        ),
        HubSpotAdapter(
            public_url=settings.hubspot_webhook_url,
            app_id=settings.hubspot_app_id,
            rules=DealRules(
                won_stages=frozenset(
                    s.strip() for s in settings.hubspot_won_stages.split(",") if s.strip()
                ),
                default_currency=settings.hubspot_default_currency,
            ),
        ),
        SalesforceAdapter(echo_client=settings.salesforce_echo_client),
        NetSuiteAdapter(),
        ChargebeeAdapter(
            account_field=settings.chargebee_account_field,
            order_field=settings.chargebee_order_field,
        ),
    ]
    return {adapter.name: adapter for adapter in adapters}
