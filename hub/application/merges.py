"""Following customer merges: facts go to the survivor, intentions are refused.

A merged-away customer still has ids in every system that knew it, and those systems keep
sending. What they *report* happened (an invoice billing issued, a payment received, a
subscription billing set up) is a fact about the real customer, so it is recorded on the
surviving customer. What asks Concord to *do* something (place an order, change the merged
record) is refused with the survivor's id, so the caller can resend it to the right record
and fix its own duplicate. The survivor is the end of the merge chain: a survivor may itself
have been merged later.
"""

from __future__ import annotations

from uuid import UUID

from hub.application.unit import Unit
from hub.domain.customer import Customer
from hub.domain.errors import InvalidValue, MergedAway

#: Longest merge chain followed; a longer one (or a cycle) is refused as corrupt.
MAX_MERGE_CHAIN = 50


def survivor(unit: Unit, customer_id: UUID, *, field: str) -> Customer:
    """The customer that ``customer_id`` is today: itself, or where its merges lead."""
    customer = unit.get(Customer, customer_id, field=field)
    for _ in range(MAX_MERGE_CHAIN):
        if customer.merged_into is None:
            return customer
        customer = unit.get(Customer, customer.merged_into, field=field)
    raise InvalidValue(
        f"customer {customer_id}'s merges go deeper than {MAX_MERGE_CHAIN} levels", field=field
    )


def unmerged(unit: Unit, customer_id: UUID, *, field: str, action: str) -> Customer:
    """The customer, for an intention: refused with the survivor's id if merged away."""
    customer = unit.get(Customer, customer_id, field=field)
    if customer.merged_into is None:
        return customer
    target = survivor(unit, customer_id, field=field)
    raise MergedAway(
        f"customer {customer_id} was merged into {target.id}; {action} for {target.id}",
        field=field,
        survivor_id=target.id,
    )


def same_customer(unit: Unit, first: UUID, second: UUID, *, field: str) -> bool:
    """Whether two customer ids are one customer today (equal, or merged into one)."""
    if first == second:
        return True
    return survivor(unit, first, field=field).id == survivor(unit, second, field=field).id
