"""The canonical aggregates (five, and the product mappings) and every event type they
record, in one place.

JSON Schemas for NATS subscribers, the event-type registry of projections and the store's
per-aggregate applications are all generated from these tuples, so an event class cannot be
published without a schema. Events are discovered from the aggregates' modules rather than
listed by hand: a new event class is picked up the moment it is defined.
"""

from __future__ import annotations

from hub.domain.base import Aggregate, CreationEvent, DomainEvent
from hub.domain.contract import Contract
from hub.domain.customer import Customer
from hub.domain.invoice import Invoice
from hub.domain.order import Order
from hub.domain.payment import Payment
from hub.domain.product import Product

AGGREGATES: tuple[type[Aggregate], ...] = (Customer, Contract, Order, Invoice, Payment, Product)


def _event_types() -> tuple[type[DomainEvent], ...]:
    """Concrete event classes of the aggregates' modules, aggregate by aggregate."""
    found: list[type[DomainEvent]] = []
    pending: list[type[DomainEvent]] = [DomainEvent]
    while pending:
        cls = pending.pop(0)
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub is not CreationEvent and sub not in found:
                found.append(sub)
    modules = [aggregate.__module__ for aggregate in AGGREGATES]
    ours = [cls for cls in found if cls.__module__ in modules]
    # Creation event first within each aggregate, then the others in definition order.
    ours.sort(key=lambda cls: (modules.index(cls.__module__), not issubclass(cls, CreationEvent)))
    names = [cls.type_name() for cls in ours]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AssertionError(f"event type names must be unique: {duplicates}")
    return tuple(ours)


EVENT_TYPES: tuple[type[DomainEvent], ...] = _event_types()

EVENTS_BY_NAME: dict[str, type[DomainEvent]] = {cls.type_name(): cls for cls in EVENT_TYPES}

AGGREGATES_BY_ENTITY: dict[str, type[Aggregate]] = {cls.entity: cls for cls in AGGREGATES}
