"""The reconciliation projection's fact tables and break tables (see ``projection.py``).

Why fact tables beside the breaks: the stores are applied each in its own order, so a check
that compares two systems (an order and its contract, an invoice and the order behind it)
runs whenever either side changes, against the facts stored for the other side. The breaks
then depend only on the facts, whichever store arrived first.
"""

from __future__ import annotations

from projections.definition import Column, Table

_CHANGED = Column("changed_at", "timestamptz", "Time of the last event applied to the row.", True)

ORDERS = Table(
    name="recon_orders",
    comment="Reconciliation facts: each order as placed/amended (CRM amount beside the lines).",
    primary_key=("order_id",),
    columns=(
        Column("order_id", "uuid", "Canonical order id.", not_null=True),
        Column("customer_id", "uuid", "Canonical id of the ordering customer.", not_null=True),
        Column("currency", "text", "ISO 4217 currency of the order.", not_null=True),
        Column(
            "opportunity_amount",
            "numeric",
            "The CRM opportunity's own Amount (OrderPlaced.opportunity_amount); NULL if none.",
        ),
        Column("total", "numeric", "Total of the order's current lines (hub-computed).", True),
        Column(
            "status",
            "text",
            "open, or rejected / cancelled (nothing is booked: an invoice of it has no order "
            "behind it).",
            not_null=True,
        ),
        Column(
            "placed_at",
            "timestamptz",
            "When the order was placed: the source's time of OrderPlaced (occurred_at), else "
            "when Concord recorded it.",
            not_null=True,
        ),
        _CHANGED,
    ),
)

ORDER_ITEMS = Table(
    name="recon_order_items",
    comment="Reconciliation facts: the order's current recurring and usage quantity per SKU.",
    primary_key=("order_id", "sku"),
    columns=(
        Column("order_id", "uuid", "The order (recon_orders.order_id).", not_null=True),
        Column("sku", "text", "SKU of the recurring or usage lines.", not_null=True),
        Column("quantity", "numeric", "Sum of those lines' quantities, exact.", not_null=True),
    ),
)

CONTRACTS = Table(
    name="recon_contracts",
    comment="Reconciliation facts: each contract, its order and when billing activated it.",
    primary_key=("contract_id",),
    indexes=(("order_id",),),
    columns=(
        Column("contract_id", "uuid", "Canonical contract id.", not_null=True),
        Column("order_id", "uuid", "The order the contract was created from.", not_null=True),
        Column("customer_id", "uuid", "Canonical id of the customer.", not_null=True),
        Column("status", "text", "pending, active, suspended or cancelled.", not_null=True),
        Column(
            "activated_at",
            "timestamptz",
            "Time of ContractActivated (occurred_at, else recorded_at); NULL while pending.",
        ),
        _CHANGED,
    ),
)

CONTRACT_ITEMS = Table(
    name="recon_contract_items",
    comment="Reconciliation facts: each contract's item quantities (amendments as recorded).",
    primary_key=("contract_id", "sku"),
    columns=(
        Column("contract_id", "uuid", "The contract (recon_contracts.contract_id).", True),
        Column("sku", "text", "The item's SKU.", not_null=True),
        Column("quantity", "numeric", "Quantity after every amendment recorded so far.", True),
        Column(
            "charge_type",
            "text",
            "recurring or usage, as the contract was created with; a usage item of quantity 0 "
            "is metered (it agrees with any usage quantity the order commits).",
        ),
    ),
)

INVOICES = Table(
    name="recon_invoices",
    comment="Reconciliation facts: each billing invoice, its ERP posting and money received.",
    primary_key=("invoice_id",),
    indexes=(("order_id",), ("contract_id",)),
    columns=(
        Column("invoice_id", "uuid", "Canonical invoice id.", not_null=True),
        Column("customer_id", "uuid", "Canonical id of the billed customer.", not_null=True),
        Column("order_id", "uuid", "Order the invoice names; may be NULL."),
        Column("contract_id", "uuid", "Contract the invoice names; may be NULL."),
        Column("currency", "text", "ISO 4217 currency of the invoice.", not_null=True),
        Column("total", "numeric", "Total as billed (billing's copy).", not_null=True),
        Column("credited", "numeric", "Sum of credit notes (billing).", not_null=True),
        Column("paid", "numeric", "Payments applied less taken back.", not_null=True),
        Column("void", "boolean", "Billing voided the invoice.", not_null=True),
        Column(
            "erp_document_number",
            "text",
            "The ERP's document number once the ERP posted it; NULL before.",
        ),
        Column(
            "erp_total",
            "numeric",
            "The ERP's total for its posted document (its latest revision); billing's total "
            "when the posting carried no amounts; NULL before posting.",
        ),
        Column("issue_date", "date", "Billing's issue date (business date).", not_null=True),
        Column(
            "paid_at",
            "timestamptz",
            "Time of the event that settled the invoice in full by payments; NULL while open.",
        ),
        _CHANGED,
    ),
)

