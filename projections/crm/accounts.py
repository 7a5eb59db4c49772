"""``crm_accounts``: every canonical customer as CRM sees it, with its place in the hierarchy.

Why the ultimate parent and depth are recomputed from the parent links after every link
change rather than derived when a row is inserted: a parent may be registered after its
child (CRM syncs accounts in any order), so a row alone cannot know its ancestors. The walk
follows ``parent_customer_id`` upwards through the registered accounts, stops at a link
whose target is not (yet) registered (that id is then the ultimate parent) and at a cycle,
so the result depends only on the set of links, never on the order they arrived in.

Why the walk runs in Python over the memo's copy of the accounts (:class:`Accounts`) rather
than as a recursive query: a rebuild applies two link changes per customer, and each query
was a statement the server planned and ran over the changed account's subtree. The copy is
the table's (loaded whole on a memo miss, then kept as rows are held), so the walk reads
the same links; the rows an event changes (its own, and those below it whose hierarchy
columns moved) are held and each is written once per run, in its final state.

Personal data: like ``erp_customers``, only ``legal_name`` is copied in clear (the account's
name), ``[erased]`` after erasure; no other personal field is copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from hub.domain.customer import ERASED
from projections.definition import Column, Envelope, Position, Table, ViewCursor
from projections.rows import missing_row

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

#: An account registered since the last write, in its state at the write (held in the memo
#: until :func:`write_accounts`): one plain insert text, folded into multi-row inserts.
_INSERT = (
    "INSERT INTO {crm_accounts} (name, crm_account_id, status, merged_into, "
    "parent_customer_id, parent_crm_account_id, ultimate_parent_customer_id, depth, erased, "
    "version, changed_at, position, customer_id) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
#: Every older account touched since the last write (its own events or a move of its place
#: in the hierarchy) writes its row whole from the memo: one text for all.
_UPDATE = (
    "UPDATE {crm_accounts} SET name = %s, crm_account_id = %s, status = %s, merged_into = %s, "
    "parent_customer_id = %s, parent_crm_account_id = %s, ultimate_parent_customer_id = %s, "
    "depth = %s, erased = %s, version = %s, changed_at = %s, position = %s "
    "WHERE customer_id = %s"
)
_LOAD = (
    "SELECT array_agg(customer_id::text), array_agg(name), array_agg(crm_account_id), "
    "array_agg(status), array_agg(merged_into::text), array_agg(parent_customer_id::text), "
    "array_agg(parent_crm_account_id), array_agg(ultimate_parent_customer_id::text), "
    "array_agg(depth), array_agg(erased), array_agg(version), array_agg(changed_at), "
    "array_agg(position) FROM {crm_accounts}"
)
_MEMO_KEY = ("crm", "accounts")
#: The accounts touched since the last write: customer id -> registered since (a new row).
_HELD = ("crm", "accounts.held")


@dataclass
class Account:
    """An account's row as written or held (ids as canonical text)."""

    name: str
    crm_account_id: str | None
    status: str
    merged_into: str | None
    parent: str | None
    parent_crm_account_id: str | None
    ultimate: str
    depth: int
    erased: bool
    version: int
    changed_at: datetime
    position: int


@dataclass
class Accounts:
    """Every registered account and, per parent id (registered or not), its registered
    children: one memo entry, since a link change may move any subtree."""

    rows: dict[str, Account] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)

    def adopt(self, child: str, parent: str | None) -> None:
        if parent is not None:
            self.children.setdefault(parent, set()).add(child)

    def disown(self, child: str, parent: str | None) -> None:
        if parent is not None:
            self.children.get(parent, set()).discard(child)

    def below(self, root: str) -> list[str]:
        """``root`` and every account whose parent links lead to it (cycle-safe)."""
        seen = {root}
        order = [root]
        for account in order:
            for child in self.children.get(account, ()):
                if child not in seen:
                    seen.add(child)
                    order.append(child)
        return order

    def place(self, account: str) -> tuple[str | None, str, int]:
        """(parent's CRM id, ultimate parent, depth): the walk up the registered parents,
        ended by an unregistered parent (the top then) or before repeating an account."""
        row = self.rows[account]
        parent = self.rows.get(row.parent) if row.parent is not None else None
        top, depth, path = account, 0, {account}
        step: Account | None = row
        while step is not None and step.parent is not None and step.parent not in path:
            top, depth = step.parent, depth + 1
            path.add(top)
            step = self.rows.get(top)
        return (None if parent is None else parent.crm_account_id), top, depth


