"""Facts from a system of record: recorded even when they disagree, refused when impossible.

A repeated delivery of the same fact (the same credit note, the same usage record) changes
nothing; the same number or id carrying different values cannot be true and is refused.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.domain.contract import Contract
from hub.domain.errors import AlreadyExists
from hub.domain.invoice import Invoice, InvoiceStatus
from hub.domain.money import Money

from .stamps import replay, stamp, usd
from .test_contract import active_contract
from .test_invoice import issue

amounts = st.integers(min_value=1, max_value=99).map(usd)


@given(amounts, amounts)
def test_a_credit_note_number_counts_once_per_invoice(first: Money, second: Money) -> None:
    invoice = issue()
    invoice.credit(stamp("billing"), first, credit_note_number="CN-1", reason="outage")
    invoice.credit(stamp("billing"), first, credit_note_number="CN-1", reason="outage")
    assert (invoice.amount_credited, invoice.version) == (first, 2)  # re-delivery: no event
    if second != first:
        with pytest.raises(AlreadyExists) as caught:
            invoice.credit(stamp("billing"), second, credit_note_number="CN-1")
        assert caught.value.field == "credit_note_number"
        assert "CN-1" in caught.value.message
    invoice.credit(stamp("billing"), second, credit_note_number="CN-2")
    assert invoice.amount_credited == first + second
    rebuilt = replay(invoice.collect_events())
    assert isinstance(rebuilt, Invoice)
    assert rebuilt.amount_credited == first + second


def test_credit_notes_without_a_number_are_all_counted() -> None:
    invoice = issue()
    invoice.credit(stamp("billing"), usd(10))
    invoice.credit(stamp("billing"), usd(10))
    assert invoice.amount_credited == usd(20)


def test_the_erp_posting_a_voided_invoice_is_recorded() -> None:
    """The ERP posted before it heard of the void: a reconciliation break, not a refusal."""
    invoice = issue()
    invoice.void(stamp("billing"), "issued twice")
    invoice.post(stamp("erp"), "JE-9")
    assert invoice.erp_document_number == "JE-9"
    assert invoice.status is InvoiceStatus.VOID and invoice.balance.is_zero


def _usage(contract: Contract, record: str | None, quantity: int) -> None:
    contract.record_usage(
        stamp("billing"),
        sku="API-CALL",
        quantity=Decimal(quantity),
        period_start=date(2026, 2, 1),
        period_end=date(2026, 2, 28),
        usage_record_id=record,
    )


@given(st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=20))
def test_a_usage_record_id_is_counted_once(quantities: list[int]) -> None:
    contract = active_contract()
    for quantity in quantities:
        _usage(contract, "ur_1", quantities[0])  # re-delivered: counted once
        _usage(contract, None, quantity)  # no id: every delivery counts
    assert contract.usage_totals["API-CALL"] == quantities[0] + sum(quantities)
    assert contract.usage_records == 1 + len(quantities)
    rebuilt = replay(contract.collect_events())
    assert isinstance(rebuilt, Contract)
    assert rebuilt.usage_record_ids == contract.usage_record_ids
    _usage(rebuilt, "ur_1", quantities[0])
    assert rebuilt.usage_totals == contract.usage_totals


def test_a_usage_record_id_with_other_values_is_refused() -> None:
    contract = active_contract()
    _usage(contract, "ur_1", 5)
    with pytest.raises(AlreadyExists) as caught:
        _usage(contract, "ur_1", 6)
    assert caught.value.field == "usage_record_id"
    assert contract.usage_totals["API-CALL"] == 5 and len(contract.pending_events) == 3


def test_billing_subscription_on_a_cancelled_order_is_recorded_the_hub_is_refused() -> None:
    """Billing reports a subscription it set up before it heard of the cancellation: a fact
    (and a reconciliation break); the hub asking to create one is an intention, refused."""
    from hub.application.unit import Unit
    from hub.domain.customer import Customer
    from hub.domain.errors import InvalidTransition

    from .stamps import MemoryStore, uid
    from .test_contract import _create, _order

    customer = Customer.register(stamp(), uid("customer"), legal_name="Acme")
    order = _order()
    order.cancel(stamp(), "lost")
    store = MemoryStore(customer, order)
    with pytest.raises(InvalidTransition):
        _create(Unit(store))  # the hub's orchestration (an intention)
    contract = _create(Unit(store), stamp_system="billing")
    assert isinstance(contract, Contract) and contract.order_id == order.id
