"""Stripe Billing webhooks (API version ``2025-03-31.basil``), translated to canonical."""

from adapters.stripe.adapter import STRIPE_API_VERSION, StripeAdapter

__all__ = ["STRIPE_API_VERSION", "StripeAdapter"]
