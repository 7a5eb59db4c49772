"""The quote-to-cash process manager's tables: each deal's process, its steps and its own
event log, the commands it decided to issue (the outbox), and what it knows of customers,
products and invoices.

Why tables of a tracked follower rather than an aggregate of its own: the process must see
every canonical event exactly once and decide from what it has seen, and the projection
runner already gives exactly that (its writes and its position commit in one transaction,
a crash replays the batch). The process's history is ``q2c_process_events``, append-only;
the process and step rows are its current state, folded from the same events. The commands
it decides go into ``q2c_commands`` in the same transaction; the dispatcher
(:mod:`adapters.process.dispatcher`) executes them against the hub with the command id as
idempotency key, so a command is decided once and takes effect once.
"""

from __future__ import annotations

from projections.definition import Column, Table

PROCESSES = Table(
    name="q2c_processes",
    comment=(
        "Concord quote-to-cash: one row per deal (canonical order) with where its process "
        "stands. Built by the q2c process manager from the canonical events."
    ),
    primary_key=("process_id",),
    # status: a dependency's arrival looks up the (few) waiting processes on every
    # registration and product; without it a rebuild scans the table for each.
    indexes=(
        ("status",),
        ("opportunity_id",),
        ("contract_id",),
        ("erp_order_number",),
        ("billing_subscription_id",),
        ("customer_id",),
    ),
    columns=(
        Column("process_id", "uuid", "The process id: the canonical order id.", True),
        Column("opportunity_id", "text", "CRM opportunity of the deal (correlation)."),
        Column("customer_id", "uuid", "Canonical customer of the order.", True),
        Column(
            "status",
            "text",
            "running, waiting (for a dependency), rejected, on_hold (compensated), "
            "cancelled or done (paid).",
            True,
        ),
        Column("step", "text", "The step the process is at (see q2c_steps)."),
        Column("waiting_for", "text[]", "What it waits for: customer:<id>, sku:<sku> ..."),
        Column("reason", "text", "Why it is rejected, on hold or waiting, in words."),
        Column("currency", "text", "ISO currency of the order.", True),
        Column("lines", "jsonb", "The order's current lines (for the contract).", True),
        Column("start_date", "date", "The order's service start.", True),
        Column("term_months", "integer", "The order's term in months.", True),
        Column("erp_order_number", "text", "The ERP's sales order number, once accepted."),
        Column("contract_id", "uuid", "The contract (subscription) created for the deal."),
        Column("contract_items", "jsonb", "The contract's items as the process last saw them."),
        Column(
            "revision",
            "integer",
            "Amendments of the order that reopened it (each is validated and accepted anew).",
            True,
        ),
        Column("billing_subscription_id", "text", "Billing's subscription id, once active."),
        Column("ordered_at", "timestamptz", "Milestone: ordered (the deal's close)."),
        Column("accepted_at", "timestamptz", "Milestone: accepted by the ERP."),
        Column("activated_at", "timestamptz", "Milestone: subscription active in billing."),
        Column("first_invoice_at", "timestamptz", "Milestone: first invoice issued."),
        Column("paid_at", "timestamptz", "Milestone: first invoice paid in full."),
        Column("started_at", "timestamptz", "When the process started (order placed).", True),
        Column("changed_at", "timestamptz", "When the process last changed.", True),
    ),
)

STEPS = Table(
    name="q2c_steps",
    comment="Concord quote-to-cash: each step of each deal's process and its status.",
    primary_key=("process_id", "step"),
    columns=(
        Column("process_id", "uuid", "The process (canonical order id).", True),
        Column(
            "step",
            "text",
            "validate, erp_order, contract, billing_subscription, first_invoice or payment.",
            True,
        ),
        Column("ordinal", "integer", "Order of the step in the process.", True),
        Column(
            "status",
            "text",
            "pending, waiting, sent (with the target system), done, failed, skipped or "
            "compensated.",
            True,
        ),
        Column("detail", "text", "What happened last, in words."),
        Column("started_at", "timestamptz", "When the step started."),
        Column("done_at", "timestamptz", "When it ended (done, failed, skipped)."),
        Column("deadline_at", "timestamptz", "Its SLA: overdue when not done by then."),
    ),
)

