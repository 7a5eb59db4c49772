"""Ids the quote-to-cash process derives, shared with the connectors that must find what
it made (billing ends the subscription of a cancelled order's contract)."""

from __future__ import annotations

from hub.domain.identity import external_id

__all__ = ["contract_id_for"]


def contract_id_for(order_id: str) -> str:
    """The contract Concord creates for an order: one id per order, whoever asks twice."""
    return str(external_id("hub", "contract", str(order_id)))
