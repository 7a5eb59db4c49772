"""Customer use cases: input models and the command specs the API and batch ingest expose.

Registration and detail changes count only the fields the caller sent as written
(``writes_from_input``): CRM registers a customer with names and address, and the ERP later
sets its own fields (tax id, currency) without either needing to own the other's.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from pydantic import ConfigDict
from pydantic.json_schema import SkipJsonSchema

from hub.application.commands import CommandInput, CommandSpec, Handler, InputT, NoInput, on
from hub.application.merges import unmerged
from hub.application.unit import Unit
from hub.domain.base import Aggregate
from hub.domain.bounded import (
    CurrencyCode,
    Domain,
    Name,
    Reason,
    RequiredCode,
    RequiredName,
    RequiredReference,
    RequiredShortCode,
    TaxId,
)
from hub.domain.customer import Address, Customer, CustomerDetails, CustomerStatus, LinkedSystem
from hub.domain.errors import ForeignIdentifier, InvalidTransition, InvalidValue
from hub.domain.invoice import Invoice
from hub.domain.payment import Payment
from hub.domain.provenance import Stamp, System

#: Deepest customer hierarchy walked when looking for a cycle; deeper is refused as well.
MAX_HIERARCHY_DEPTH = 50


class RegisterCustomer(CommandInput):
    legal_name: RequiredName
    display_name: Name | None = None
    web_domain: Domain | None = None
    tax_id: TaxId | None = None
    billing_address: Address | None = None
    currency: CurrencyCode | None = None
    parent_customer_id: UUID | None = None


class ChangeCustomerDetails(CommandInput):
    """Partial update: only the fields sent change (``null`` clears an optional one)."""

    # At least one field: an empty change is refused ("name at least one field to change").
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    # Names cannot be cleared: ``null`` is refused by the domain (422 naming the field), so
    # the schema does not offer it. ``None`` stays the Python default for "not sent".
    legal_name: Name | SkipJsonSchema[None] = None
    display_name: Name | SkipJsonSchema[None] = None
    web_domain: Domain | None = None
    tax_id: TaxId | None = None
    billing_address: Address | None = None
    currency: CurrencyCode | None = None
    parent_customer_id: UUID | None = None


class LinkCustomer(CommandInput):
    system: LinkedSystem
    external_id: RequiredReference


class MergeCustomer(CommandInput):
    target_customer_id: UUID


class ChangeCustomerStatus(CommandInput):
    status: CustomerStatus
    reason: Reason | None = None


class AssignCustomerNumber(CommandInput):
    customer_number: RequiredCode


class SetPaymentTerms(CommandInput):
    payment_terms: RequiredShortCode


def check_hierarchy(unit: Unit, customer_id: UUID, parent_id: UUID | None) -> None:
    """The parent must exist, not be merged away, and not be a descendant (no cycles)."""
    if parent_id is None or parent_id == customer_id:
        return  # the aggregate refuses "its own parent" with the clearer message
    parent = unit.get(Customer, parent_id, field="parent_customer_id")
    if parent.merged_into is not None:
        raise InvalidTransition(
            f"customer {parent_id} was merged into {parent.merged_into}; use that one",
            field="parent_customer_id",
        )
    ancestor: Customer | None = parent
    for _ in range(MAX_HIERARCHY_DEPTH):
        if ancestor is None:
            return
        if ancestor.id == customer_id:
            raise InvalidValue(
                "the parent is a descendant of this customer; that would make a cycle",
                field="parent_customer_id",
            )
        next_id = ancestor.parent_customer_id
        ancestor = (
            None if next_id is None else unit.get(Customer, next_id, field="parent_customer_id")
        )
    raise InvalidValue(
        f"the hierarchy is deeper than {MAX_HIERARCHY_DEPTH} levels",
        field="parent_customer_id",
    )


def _register(stamp: Stamp, customer_id: UUID, data: RegisterCustomer, unit: Unit) -> Aggregate:
    check_hierarchy(unit, customer_id, data.parent_customer_id)
    return Customer.register(stamp, customer_id, **dict(data))


def _change_details(
    customer: Customer, stamp: Stamp, data: ChangeCustomerDetails, unit: Unit
) -> None:
    if "parent_customer_id" in data.model_fields_set:
        check_hierarchy(unit, customer.id, data.parent_customer_id)
    changes = CustomerDetails(**{name: getattr(data, name) for name in data.model_fields_set})
    customer.change_details(stamp, changes)


#: Sources that may link any system's id: operators (``admin`` keys, recorded as ``api``)
#: and Concord's own orchestration.
LINK_ANY_SYSTEM = frozenset({System.API, System.HUB})


def _link(customer: Customer, stamp: Stamp, data: LinkCustomer, unit: Unit) -> None:
    """Link ``data.external_id`` if it is the caller's own system's id (checked here, in the
    hub, so HTTP, batch and inbound webhooks all pass the same rule)."""
    source = stamp.provenance.source_system
    if source not in LINK_ANY_SYSTEM and source.value != data.system.value:
        raise ForeignIdentifier(
            f"a {source.value} client may link only {source.value} ids, not a "
            f"{data.system.value} id; {data.system.value} links its own records "
            "(or an operator with an admin key does)",
            field="system",
        )
    customer.link(stamp, data.system, data.external_id)


def _merge(customer: Customer, stamp: Stamp, data: MergeCustomer, unit: Unit) -> None:
    """Merge, and move what the customer still owes or is owed to the survivor.

    Open invoices (receivables, written off or not) and payments with unapplied credit
    change customer in the same transaction as the merge, each with an event naming both
    customers; settled and void documents stay where they were issued, for the audit trail.
    """
    target: Customer | None = None
    if data.target_customer_id != customer.id:
        target = unit.get(Customer, data.target_customer_id, field="target_customer_id")
        if target.merged_into is not None:
            raise InvalidTransition(
                f"the target was itself merged into {target.merged_into}; merge into that one",
                field="target_customer_id",
            )
    customer.merge_into(stamp, data.target_customer_id)
    if target is not None:
        target.absorb(stamp, customer.id)
    for invoice in unit.of_customer(Invoice, customer.id):
        if invoice.is_open:
            invoice.move_to(stamp, data.target_customer_id)
    for payment in unit.of_customer(Payment, customer.id):
        if payment.has_credit:
            payment.move_to(stamp, data.target_customer_id)


def _customer(
    handler: Callable[[Customer, Stamp, InputT, Unit], None], *, after_merge: bool = False
) -> Handler[InputT]:
    """Adapt ``handler(customer, stamp, data, unit)`` to the generic handler signature.

    On a merged customer only ``after_merge`` commands run (erasure: the law applies to the
    merged-away record too); the rest are refused naming the survivor at the end of the
    merge chain, which the aggregate alone cannot know.
    """

    def run(customer: Customer, stamp: Stamp, data: InputT, unit: Unit) -> None:
        if customer.merged_into is not None and not after_merge:
            unmerged(unit, customer.id, field="id", action="send the command")
        handler(customer, stamp, data, unit)

    return on(Customer, run)


SPECS = [
    CommandSpec(
        "customer",
        "register",
        RegisterCustomer,
        "Register a new customer",
        create=_register,
        writes_from_input=True,
        description="Only the fields sent count as written for the ownership check.",
    ),
    CommandSpec(
        "customer",
        "change_details",
        ChangeCustomerDetails,
        "Change some of the customer's details (only the fields sent)",
        handle=_customer(_change_details),
        writes_from_input=True,
    ),
    CommandSpec(
        "customer",
        "link",
        LinkCustomer,
        "Cross-reference a system's record of the customer",
        handle=_customer(_link),
        writes=("external_ids",),
        description="A caller links only its own system's ids (403 `foreign-id` otherwise; "
        "admin keys may link any, recorded with source `api` and their client as actor). "
        "Linking the same id again changes nothing; a different id for an already linked "
        "system is refused (resolve the duplicate by merging).",
    ),
    CommandSpec(
        "customer",
        "merge",
        MergeCustomer,
        "Merge this duplicate into a surviving customer",
        handle=_customer(_merge),
        writes=("merged_into",),
    ),
    CommandSpec(
        "customer",
        "change_status",
        ChangeCustomerStatus,
        "Put the customer on hold, reactivate or close it (closed is final)",
        handle=_customer(lambda c, s, d, u: c.change_status(s, d.status, d.reason)),
        writes=("status",),
    ),
    CommandSpec(
        "customer",
        "erase",
        NoInput,
        "Erase the customer's personal data (GDPR)",
        handle=_customer(lambda c, s, d, u: c.erase(s), after_merge=True),
        writes=("erased",),
    ),
    CommandSpec(
        "customer",
        "assign_number",
        AssignCustomerNumber,
        "Record the ERP's customer number",
        handle=_customer(lambda c, s, d, u: c.assign_number(s, d.customer_number)),
        writes=("customer_number",),
    ),
    CommandSpec(
        "customer",
        "set_payment_terms",
        SetPaymentTerms,
        "Record the ERP's payment terms",
        handle=_customer(lambda c, s, d, u: c.set_payment_terms(s, d.payment_terms)),
        writes=("payment_terms",),
    ),
]
