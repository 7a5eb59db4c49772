"""Mirror merging is order-tolerant: any delivery order (and repeats) gives one record."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.inbound.mirror import MirrorUpdate, merged

updates = st.lists(
    st.builds(
        MirrorUpdate,
        object=st.just("Opportunity"),
        record_id=st.just("006A"),
        fields=st.dictionaries(
            st.sampled_from(["Amount", "StageName", "CloseDate", "IsWon"]),
            st.integers(0, 5),
            min_size=1,
        ),
        order=st.integers(0, 10_000).map(lambda n: f"{n:015d}"),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda u: u.order,
)


def fold(items: list[MirrorUpdate]) -> dict[str, object]:
    fields: dict[str, object] = {}
    orders: dict[str, str] = {}
    for item in items:
        fields, orders = merged(fields, orders, item)
    return fields


@given(updates, st.randoms())
def test_any_order_and_repeats_give_the_same_record(items: list[MirrorUpdate], rnd) -> None:  # type: ignore[no-untyped-def]
    in_order = fold(sorted(items, key=lambda u: u.order))
    shuffled = list(items) + rnd.sample(items, k=len(items) // 2)  # some delivered twice
    rnd.shuffle(shuffled)
    assert fold(shuffled) == in_order


def test_an_older_update_never_overwrites_a_newer_value() -> None:
    newer = MirrorUpdate("Opportunity", "006A", {"StageName": "Closed Won"}, "000000000000002")
    older = MirrorUpdate(
        "Opportunity", "006A", {"StageName": "Prospecting", "Amount": 5}, "000000000000001"
    )
    assert fold([newer, older]) == {"StageName": "Closed Won", "Amount": 5}
