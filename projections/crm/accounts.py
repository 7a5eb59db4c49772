"""``crm_accounts``: every canonical customer as CRM sees it, with its place in the hierarchy.

Why the ultimate parent and depth are recomputed from the stored parent links after every
link change rather than derived when a row is inserted: a parent may be registered after
its child (CRM syncs accounts in any order), so a row alone cannot know its ancestors. The
walk follows ``parent_customer_id`` upwards through the stored rows, stops at a link whose
target is not (yet) registered (that id is then the ultimate parent) and at a cycle, so the
result depends only on the set of links, never on the order they arrived in.

Personal data: like ``erp_customers``, only ``legal_name`` is copied in clear (the account's
name), ``[erased]`` after erasure; no other personal field is copied.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.domain.customer import ERASED
from projections.definition import Column, Envelope, Position, Table, ViewCursor
from projections.rows import update_latest

ACCOUNTS = Table(
    name="crm_accounts",
    comment=(
        "Concord CRM view: one row per canonical customer (account) with its CRM account id "
        "and its place in the account hierarchy. Built by the crm projection."
    ),
    primary_key=("customer_id",),
    indexes=(("parent_customer_id",),),
    columns=(
        Column("customer_id", "uuid", "Canonical customer id (Concord).", not_null=True),
        Column(
            "name",
            "text",
            "Registered legal name (owned by CRM). Personal data: '[erased]' once the "
            "customer's personal data was erased.",
            not_null=True,
        ),
        Column(
            "crm_account_id",
            "text",
            "CRM's account id linked to this customer (CustomerLinked, system crm); NULL "
            "until linked.",
        ),
        Column("status", "text", "active, on_hold, closed or merged.", not_null=True),
        Column("merged_into", "uuid", "When status is merged: the surviving customer's id."),
        Column(
            "parent_customer_id",
            "uuid",
            "Canonical id of the direct parent account; NULL at the top. May name a customer "
            "not registered (yet).",
        ),
        Column(
            "parent_crm_account_id",
            "text",
            "The parent's CRM account id; NULL without parent or while the parent is unknown "
            "or unlinked.",
        ),
        Column(
            "ultimate_parent_customer_id",
            "uuid",
            "Top of the hierarchy reached by following parents (the account itself at the "
            "top; a parent not yet registered ends the walk; a cycle stops before repeating).",
            not_null=True,
        ),
        Column(
            "depth",
            "integer",
            "Number of parent links from this account to its ultimate parent (0 at the top).",
            not_null=True,
        ),
        Column("erased", "boolean", "True once personal data was erased.", not_null=True),
        Column("version", "bigint", "Version of the customer aggregate (its last event).", True),
        Column("changed_at", "timestamptz", "When Concord recorded that event.", not_null=True),
        Column(
            "position",
            "bigint",
            "Position of that event in the customers store's log.",
            not_null=True,
        ),
    ),
)

_INSERT = (
    "INSERT INTO {crm_accounts} (customer_id, name, status, parent_customer_id, "
    "ultimate_parent_customer_id, depth, erased, version, changed_at, position) "
    "VALUES (%s, %s, 'active', %s, %s, 0, false, %s, %s, %s)"
)

#: The changed account and every account below it (the only ones whose hierarchy columns
#: can change), then their parent links walked upwards (stopping at a cycle), keeping the
#: deepest step. Why not every account: a rebuild applies one such event per customer, and
#: a walk over the whole table each time made the rebuild quadratic in the accounts.
_RECOMPUTE = """
WITH RECURSIVE below (customer_id, path) AS (
    SELECT customer_id, ARRAY[customer_id] FROM {crm_accounts} WHERE customer_id = %s
    UNION ALL
    SELECT a.customer_id, b.path || a.customer_id
    FROM below b JOIN {crm_accounts} a ON a.parent_customer_id = b.customer_id
    WHERE NOT a.customer_id = ANY (b.path)
), walk (customer_id, ancestor, depth, path) AS (
    SELECT customer_id, customer_id, 0, ARRAY[customer_id]
    FROM (SELECT DISTINCT customer_id FROM below) changed
    UNION ALL
    SELECT w.customer_id, a.parent_customer_id, w.depth + 1, w.path || a.parent_customer_id
    FROM walk w JOIN {crm_accounts} a ON a.customer_id = w.ancestor
    WHERE a.parent_customer_id IS NOT NULL AND NOT a.parent_customer_id = ANY (w.path)
), top AS (
    SELECT DISTINCT ON (customer_id) customer_id, ancestor, depth
    FROM walk ORDER BY customer_id, depth DESC
)
UPDATE {crm_accounts} c
SET ultimate_parent_customer_id = top.ancestor, depth = top.depth,
    parent_crm_account_id = (
        SELECT p.crm_account_id FROM {crm_accounts} p WHERE p.customer_id = c.parent_customer_id
    )
FROM top
WHERE top.customer_id = c.customer_id
  AND (c.ultimate_parent_customer_id, c.depth, c.parent_crm_account_id)
      IS DISTINCT FROM (top.ancestor, top.depth, (
        SELECT p.crm_account_id FROM {crm_accounts} p WHERE p.customer_id = c.parent_customer_id
      ))
"""

#: Events whose change moves a link (parent or CRM id) and so the hierarchy columns.
_RELINKS = ("CustomerRegistered", "CustomerDetailsChanged", "CustomerLinked")


def apply_customer(event: Envelope, at: Position, cursor: ViewCursor) -> None:
    """One customers-store event on ``crm_accounts``."""
    kind = event["type"]
    data = event["data"]
    if kind == "CustomerRegistered":
        cursor.execute(
            _INSERT,
            (
                event["aggregate_id"],
                data["legal_name"],
                data.get("parent_customer_id"),
                event["aggregate_id"],
                event["version"],
                datetime.fromisoformat(event["recorded_at"]),
                at.position,
            ),
        )
    else:
        update_latest(cursor, "crm_accounts", "customer_id", event, at, _changes(kind, data))
    if kind in _RELINKS:
        cursor.execute(_RECOMPUTE, (event["aggregate_id"],))


def _changes(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    if kind == "CustomerDetailsChanged":
        details = data["details"]
        changes = {}
        if "legal_name" in data["changed"]:
            changes["name"] = details.get("legal_name")
        if "parent_customer_id" in data["changed"]:
            changes["parent_customer_id"] = details.get("parent_customer_id")
        return changes
    if kind == "CustomerLinked" and data["system"] == "crm":
        return {"crm_account_id": data["external_id"]}
    if kind == "CustomerStatusChanged":
        return {"status": data["status"]}
    if kind == "CustomerMerged":
        return {"status": "merged", "merged_into": data["target_customer_id"]}
    if kind == "CustomerPersonalDataErased":
        return {"name": ERASED, "erased": True}
    return {}
