"""The mirror store merges in SQL exactly as :func:`merged` does in Python: any delivery
order, repeats included, gives the record the in-order fold gives."""

from __future__ import annotations

import random
from itertools import count

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.bootstrap import Runtime
from adapters.inbound.mirror import MirrorUpdate
from tests.unit.test_inbound_mirror import fold, updates

_records = count()


# One runtime for every example: each example merges into a record of its own.
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=updates, rnd=st.randoms())
def test_the_store_merges_like_the_fold(
    runtime: Runtime, items: list[MirrorUpdate], rnd: random.Random
) -> None:
    store = runtime.inbound.mirrors
    assert store is not None
    record = f"006R{next(_records)}"  # a record of its own per example
    shuffled = list(items) + rnd.sample(items, k=len(items) // 2)  # some delivered twice
    rnd.shuffle(shuffled)
    returned: dict[str, object] = {}
    for item in shuffled:
        update = MirrorUpdate(item.object, record, item.fields, item.order)
        returned = store.merge("salesforce", update)
    expected = fold(sorted(items, key=lambda u: u.order))
    assert returned == expected
    assert store.get("salesforce", "Opportunity", record) == expected


def test_orders_compare_by_code_point_not_collation(runtime: Runtime) -> None:
    """``.`` sorts before digits by code point; a collation that skips punctuation would
    rank ``10.1`` above ``1.99`` differently. The newer order (by Python's ``<=``) wins."""
    store = runtime.inbound.mirrors
    assert store is not None
    older, newer = sorted(["1.99", "10.1"])
    store.merge("salesforce", MirrorUpdate("Account", "001C", {"Name": "new"}, newer))
    store.merge("salesforce", MirrorUpdate("Account", "001C", {"Name": "old"}, older))
    assert store.get("salesforce", "Account", "001C") == {"Name": "new"}
