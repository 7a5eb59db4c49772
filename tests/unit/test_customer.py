"""Customer aggregate: registration, partial changes, links, merge, status, erasure."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from hub.application.commands import CommandInput, NoInput
from hub.application.customers import (
    SPECS,
    ChangeCustomerDetails,
    MergeCustomer,
    RegisterCustomer,
)
from hub.application.unit import Unit
from hub.domain.customer import (
    ERASED,
    Address,
    Customer,
    CustomerDetails,
    CustomerDetailsChanged,
    CustomerPersonalDataErased,
    CustomerStatus,
    LinkedSystem,
)
from hub.domain.errors import AlreadyExists, InvalidTransition, InvalidValue, NotFound

from .stamps import MemoryStore, replay, stamp, uid

ADDRESS = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")
SPEC = {spec.name: spec for spec in SPECS}


def handle(name: str, customer: Customer, data: CommandInput, unit: Unit) -> None:
    handler = SPEC[name].handle
    assert handler is not None
    handler(customer, stamp(), data, unit)


def register(customer_id: UUID | None = None, **fields: Any) -> Customer:
    values: dict[str, Any] = {"legal_name": "Acme Corporation"} | fields
    return Customer.register(stamp(), customer_id or uid("acme"), **values)


def test_register_normalises_matching_fields() -> None:
    customer = register(
        display_name="  Acme ",
        web_domain="https://www.Acme.COM/about",
        tax_id="de 123.456-789",
        billing_address=ADDRESS,
        currency="EUR",
    )
    assert customer.version == 1
    assert customer.display_name == "Acme"
    assert customer.web_domain == "acme.com"
    assert customer.tax_id == "DE123456789"
    assert customer.status is CustomerStatus.ACTIVE
    assert [type(e).__name__ for e in customer.collect_events()] == ["CustomerRegistered"]


def test_display_name_defaults_to_the_legal_name() -> None:
    assert register().display_name == "Acme Corporation"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"legal_name": "   "}, "legal_name"),
        ({"display_name": ""}, "display_name"),
        ({"web_domain": "not a domain"}, "web_domain"),
        ({"currency": "XYZ"}, "currency"),
        ({"parent_customer_id": uid("acme")}, "parent_customer_id"),
    ],
)
def test_register_refusals(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        register(**fields)
    assert refused.value.field == field


def test_address_country_is_iso_alpha_2() -> None:
    with pytest.raises(ValueError, match="country"):
        Address(line1="x", city="y", country="USA")


def test_change_details_changes_only_the_fields_given() -> None:
    customer = register(web_domain="acme.com", tax_id="X1")
    customer.collect_events()
    customer.change_details(stamp(), CustomerDetails(display_name="ACME", tax_id=None))
    assert customer.display_name == "ACME"
    assert customer.tax_id is None
    assert customer.web_domain == "acme.com"
    (event,) = customer.collect_events()
    assert isinstance(event, CustomerDetailsChanged)
    assert event.changed == ["display_name", "tax_id"]


def test_change_details_with_current_values_records_nothing() -> None:
    customer = register(web_domain="acme.com")
    customer.collect_events()
    customer.change_details(stamp(), CustomerDetails(web_domain="WWW.ACME.COM"))
    assert customer.collect_events() == []
    assert customer.version == 1


def test_change_details_refusals() -> None:
    customer = register()
    with pytest.raises(InvalidValue):
        customer.change_details(stamp(), CustomerDetails())
    with pytest.raises(InvalidValue) as refused:
        customer.change_details(stamp(), CustomerDetails(legal_name=None))
    assert refused.value.field == "legal_name"
    with pytest.raises(InvalidValue) as refused:
        customer.change_details(stamp(), CustomerDetails(parent_customer_id=customer.id))
    assert refused.value.field == "parent_customer_id"
    assert customer.version == 1


def test_link_same_pair_twice_is_a_no_op_and_another_id_is_refused() -> None:
    customer = register()
    customer.link(stamp(), LinkedSystem.CRM, "001A")
    customer.link(stamp(), LinkedSystem.CRM, "001A")
    customer.link(stamp(), LinkedSystem.ERP, "C-77")
    assert customer.version == 3
    assert customer.external_ids == {LinkedSystem.CRM: "001A", LinkedSystem.ERP: "C-77"}
    with pytest.raises(AlreadyExists) as refused:
        customer.link(stamp(), LinkedSystem.CRM, "001B")
    assert refused.value.field == "external_id"
    with pytest.raises(InvalidValue) as empty:
        customer.link(stamp(), LinkedSystem.BILLING, " ")
    assert empty.value.field == "external_id"


def test_merge_ends_the_customer() -> None:
    customer = register()
    with pytest.raises(InvalidValue) as itself:
        customer.merge_into(stamp(), customer.id)
    assert itself.value.field == "target_customer_id"
    customer.merge_into(stamp(), uid("survivor"))
    assert customer.status is CustomerStatus.MERGED
    assert customer.merged_into == uid("survivor")
    refused_commands = [
        lambda: customer.change_details(stamp(), CustomerDetails(display_name="x")),
        lambda: customer.link(stamp(), LinkedSystem.CRM, "1"),
        lambda: customer.merge_into(stamp(), uid("other")),
        lambda: customer.change_status(stamp(), CustomerStatus.ON_HOLD),
        lambda: customer.assign_number(stamp(), "C-1"),
        lambda: customer.set_payment_terms(stamp(), "NET30"),
    ]
    for command in refused_commands:
        with pytest.raises(InvalidTransition) as refused:
            command()
        assert refused.value.field == "status"


def test_status_transitions() -> None:
    customer = register()
    customer.change_status(stamp(), CustomerStatus.ON_HOLD, "credit hold")
    assert (customer.status, customer.status_reason) == (CustomerStatus.ON_HOLD, "credit hold")
    customer.change_status(stamp(), CustomerStatus.ON_HOLD)
    assert customer.version == 2  # same status: no event
    customer.change_status(stamp(), CustomerStatus.ACTIVE)
    customer.change_status(stamp(), CustomerStatus.CLOSED)
    for status in (CustomerStatus.ACTIVE, CustomerStatus.ON_HOLD):
        with pytest.raises(InvalidTransition) as refused:
            customer.change_status(stamp(), status)
        assert refused.value.field == "status"
    with pytest.raises(InvalidValue) as merged:
        customer.change_status(stamp(), CustomerStatus.MERGED)
    assert merged.value.field == "status"


def test_erase_blanks_personal_data_and_records_no_data() -> None:
    customer = register(web_domain="acme.com", tax_id="X1", billing_address=ADDRESS)
    customer.assign_number(stamp("erp"), "C-1")
    customer.collect_events()
    customer.erase(stamp("hub"))
    assert customer.legal_name == customer.display_name == ERASED
    assert customer.web_domain is customer.tax_id is customer.billing_address is None
    assert customer.customer_number == "C-1"  # not personal data
    (event,) = customer.collect_events()
    assert isinstance(event, CustomerPersonalDataErased)
    assert event.data() == {}
    customer.erase(stamp("hub"))
    assert customer.collect_events() == []
    with pytest.raises(InvalidTransition) as refused:
        customer.change_details(stamp(), CustomerDetails(tax_id="X2"))
    assert refused.value.field == "tax_id"
    customer.change_details(stamp("erp"), CustomerDetails(currency="USD"))
    assert customer.currency == "USD"


def test_erase_is_allowed_after_a_merge() -> None:
    customer = register()
    customer.merge_into(stamp(), uid("survivor"))
    customer.erase(stamp("hub"))
    assert customer.erased


def test_erp_number_and_payment_terms() -> None:
    customer = register()
    customer.assign_number(stamp("erp"), "C-1")
    customer.assign_number(stamp("erp"), "C-1")
    customer.assign_number(stamp("erp"), "C-2")
    customer.set_payment_terms(stamp("erp"), "NET30")
    customer.set_payment_terms(stamp("erp"), "NET30")
    assert customer.customer_number == "C-2"
    assert (customer.payment_terms, customer.version) == ("NET30", 4)
    with pytest.raises(InvalidValue) as blank:
        customer.assign_number(stamp("erp"), "")
    assert blank.value.field == "customer_number"
    with pytest.raises(InvalidValue) as blank_terms:
        customer.set_payment_terms(stamp("erp"), " ")
    assert blank_terms.value.field == "payment_terms"


def test_state_round_trips_and_replay_rebuilds_it() -> None:
    customer = register(billing_address=ADDRESS, currency="EUR")
    customer.link(stamp(), LinkedSystem.BILLING, "cus_1")
    customer.change_details(stamp(), CustomerDetails(parent_customer_id=uid("parent")))
    customer.change_status(stamp(), CustomerStatus.ON_HOLD)
    customer.erase(stamp())
    events = customer.collect_events()
    assert Customer.model_validate(customer.state()).state() == customer.state()
    assert replay(events).state() == customer.state()


# -- command specs ------------------------------------------------------------------------


def test_register_spec_checks_the_parent_exists_and_counts_sent_fields() -> None:
    unit = Unit(MemoryStore())
    data = RegisterCustomer(legal_name="Child", parent_customer_id=uid("missing"))
    with pytest.raises(NotFound) as missing:
        create = SPEC["register"].create
        assert create is not None
        create(stamp(), uid("child"), data, unit)
    assert missing.value.field == "parent_customer_id"
    assert sorted(SPEC["register"].fields_written(data)) == ["legal_name", "parent_customer_id"]


def test_change_details_spec_refuses_hierarchy_cycles() -> None:
    top = register(uid("top"))
    middle = register(uid("middle"), parent_customer_id=top.id)
    leaf = register(uid("leaf"), parent_customer_id=middle.id)
    unit = Unit(MemoryStore(top, middle, leaf))
    data = ChangeCustomerDetails(parent_customer_id=leaf.id)
    with pytest.raises(InvalidValue) as cycle:
        handle("change_details", top, data, unit)
    assert cycle.value.field == "parent_customer_id"
    assert SPEC["change_details"].fields_written(data) == ["parent_customer_id"]
    other = register(uid("other"))
    unit = Unit(MemoryStore(top, middle, leaf, other))
    handle("change_details", leaf, ChangeCustomerDetails(parent_customer_id=other.id), unit)
    assert leaf.parent_customer_id == other.id


def test_merge_spec_refuses_a_target_that_was_merged() -> None:
    first, second, third = register(uid("1")), register(uid("2")), register(uid("3"))
    second.merge_into(stamp(), third.id)
    unit = Unit(MemoryStore(first, second, third))
    with pytest.raises(InvalidTransition) as refused:
        handle("merge", first, MergeCustomer(target_customer_id=second.id), unit)
    assert refused.value.field == "target_customer_id"
    handle("erase", first, NoInput(), unit)
    assert first.erased
