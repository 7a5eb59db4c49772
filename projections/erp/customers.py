"""``erp_customers``: every canonical customer as the ERP knows it.

The ERP owns the customer number and payment terms; CRM owns the name and the hierarchy
(``adapters/ownership.yaml``). This table puts them side by side, keyed by the canonical id,
so a BI tool joins ERP postings to customers without reading events.

Personal data (see the README, "Personal data and erasure"): of the customer's personal
fields only ``legal_name`` is copied in clear (an ERP report needs to say who the customer
is); ``tax_id`` is only said to exist (``[withheld]``); display name, web domain and address
are not copied at all. The erasure event overwrites both with ``[erased]``, and a rebuild
after an erasure reads ``[erased]`` from the start (the customer's key is gone).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from hub.domain.customer import ERASED
from projections.definition import Column, Envelope, Position, Projection, Table, ViewCursor
from projections.rows import update_latest

WITHHELD = "[withheld]"

CUSTOMERS = Table(
    name="erp_customers",
    comment=(
        "Concord ERP view: one row per canonical customer, with the ERP's customer number "
        "and payment terms beside CRM's name and hierarchy. Built by the erp projection."
    ),
    primary_key=("customer_id",),
    columns=(
        Column("customer_id", "uuid", "Canonical customer id (Concord).", not_null=True),
        Column(
            "erp_customer_number",
            "text",
            "The ERP's customer number (owned by the ERP); NULL until the ERP assigned one.",
        ),
        Column(
            "erp_record_id",
            "text",
            "The ERP's internal record id linked to this customer; NULL until linked.",
        ),
        Column(
            "legal_name",
            "text",
            "Registered legal name (owned by CRM). Personal data: '[erased]' once the "
            "customer's personal data was erased.",
            not_null=True,
        ),
        Column(
            "tax_id",
            "text",
            "Never the tax id itself (personal data): '[withheld]' when one is on file, "
            "'[erased]' after erasure, NULL when none.",
        ),
        Column(
            "parent_customer_id",
            "uuid",
            "Canonical id of the parent customer in the account hierarchy (CRM); NULL at the top.",
        ),
        Column(
            "payment_terms", "text", "The ERP's payment terms code, e.g. NET30; NULL until set."
        ),
        Column("currency", "text", "ISO 4217 currency of the customer's account; may be NULL."),
        Column(
            "status",
            "text",
            "active, on_hold, closed or merged.",
            not_null=True,
        ),
        Column(
            "merged_into",
            "uuid",
            "When status is merged: the surviving customer's canonical id.",
        ),
        Column(
            "erased",
            "boolean",
            "True once the customer's personal data was erased.",
            not_null=True,
        ),
        Column(
            "version",
            "bigint",
            "Version of the customer aggregate this row reflects (its last event).",
            not_null=True,
        ),
        Column(
            "changed_at",
            "timestamptz",
            "When Concord recorded the customer's last event.",
            not_null=True,
        ),
        Column(
            "position",
            "bigint",
            "Position of that event in the customers store's log "
            "(customers_events.notification_id).",
            not_null=True,
        ),
    ),
)

_COLUMNS = tuple(c.name for c in CUSTOMERS.columns)
#: A customer's whole row, in its state at the end of the run (see ``write_held``).
_INSERT = (
    f"INSERT INTO {{erp_customers}} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})"
)
#: Memo key: customers registered in the run under way -> their row (column -> value).
_HELD = "erp.registered"
#: Detail fields the view copies, and how (the rest of a details change is not copied).
_DETAILS = ("legal_name", "tax_id", "parent_customer_id", "currency")


def tax_id_marker(value: Any) -> str | None:
    if value is None:
        return None
    return ERASED if value == ERASED else WITHHELD


class ErpCustomers(Projection):
    name: ClassVar[str] = "erp"
    title: ClassVar[str] = "ERP view"
    version: ClassVar[int] = 2
    stores: ClassVar[tuple[str, ...]] = ("customers",)
    tables: ClassVar[tuple[Table, ...]] = (CUSTOMERS,)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        """A customer registered in this run is held as its row and written once, in its
        state at the run's end (``write_held``): its number, terms and links usually follow
        the registration at once, and one insert of the final row replaces an insert and
        three updates. Rows of earlier runs are updated as their events come."""
        if event["aggregate"] != "customer":
            return
        data = event["data"]
        kind = event["type"]
        held: dict[str, dict[str, Any]] = cursor.memo.setdefault(_HELD, {})
        customer = event["aggregate_id"]
        if kind == "CustomerRegistered":
            row: dict[str, Any] = dict.fromkeys(_COLUMNS)
            row |= {
                "customer_id": customer,
                "legal_name": data["legal_name"],
                "tax_id": tax_id_marker(data.get("tax_id")),
                "parent_customer_id": data.get("parent_customer_id"),
                "currency": data.get("currency"),
                "status": "active",
                "erased": False,
            }
            self._stamp(row, event, at)
            if customer in held:  # registered twice: sent at once, so the table refuses the
                # pair (named at this event by the statement-by-statement replay)
                cursor.execute(_INSERT, tuple(row[c] for c in _COLUMNS))
            else:
                held[customer] = row
            return
        changes = self._changes(kind, data)
        found = held.get(customer)
        if found is None:
            self._update(event, at, cursor, changes)
            return
        found |= changes
        self._stamp(found, event, at)

    def write_held(self, cursor: ViewCursor) -> None:
        held: dict[str, dict[str, Any]] | None = cursor.memo.pop(_HELD, None)
        for row in (held or {}).values():
            cursor.execute(_INSERT, tuple(row[c] for c in _COLUMNS))

    @staticmethod
    def _stamp(row: dict[str, Any], event: Envelope, at: Position) -> None:
        row["version"] = event["version"]
        row["changed_at"] = datetime.fromisoformat(event["recorded_at"])
        row["position"] = at.position

    @staticmethod
    def _changes(kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Column -> new value for one event (empty: only version and time move)."""
        if kind == "CustomerDetailsChanged":
            details = data["details"]
            changes = {f: details.get(f) for f in data["changed"] if f in _DETAILS}
            if "tax_id" in changes:
                changes["tax_id"] = tax_id_marker(changes["tax_id"])
            return changes
        if kind == "CustomerNumberAssigned":
            return {"erp_customer_number": data["customer_number"]}
        if kind == "CustomerPaymentTermsSet":
            return {"payment_terms": data["payment_terms"]}
        if kind == "CustomerLinked" and data["system"] == "erp":
            return {"erp_record_id": data["external_id"]}
        if kind == "CustomerStatusChanged":
            return {"status": data["status"]}
        if kind == "CustomerMerged":
            return {"status": "merged", "merged_into": data["target_customer_id"]}
        if kind == "CustomerPersonalDataErased":
            return {"legal_name": ERASED, "tax_id": ERASED, "erased": True}
        return {}

    @staticmethod
    def _update(event: Envelope, at: Position, cursor: ViewCursor, changes: dict[str, Any]) -> None:
        update_latest(cursor, "erp_customers", "customer_id", event, at, changes)
