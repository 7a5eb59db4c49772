"""The billing system's view of the canonical contracts (subscriptions and their items)."""