EVENTS = Table(
    name="q2c_process_events",
    comment=(
        "Concord quote-to-cash: every process's own history, append-only: what it saw and "
        "decided, with the canonical event that caused it."
    ),
    primary_key=("process_id", "seq"),
    columns=(
        Column("process_id", "uuid", "The process.", True),
        Column("seq", "bigint", "Order within the process (1, 2, ...).", True),
        Column(
            "type",
            "text",
            "started, step_started, step_done, step_waiting, "
            "step_failed, command_decided, milestone, compensated ...",
            True,
        ),
        Column("step", "text", "The step it concerns, if any."),
        Column("detail", "jsonb", "What it says (reasons, ids, the command).", True),
        Column("cause_event_id", "uuid", "The canonical event that caused it.", True),
        Column("at", "timestamptz", "When (the causing event's business time).", True),
    ),
)

COMMANDS = Table(
    name="q2c_commands",
    comment=(
        "Concord quote-to-cash outbox: hub commands the process decided, executed once by "
        "the dispatcher (the command id is their idempotency key)."
    ),
    primary_key=("command_id",),
    indexes=(("process_id",), ("cause_recorded_at",)),
    columns=(
        Column("command_id", "text", "Deterministic id: q2c:<process id>:<action>.", True),
        Column("process_id", "uuid", "The process that decided it.", True),
        Column("entity", "text", "Hub entity (order, contract).", True),
        Column("name", "text", "Command name (validate, reject, create ...).", True),
        Column("aggregate_id", "uuid", "The aggregate it targets (or creates).", True),
        Column("payload", "jsonb", "The command's input.", True),
        Column("cause_event_id", "uuid", "The canonical event that caused it.", True),
        Column("correlation_id", "text", "The deal's correlation id (opportunity)."),
        Column("decided_at", "timestamptz", "When it was decided (business time).", True),
        Column(
            "cause_recorded_at",
            "timestamptz",
            "When the hub recorded the causing event (the dispatcher's staleness check).",
            True,
        ),
    ),
)

CUSTOMERS = Table(
    name="q2c_customers",
    comment="Concord quote-to-cash: customers as the process needs them (hierarchy, status).",
    primary_key=("customer_id",),
    columns=(
        Column("customer_id", "uuid", "Canonical customer id.", True),
        Column("parent_customer_id", "uuid", "Its parent in the account hierarchy."),
        Column("status", "text", "active, on_hold, closed or merged.", True),
        Column("merged_into", "uuid", "The survivor when merged."),
    ),
)

PRODUCTS = Table(
    name="q2c_products",
    comment="Concord quote-to-cash: each SKU's mapping to the ERP item and billing price.",
    primary_key=("product_id",),
    indexes=(("sku",),),
    columns=(
        Column("product_id", "uuid", "Canonical product id.", True),
        Column("sku", "text", "Canonical SKU.", True),
        Column("erp_item_id", "text", "The ERP item the SKU is sold as (first mapped)."),
        Column("billing_price_id", "text", "The billing price (rate plan) it bills under."),
        Column("billing_period", "text", "The product's billing period, if it has one."),
        Column("retired", "boolean", "Retired products cannot be sold.", True),
    ),
)

INVOICES = Table(
    name="q2c_invoices",
    comment="Concord quote-to-cash: invoices of each deal, for the invoice and paid milestones.",
    primary_key=("invoice_id",),
    indexes=(("process_id",),),
    columns=(
        Column("invoice_id", "uuid", "Canonical invoice id.", True),
        Column("process_id", "uuid", "The deal it bills.", True),
        Column("total", "numeric", "Invoice total (exact).", True),
        Column("paid", "numeric", "Applied so far (exact).", True),
    ),
)

TABLES = (PROCESSES, STEPS, EVENTS, COMMANDS, CUSTOMERS, PRODUCTS, INVOICES)