def _canonical(value: Any) -> str | None:
    return None if value is None else str(UUID(str(value)))


def _accounts(cursor: ViewCursor) -> Accounts:
    """The memo's accounts, the table read whole on a miss."""
    known: Accounts | None = cursor.memo.get(_MEMO_KEY)
    if known is not None:
        return known
    known = Accounts()
    row = cursor.fetchone(_LOAD)
    if row is not None and row[0] is not None:
        for id_, *columns in zip(*row, strict=True):
            known.rows[id_] = account = Account(*columns)
            known.adopt(id_, account.parent)
    cursor.memo[_MEMO_KEY] = known
    return known


def apply_customer(event: Envelope, at: Position, cursor: ViewCursor) -> None:
    """One customers-store event on the memo's copy of ``crm_accounts``, its rows held for
    :func:`write_accounts`. Why hold: an account's events (registered, linked, moved ...)
    mostly follow one another in a run, and written one by one each was a statement; held,
    each touched row is written once per run in its final state. The copy holds the whole
    table, so a missing or doubled account is known here, at its event."""
    kind = event["type"]
    data = event["data"]
    customer = event["aggregate_id"]
    known = _accounts(cursor)
    held: dict[str, bool] = cursor.memo.setdefault(_HELD, {})
    stamps = (event["version"], datetime.fromisoformat(event["recorded_at"]), at.position)
    if kind == "CustomerRegistered":
        if customer in known.rows:
            raise ValueError(f"crm_accounts already has customer {customer}")
        parent = _canonical(data.get("parent_customer_id"))
        row = Account(
            data["legal_name"], None, "active", None, parent, None, customer, 0, False, *stamps
        )
        known.rows[customer] = row
        known.adopt(customer, parent)
        row.parent_crm_account_id, row.ultimate, row.depth = known.place(customer)
        held[customer] = True
        _replace_below(known, customer, held)
        return
    found = known.rows.get(customer)
    if found is None:
        raise missing_row("crm_accounts", "customer_id", event)
    row = found
    links = (row.parent, row.crm_account_id)
    _change(kind, data, row)
    row.version, row.changed_at, row.position = stamps
    held.setdefault(customer, False)
    if (row.parent, row.crm_account_id) != links:
        known.disown(customer, links[0])
        known.adopt(customer, row.parent)
        row.parent_crm_account_id, row.ultimate, row.depth = known.place(customer)
        _replace_below(known, customer, held)


def write_accounts(cursor: ViewCursor) -> None:
    """Each account touched since the last call, written once as the memo holds it: the
    older ones as one run of one update text, then the new ones as one run of inserts."""
    held: dict[str, bool] | None = cursor.memo.pop(_HELD, None)
    if not held:
        return
    known = _accounts(cursor)
    for new in (False, True):
        statement = _INSERT if new else _UPDATE
        for customer, registered in held.items():
            if registered is new:
                row = known.rows[customer]
                cursor.execute(
                    statement,
                    (
                        row.name,
                        row.crm_account_id,
                        row.status,
                        row.merged_into,
                        row.parent,
                        row.parent_crm_account_id,
                        row.ultimate,
                        row.depth,
                        row.erased,
                        row.version,
                        row.changed_at,
                        row.position,
                        customer,
                    ),
                )


def _replace_below(known: Accounts, changed: str, held: dict[str, bool]) -> None:
    """Hold the accounts below ``changed`` whose hierarchy columns its change moved."""
    for account in known.below(changed)[1:]:
        row = known.rows[account]
        place = known.place(account)
        if place != (row.parent_crm_account_id, row.ultimate, row.depth):
            row.parent_crm_account_id, row.ultimate, row.depth = place
            held.setdefault(account, False)


def _change(kind: str, data: dict[str, Any], row: Account) -> None:
    """What one event changes on the account's row."""
    if kind == "CustomerDetailsChanged":
        details = data["details"]
        if "legal_name" in data["changed"]:
            row.name = details.get("legal_name")
        if "parent_customer_id" in data["changed"]:
            row.parent = _canonical(details.get("parent_customer_id"))
    elif kind == "CustomerLinked" and data["system"] == "crm":
        row.crm_account_id = data["external_id"]
    elif kind == "CustomerStatusChanged":
        row.status = data["status"]
    elif kind == "CustomerMerged":
        row.status, row.merged_into = "merged", _canonical(data["target_customer_id"])
    elif kind == "CustomerPersonalDataErased":
        row.name, row.erased = ERASED, True