PAYMENTS = Table(
    name="recon_payments",
    comment="Reconciliation facts: each payment and the cash no invoice holds (unapplied).",
    primary_key=("payment_id",),
    columns=(
        Column("payment_id", "uuid", "Canonical payment id.", not_null=True),
        Column("customer_id", "uuid", "Canonical id of the payer (after merges).", True),
        Column("currency", "text", "ISO 4217 currency of the payment.", not_null=True),
        Column("amount", "numeric", "Amount received.", not_null=True),
        Column(
            "unapplied",
            "numeric",
            "Cash received that no invoice holds and that was not refunded; 0 once failed or "
            "reversed (the money went back).",
            not_null=True,
        ),
        Column(
            "status",
            "text",
            "received, failed or reversed (refunds change unapplied only).",
            not_null=True,
        ),
        Column("received_at", "timestamptz", "When the cash was received (source).", True),
        _CHANGED,
    ),
)

PAYMENT_MOVES = Table(
    name="recon_payment_moves",
    comment="Reconciliation facts: each payment's unapplied cash after each of its events.",
    primary_key=("payment_id", "version"),
    columns=(
        Column("payment_id", "uuid", "The payment (recon_payments.payment_id).", True),
        Column("version", "bigint", "Version of the payment event.", not_null=True),
        Column(
            "at",
            "timestamptz",
            "When: received_at for the receipt, else the event's occurred_at (or recorded_at).",
            not_null=True,
        ),
        Column("unapplied", "numeric", "Unapplied cash after the event, exact.", True),
    ),
)

BREAKS = Table(
    name="recon_breaks",
    comment=(
        "Reconciliation breaks: one row per disagreement between systems (code + object), "
        "open while the data disagrees, closed (closed_at) when it agrees again."
    ),
    primary_key=("break_key",),
    columns=(
        Column("break_key", "text", "code:object_id, stable.", not_null=True),
        Column(
            "code",
            "text",
            "OPP_AMOUNT_MISMATCH, ORDER_CONTRACT_MISMATCH, INVOICE_MISMATCH, "
            "PAYMENT_OVERAPPLIED, PAYMENT_UNAPPLIED or INVOICE_WITHOUT_ORDER.",
            not_null=True,
        ),
        Column("object_kind", "text", "order, contract, invoice or payment.", not_null=True),
        Column("object_id", "uuid", "Canonical id of the object.", not_null=True),
        Column("customer_id", "uuid", "Canonical id of the customer.", not_null=True),
        Column(
            "currency",
            "text",
            "ISO 4217 currency of the amounts; NULL when they are quantities "
            "(ORDER_CONTRACT_MISMATCH).",
        ),
        Column("expected_amount", "numeric", "What expected_by says, exact; may be NULL."),
        Column("expected_by", "text", "System (or record) saying expected_amount.", True),
        Column("actual_amount", "numeric", "What actual_by says, exact; may be NULL."),
        Column("actual_by", "text", "System (or record) saying actual_amount.", True),
        Column("detail", "text", "The disagreement in words.", not_null=True),
        Column(
            "opened_at", "timestamptz", "Time of the event that opened it (last opening).", True
        ),
        Column("closed_at", "timestamptz", "Time of the event that closed it; NULL while open."),
        Column("lineage", "text", "Lineage link of the object: /v1/lineage/<object_id>.", True),
        Column("changed_at", "timestamptz", "Time of the last event that changed the row.", True),
    ),
)

BREAK_EVENTS = Table(
    name="recon_break_events",
    comment="History of the breaks: every opening and closing, with the event that caused it.",
    primary_key=("break_key", "event_id"),
    columns=(
        Column("break_key", "text", "The break (recon_breaks.break_key).", not_null=True),
        Column("event_id", "uuid", "The canonical event that opened or closed it.", True),
        Column("change", "text", "opened or closed.", not_null=True),
        Column("at", "timestamptz", "The event's occurred_at, else its recorded_at.", True),
        Column("expected_amount", "numeric", "expected_amount at that moment."),
        Column("actual_amount", "numeric", "actual_amount at that moment."),
    ),
)

FACTS = (ORDERS, ORDER_ITEMS, CONTRACTS, CONTRACT_ITEMS, INVOICES, PAYMENTS, PAYMENT_MOVES)
