"""``billing_subscriptions`` and ``billing_subscription_items``: every contract as billing
sees it, one row per contract and one row per subscribed item.

Why the items are "as recorded" rather than "as of today": a view must come out identical
from a rebuild, so it cannot read the clock. The items are those in force on the day the
contract's last amendment was recorded (the contract aggregate decides the same way, from
the event's own timestamp); amendments effective after that day are listed, not applied, in
``scheduled_changes``, each with its effective date, so a BI query for a later date applies
the ones effective by then.

Why ``amendment_log`` is kept: an amendment recorded later may be effective *earlier* than
one already recorded, and the items then follow effective-date order (as the aggregate
does). Replaying that needs the items the contract was created with and every amendment,
which is what the log holds; BI readers use the items table instead.

Money is exact: prices and quantities are PostgreSQL ``numeric`` built from the events'
decimal strings, never floats; a unit price carries at least the currency's minor-unit
digits (``49`` EUR is ``49.00``) and keeps finer rates as given (``0.0004`` USD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar

import orjson

from hub.domain.contract import ContractItem, ItemChange, ScheduledChange, bring_into_force
from hub.domain.money import exponent
from projections.definition import (
    Column,
    Envelope,
    Position,
    Projection,
    Table,
    View,
    ViewCursor,
)
from projections.rows import missing_row

SUBSCRIPTIONS = Table(
    name="billing_subscriptions",
    comment=(
        "Concord billing view: one row per contract (subscription) with its billing "
        "subscription id, status, term and scheduled changes. Built by the billing projection."
    ),
    primary_key=("contract_id",),
    columns=(
        Column("contract_id", "uuid", "Canonical contract id (Concord).", not_null=True),
        Column("customer_id", "uuid", "Canonical id of the contract's customer.", not_null=True),
        Column("order_id", "uuid", "Canonical id of the order the contract came from.", True),
        Column(
            "billing_subscription_id",
            "text",
            "The billing system's subscription id; NULL until the contract was activated.",
        ),
        Column(
            "status",
            "text",
            "pending, active, suspended or cancelled, as last recorded (cancelled as soon as "
            "a cancellation is recorded, also when its cancellation_date is still ahead).",
            not_null=True,
        ),
        Column("currency", "text", "ISO 4217 currency of every price on the contract.", True),
        Column("term_start", "date", "First day of the contract term.", not_null=True),
        Column("term_end", "date", "Last day of the term; moves on each renewal.", True),
        Column("cancellation_date", "date", "Day the cancellation takes effect; NULL if none."),
        Column("cancellation_reason", "text", "Reason given with the cancellation, if any."),
        Column(
            "scheduled_changes",
            "jsonb",
            "Amendments effective after the day the last amendment was recorded, by "
            "effective date: [{effective_date, changes: [{sku, quantity, unit_price, "
            "rate_plan}]}], amounts as exact decimal strings, null where unchanged. Not yet "
            "applied to billing_subscription_items.",
            not_null=True,
        ),
        Column(
            "amendment_log",
            "jsonb",
            "Replay state of the projection: the items the contract was created with and "
            "every amendment by effective date. Read billing_subscription_items instead.",
            not_null=True,
        ),
        Column("version", "bigint", "Version of the contract aggregate (its last event).", True),
        Column(
            "changed_at", "timestamptz", "When Concord recorded the contract's last event.", True
        ),
        Column(
            "position",
            "bigint",
            "Position of that event in the contracts store's log "
            "(contracts_events.notification_id).",
            not_null=True,
        ),
    ),
)

ITEMS = Table(
    name="billing_subscription_items",
    comment=(
        "Concord billing view: the items of each contract in force on the day its last "
        "amendment was recorded (see billing_subscriptions.scheduled_changes for later ones)."
    ),
    primary_key=("contract_id", "sku"),
    columns=(
        Column("contract_id", "uuid", "The contract (billing_subscriptions.contract_id).", True),
        Column("sku", "text", "Subscribed SKU; unique within a contract.", not_null=True),
        Column("rate_plan", "text", "Rate plan the SKU is billed on.", not_null=True),
        Column("quantity", "numeric", "Quantity billed each period (usage items: may be 0).", True),
        Column(
            "unit_price",
            "numeric",
            "Price per unit and period in the contract's currency, exact, with at least the "
            "currency's minor-unit digits (finer usage rates kept as given).",
            not_null=True,
        ),
        Column("billing_period", "text", "month, quarter or year.", not_null=True),
        Column("charge_type", "text", "recurring or usage.", not_null=True),
    ),
)

#: The CRM view's ARR: a query of the items in force, so it never disagrees with them.
ACCOUNT_ARR = View(
    name="crm_account_arr",
    comment=(
        "Concord CRM view: annual recurring revenue per account and currency, from the "
        "recurring items in force (billing_subscription_items) of its active or suspended "
        "contracts (pending ones are not billing yet, cancelled ones count nothing from the "
        "moment the cancellation is recorded). Usage items are excluded. No FX."
    ),
    select=(
        "SELECT s.customer_id, s.currency, "
        "sum(i.quantity * i.unit_price * CASE i.billing_period WHEN 'month' THEN 12 "
        "WHEN 'quarter' THEN 4 ELSE 1 END), count(DISTINCT s.contract_id) "
        "FROM {billing_subscriptions} s JOIN {billing_subscription_items} i "
        "ON i.contract_id = s.contract_id "
        "WHERE s.status IN ('active', 'suspended') AND i.charge_type = 'recurring' "
        "GROUP BY s.customer_id, s.currency"
    ),
    columns=(
        Column("customer_id", "uuid", "Canonical id of the account (customer)."),
        Column("currency", "text", "ISO 4217 currency; one row per currency."),
        Column(
            "arr",
            "numeric",
            "Σ quantity x unit price x billing periods per year (month 12, quarter 4, year 1), "
            "exact.",
        ),
        Column("contracts", "bigint", "How many contracts contribute."),
    ),
)

_INSERT = (
    "INSERT INTO {billing_subscriptions} (contract_id, customer_id, order_id, currency, "
    "term_start, billing_subscription_id, status, term_end, cancellation_date, "
    "cancellation_reason, scheduled_changes, amendment_log, version, changed_at, position) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s)"
)
_INSERT_ITEM = (
    "INSERT INTO {billing_subscription_items} (contract_id, sku, rate_plan, quantity, "
    "unit_price, billing_period, charge_type) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
#: A contract's row as its events since the last write leave it, all of its plain columns
#: from the memo, and its JSON columns when amended since (NULL keeps them): one text for
#: every contract, so a batch's updates go as one ``executemany``.
_UPDATE = (
    "UPDATE {billing_subscriptions} SET billing_subscription_id = %s, status = %s, "
    "term_end = %s, cancellation_date = %s, cancellation_reason = %s, "
    "amendment_log = coalesce(%s::jsonb, amendment_log), "
    "scheduled_changes = coalesce(%s::jsonb, scheduled_changes), version = %s, "
    "changed_at = %s, position = %s WHERE contract_id = %s"
)
#: An amendment changes items, never which SKUs a contract has (``amended_items``), and of
#: an item only these three columns: an update of the item is its delete and re-insert.
_UPDATE_ITEM = (
    "UPDATE {billing_subscription_items} SET rate_plan = %s, quantity = %s, unit_price = %s "
    "WHERE contract_id = %s AND sku = %s"
)
_READ = (
    "SELECT billing_subscription_id, status, currency, term_end, cancellation_date, "
    "cancellation_reason, amendment_log FROM {billing_subscriptions} WHERE contract_id = %s"
)
#: Memo keys: a contract as last applied (``(_CONTRACT, contract_id)``: its row exists or is
#: held), and the contracts held for :meth:`BillingSubscriptions.write_held`.
_CONTRACT = "billing"
_HELD = "billing.held"

#: An item as written: rate plan, quantity and unit price as the text of their numerics
#: (``16`` and ``16.0`` are equal decimals but not equal rows).
_Written = tuple[str, str, str]


@dataclass(slots=True)
class _Subscription:
    """What the projection remembers of a contract (``ViewCursor.memo``): the row's plain
    columns that events change, the replay state of ``amendment_log`` parsed (each
    amendment beside its JSON form), and the items as last applied (None when unknown:
    read from the row, not written here). Changed in place by each event: a failed batch
    empties the memo, so a change never outlives the writes it stands for."""

    billing_subscription_id: str | None
    status: str
    currency: str
    term_end: date
    cancellation_date: date | None
    cancellation_reason: str | None
    initial_json: list[Any]
    initial: list[ContractItem]
    amendments: list[tuple[ScheduledChange, Any]]
    items: dict[str, _Written] | None


@dataclass
class _Held:
    """What a contract's events since the last write leave to write: the contract as last
    applied; for a contract created since, the columns that never change (``new``) and
    every item row; for an older one, the item rows that changed (as ``_UPDATE_ITEM``
    takes them); the items ahead when amended since (None: unchanged), and the row's
    version, recording time and position."""

    sub: _Subscription
    version: int
    recorded_at: str
    position: int
    new: tuple[Any, ...] | None = None
    items: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    ahead: list[Any] | None = None


@lru_cache(maxsize=4096)
def _validated_item(raw: tuple[tuple[str, type, Any], ...]) -> ContractItem:
    return ContractItem.model_validate({k: v for k, _, v in raw})


@lru_cache(maxsize=4096)
def _validated_change(raw: tuple[tuple[str, type, Any], ...]) -> ItemChange:
    return ItemChange.model_validate({k: v for k, _, v in raw})


def contract_item(raw: dict[str, Any]) -> ContractItem:
    """``ContractItem.model_validate(raw)``, cached. Why: a store's contracts subscribe the
    same few items over and over, and their validation was most of a creation's cost; the
    models are frozen, so one may serve every event that spells it alike (the key keeps
    each value's type: ``1`` and ``True`` validate differently)."""
    try:
        return _validated_item(tuple((k, type(v), v) for k, v in raw.items()))
    except TypeError:  # an unhashable value: not an item this store holds, let it fail
        return ContractItem.model_validate(raw)


def item_change(raw: dict[str, Any]) -> ItemChange:
    """``ItemChange.model_validate(raw)``, cached (as :func:`contract_item`)."""
    try:
        return _validated_change(tuple((k, type(v), v) for k, v in raw.items()))
    except TypeError:
        return ItemChange.model_validate(raw)


def _with_json(change: ScheduledChange) -> tuple[ScheduledChange, Any]:
    """An amendment beside its JSON form, dumped once (not at every write of its log)."""
    return change, change.model_dump(mode="json")


def unit_price(price: Decimal, currency: str) -> Decimal:
    """``price`` with at least the currency's minor-unit digits (never rounded away)."""
    digits = exponent(currency)
    scale = -int(price.as_tuple().exponent)
    return price if scale >= digits else price.quantize(Decimal(1).scaleb(-digits))


class BillingSubscriptions(Projection):
    name: ClassVar[str] = "billing"
    title: ClassVar[str] = "Billing view"
    version: ClassVar[int] = 4
    stores: ClassVar[tuple[str, ...]] = ("contracts",)
    tables: ClassVar[tuple[Table, ...]] = (SUBSCRIPTIONS, ITEMS)
    views: ClassVar[tuple[View, ...]] = (ACCOUNT_ARR,)

    def apply(self, event: Envelope, at: Position, cursor: ViewCursor) -> None:
        """The contract as its event leaves it, computed from what the memo holds of it
        (read back only on a memo miss: a missing row still stops the projection at the
        event) and held until :meth:`write_held`. Why hold: a contract's events follow one
        another in its store (created, activated, amended, renewed ...), and written one
        by one each was a statement of its own; held, each touched row is written once per
        run in its final state, new ones as multi-row inserts, the others as one run of
        one update text."""
        if event["aggregate"] != "contract":
            return
        contract = event["aggregate_id"]
        key = (_CONTRACT, contract)
        held: dict[str, _Held] = cursor.memo.setdefault(_HELD, {})
        if event["type"] == "ContractCreated":
            if key in cursor.memo:
                raise ValueError(f"billing_subscriptions already has contract {contract}")
            created = held[contract] = self._create(event, at)
            cursor.memo[key] = created.sub
            return
        sub: _Subscription | None = cursor.memo.get(key)
        if sub is None:
            sub = cursor.memo[key] = self._load(event, cursor)
        entry = held.get(contract)
        if entry is None:
            entry = held[contract] = _Held(sub, event["version"], event["recorded_at"], 0)
        if event["type"] == "ContractAmended":
            self._amend(event, sub, entry)
        for field_name, value in self._changes(event["type"], event["data"]).items():
            setattr(sub, field_name, value)
        entry.version, entry.recorded_at, entry.position = (
            event["version"],
            event["recorded_at"],
            at.position,
        )

    def write_held(self, cursor: ViewCursor) -> None:
        """Each contract touched since the last call, written once in its final state: one
        created since as one insert (and its items), an older one as one update (and one
        of each item that changed). Updates first, then inserts: each kind is one run of
        one statement text (the inserts of both tables side by side, folded)."""
        held: dict[str, _Held] | None = cursor.memo.pop(_HELD, None)
        if not held:
            return
        for contract, entry in held.items():
            if entry.new is None:
                sub = entry.sub
                logs = (None, None) if entry.ahead is None else self._logs(sub, entry.ahead)
                cursor.execute(
                    _UPDATE,
                    (
                        sub.billing_subscription_id,
                        sub.status,
                        sub.term_end,
                        sub.cancellation_date,
                        sub.cancellation_reason,
                        *logs,
                        entry.version,
                        datetime.fromisoformat(entry.recorded_at),
                        entry.position,
                        contract,
                    ),
                )
        for entry in held.values():
            if entry.new is None:
                for item in entry.items.values():
                    cursor.execute(_UPDATE_ITEM, item)
        for entry in held.values():
            if entry.new is not None:
                sub = entry.sub
                log, scheduled = self._logs(sub, entry.ahead or [])
                cursor.execute(
                    _INSERT,
                    (
                        *entry.new,
                        sub.billing_subscription_id,
                        sub.status,
                        sub.term_end,
                        sub.cancellation_date,
                        sub.cancellation_reason,
                        scheduled,
                        log,
                        entry.version,
                        datetime.fromisoformat(entry.recorded_at),
                        entry.position,
                    ),
                )
                for item in entry.items.values():
                    cursor.execute(_INSERT_ITEM, item)

    @staticmethod
    def _logs(sub: _Subscription, ahead: list[Any]) -> tuple[str, str]:
        """The JSON columns: ``amendment_log`` and ``scheduled_changes`` (``jsonb`` keeps
        their values, not their spelling, so the compact ``orjson`` text stores the same)."""
        log = {"initial_items": sub.initial_json, "amendments": [j for _, j in sub.amendments]}
        return orjson.dumps(log).decode(), orjson.dumps(ahead).decode()

    @staticmethod
    def _create(event: Envelope, at: Position) -> _Held:
        data = event["data"]
        contract = event["aggregate_id"]
        currency = data["currency"]
        items = [contract_item(i) for i in data["items"]]
        written: dict[str, _Written] = {}
        rows: dict[str, tuple[Any, ...]] = {}
        for item in items:
            price = unit_price(item.unit_price, currency)
            written[item.sku] = (item.rate_plan, str(item.quantity), str(price))
            rows[item.sku] = (
                contract,
                item.sku,
                item.rate_plan,
                item.quantity,
                price,
                item.billing_period.value,
                item.charge_type.value,
            )
        sub = _Subscription(
            None,
            "pending",
            currency,
            date.fromisoformat(data["term_end"]),
            None,
            None,
            data["items"],
            items,
            [],
            written,
        )
        return _Held(
            sub,
            event["version"],
            event["recorded_at"],
            at.position,
            new=(
                contract,
                data["customer_id"],
                data["order_id"],
                currency,
                date.fromisoformat(data["term_start"]),
            ),
            items=rows,
        )

    @staticmethod
    def _load(event: Envelope, cursor: ViewCursor) -> _Subscription:
        """The contract as stored (a memo miss); its creation must have been applied."""
        row = cursor.fetchone(_READ, (event["aggregate_id"],))
        if row is None:
            raise missing_row("billing_subscriptions", "contract_id", event)
        subscription, status, currency, term_end, cancellation, reason, log = row
        return _Subscription(
            subscription,
            status,
            currency,
            term_end,
            cancellation,
            reason,
            log["initial_items"],
            [contract_item(i) for i in log["initial_items"]],
            [_with_json(ScheduledChange.model_validate(c)) for c in log["amendments"]],
            None,
        )

    @staticmethod
    def _changes(kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Field -> new value for one event (empty: only version and time move)."""
        if kind == "ContractActivated":
            return {"status": "active", "billing_subscription_id": data["billing_subscription_id"]}
        if kind == "ContractRenewed":
            return {"term_end": date.fromisoformat(data["new_term_end"])}
        if kind == "ContractSuspended":
            return {"status": "suspended"}
        if kind == "ContractResumed":
            return {"status": "active"}
        if kind == "ContractCancelled":
            return {
                "status": "cancelled",
                "cancellation_date": date.fromisoformat(data["effective_date"]),
                "cancellation_reason": data.get("reason"),
            }
        return {}

    @staticmethod
    def _amend(event: Envelope, sub: _Subscription, entry: _Held) -> None:
        """Items and scheduled changes after an amendment, as ``ContractAmended.apply``:
        the items in force on the day it was recorded, from the initial ones and every
        amendment by effective date (among equal dates, in the order recorded). The items
        that change are held in ``entry`` (a new contract's item rows are replaced; an
        older one's SKUs that have no row are left so, as the update of no row did)."""
        contract = event["aggregate_id"]
        change = ScheduledChange(
            effective_date=date.fromisoformat(event["data"]["effective_date"]),
            changes=[item_change(c) for c in event["data"]["changes"]],
        )
        amendments = sorted(
            [*sub.amendments, _with_json(change)],
            key=lambda c: c[0].effective_date,
        )
        today = datetime.fromisoformat(event["recorded_at"]).date()
        items, _ = bring_into_force(sub.initial, [c for c, _ in amendments], today)
        entry.ahead = [j for c, j in amendments if c.effective_date > today]
        written: dict[str, _Written] = {}
        for item in items:
            price = unit_price(item.unit_price, sub.currency)
            written[item.sku] = (item.rate_plan, str(item.quantity), str(price))
            if sub.items is not None and sub.items.get(item.sku) == written[item.sku]:
                continue
            if entry.new is None:
                entry.items[item.sku] = (item.rate_plan, item.quantity, price, contract, item.sku)
            elif (row := entry.items.get(item.sku)) is not None:
                entry.items[item.sku] = (*row[:2], item.rate_plan, item.quantity, price, *row[5:])
        sub.amendments, sub.items = amendments, written
