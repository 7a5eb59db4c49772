"""From order lines to contract items, and from one set of items to the next (pure rules)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.process.contract_items import (
    ItemProblem,
    apply_changes,
    contract_items,
    item_changes,
    term_end,
)

PRICES = {"SEATS": "price_seats", "API": "price_api"}


def _line(sku: str, charge: str, quantity: str, price: str, **extra: object) -> dict[str, object]:
    return {
        "sku": sku,
        "charge_type": charge,
        "quantity": quantity,
        "unit_price": price,
        "term_months": 12,
        **extra,
    }


def test_only_recurring_and_usage_lines_at_their_period_price() -> None:
    items = contract_items(
        [
            _line("SETUP", "one_time", "1", "1500.00"),
            _line("SEATS", "recurring", "10", "1200.00", billing_frequency="quarter"),
            _line("API", "usage", "1000", "0.05"),
        ],
        PRICES,
        "USD",
    )
    assert [(i["sku"], i["unit_price"], i["billing_period"]) for i in items] == [
        ("SEATS", "300.00", "quarter"),  # 1,200 over 12 months, billed per quarter
        ("API", "0.05", "month"),
    ]


def test_a_term_price_that_does_not_divide_is_refused_with_the_fix() -> None:
    with pytest.raises(ItemProblem, match="billing_unit_price"):
        contract_items([_line("SEATS", "recurring", "1", "1000.00")], PRICES, "USD")
    # JPY has no minor unit: 100,000 yen over 12 months is not whole either.
    with pytest.raises(ItemProblem):
        contract_items([_line("SEATS", "recurring", "1", "100000")], PRICES, "JPY")
    given_price = _line("SEATS", "recurring", "1", "1000.00", billing_unit_price="83.33")
    assert contract_items([given_price], PRICES, "USD")[0]["unit_price"] == "83.33"


def test_changes_name_only_what_differs_and_what_cannot_be_amended() -> None:
    held = [
        {"sku": "SEATS", "quantity": "10", "unit_price": "100.00", "rate_plan": "p1"},
        {"sku": "API", "quantity": "1000", "unit_price": "0.05", "rate_plan": "p2"},
    ]
    wanted = [
        {"sku": "SEATS", "quantity": "15.0", "unit_price": "100.00", "rate_plan": "p1"},
        {"sku": "NEW", "quantity": "1", "unit_price": "9.00", "rate_plan": "p3"},
    ]
    changes, added = item_changes(held, wanted)
    assert changes == [{"sku": "SEATS", "quantity": "15.0"}, {"sku": "API", "quantity": "0"}]
    assert added == ["NEW"]
    after = apply_changes(held, changes)
    assert item_changes(after, [w for w in wanted if w["sku"] != "NEW"]) == ([], [])


@given(
    st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=5),
    st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=5),
)
def test_applying_the_changes_reaches_what_was_wanted(before: list[int], after: list[int]) -> None:
    skus = [f"S{i}" for i in range(max(len(before), len(after)))]
    held = [
        {"sku": s, "quantity": str(q), "unit_price": "1.00", "rate_plan": "p"}
        for s, q in zip(skus, before, strict=False)
    ]
    wanted = [
        {"sku": s, "quantity": str(q), "unit_price": "2.00", "rate_plan": "p"}
        for s, q in zip(skus, after, strict=False)
    ]
    changes, added = item_changes(held, wanted)
    result = {i["sku"]: i for i in apply_changes(held, changes)}
    for item in wanted:
        if item["sku"] in added:
            continue
        assert Decimal(result[item["sku"]]["quantity"]) == Decimal(item["quantity"])
        assert result[item["sku"]]["unit_price"] == "2.00"
    assert set(added) == {w["sku"] for w in wanted} - {h["sku"] for h in held}


def test_term_end_clamps_to_the_month() -> None:
    assert term_end(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert term_end(date(2026, 2, 1), 12) == date(2027, 2, 1)
    assert term_end(date(2024, 1, 31), 1) == date(2024, 2, 29)
