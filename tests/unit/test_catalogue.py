"""The catalogue's typed seam: a spec runs its function only with its own input model and
its own aggregate type, so handlers are typed end to end (mypy checks their bodies)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from hub.application.catalogue import build_catalogue
from hub.application.customers import RegisterCustomer
from hub.application.orders import CancelOrder
from hub.application.unit import Unit
from hub.domain.customer import Customer
from hub.domain.provenance import Provenance, Stamp, System
from tests.unit.fakes import InMemoryStorage

STAMP = Stamp(
    provenance=Provenance(source_system=System.API, actor="t"),
    recorded_at=datetime(2026, 12, 1, tzinfo=UTC),
)


def test_every_spec_is_typed_by_its_input_model() -> None:
    for spec in build_catalogue().all():
        assert spec.input_model.__name__ != "CommandInput", spec.name


def test_a_spec_refuses_another_commands_input() -> None:
    catalogue = build_catalogue()
    register = catalogue.get("customer", "register")
    assert register is not None
    unit = Unit(InMemoryStorage())
    with pytest.raises(TypeError, match="takes RegisterCustomer, not CancelOrder"):
        register.run_create(STAMP, UUID(int=1), CancelOrder(reason="x"), unit)
    created = register.run_create(STAMP, UUID(int=1), RegisterCustomer(legal_name="A"), unit)
    assert isinstance(created, Customer)
    with pytest.raises(TypeError, match="does not create"):
        cancel = catalogue.get("order", "cancel")
        assert cancel is not None
        cancel.run_create(STAMP, UUID(int=2), CancelOrder(reason="x"), unit)


def test_a_handler_refuses_another_kind_of_aggregate() -> None:
    cancel = build_catalogue().get("order", "cancel")
    assert cancel is not None
    customer = Customer.register(STAMP, UUID(int=3), legal_name="A")
    with pytest.raises(TypeError, match="is a customer, not a order"):
        cancel.run_handle(customer, STAMP, CancelOrder(reason="x"), Unit(InMemoryStorage()))
