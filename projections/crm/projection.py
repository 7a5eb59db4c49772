"""The ``crm`` projection: accounts (customers store), opportunities and their milestones
(orders, contracts, invoices)."""

from __future__ import annotations

from typing import ClassVar

from projections.crm.accounts import ACCOUNTS, apply_customer, write_accounts
from projections.crm.invoices import INVOICES, MILESTONES, MOVES, apply_invoice, write_invoices
from projections.crm.opportunities import (
    CONTRACTS,
    OPPORTUNITIES,
    apply_contract,
    apply_order,
    write_contracts,
    write_orders,
)
from projections.definition import Envelope, Position, Projection, Table, View, ViewCursor


class CrmView(Projection):
    name: ClassVar[str] = "crm"
    title: ClassVar[str] = "CRM view"
    version: ClassVar[int] = 6
    stores: ClassVar[tuple[str, ...]] = ("customers", "orders", "contracts", "invoices")
    tables: ClassVar[tuple[Table, ...]] = (ACCOUNTS, OPPORTUNITIES, CONTRACTS, INVOICES, MOVES)
    views: ClassVar[tuple[View, ...]] = (MILESTONES,)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        if event["aggregate"] == "customer":
            apply_customer(event, at, cursor)
        elif event["aggregate"] == "order":
            apply_order(event, cursor)
        elif event["aggregate"] == "contract":
            apply_contract(event, cursor)
        elif event["aggregate"] == "invoice":
            apply_invoice(event, cursor)

    def write_held(self, cursor: ViewCursor) -> None:
        """What each module held since the last call (only the current store's run holds
        anything), each touched row written once in its final state."""
        write_accounts(cursor)
        write_orders(cursor)
        write_contracts(cursor)
        write_invoices(cursor)
