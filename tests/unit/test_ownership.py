"""The ownership policy file: it loads, covers every field a command writes, and refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.application.catalogue import build_catalogue
from hub.application.commands import CommandSpec
from hub.application.customers import ChangeCustomerDetails, RegisterCustomer
from hub.domain.catalog import AGGREGATES
from hub.domain.errors import OwnershipViolation
from hub.domain.ownership import ADMIN, OwnershipPolicy

POLICY_FILE = Path(__file__).resolve().parents[2] / "adapters" / "ownership.yaml"


@pytest.fixture(scope="module")
def policy() -> OwnershipPolicy:
    return OwnershipPolicy.model_validate(yaml.safe_load(POLICY_FILE.read_text()))


def written_fields(spec: CommandSpec) -> list[str]:
    """Every field the spec can write: its fixed ones plus, if partial, every input field."""
    names = list(spec.writes)
    if spec.writes_from_input:
        names += [n for n in spec.input_model.model_fields if n not in names]
    return names


def test_policy_covers_every_entity(policy: OwnershipPolicy) -> None:
    assert policy.version == 1
    assert set(policy.entities) == {aggregate.entity for aggregate in AGGREGATES}


def test_every_written_field_is_named_in_the_policy(policy: OwnershipPolicy) -> None:
    missing = [
        f"{spec.entity}.{spec.name}: {name}"
        for spec in build_catalogue().all()
        for name in written_fields(spec)
        if name not in policy.entities[spec.entity].fields
    ]
    assert missing == []


def test_every_command_writes_something(policy: OwnershipPolicy) -> None:
    silent = [f"{s.entity}.{s.name}" for s in build_catalogue().all() if not written_fields(s)]
    assert silent == []


def test_catalogue_has_every_command() -> None:
    names = {(s.entity, s.name) for s in build_catalogue().all()}
    expected = {
        "customer": {
            "register",
            "change_details",
            "link",
            "merge",
            "change_status",
            "erase",
            "assign_number",
            "set_payment_terms",
        },
        "contract": {
            "create",
            "activate",
            "amend",
            "renew",
            "suspend",
            "resume",
            "cancel",
            "record_usage",
        },
        "order": {
            "place",
            "validate",
            "reject",
            "accept",
            "fulfil",
            "cancel",
            "amend",
            "hold",
            "release",
        },
        "invoice": {
            "issue",
            "post",
            "void",
            "credit",
            "mark_uncollectible",
            "record_tax",
            "record_payment_failure",
        },
        "payment": {"receive", "apply", "refund", "fail", "reverse"},
        "product": {"define", "change", "retire"},
    }
    assert names == {(entity, name) for entity, ns in expected.items() for name in ns}


def test_crm_may_not_write_an_erp_field(policy: OwnershipPolicy) -> None:
    with pytest.raises(OwnershipViolation) as refused:
        policy.check("crm", "customer", ["display_name", "customer_number"])
    assert refused.value.field == "customer_number"
    assert refused.value.owner == "erp"
    assert refused.value.caller == "crm"
    assert "erp" in refused.value.message


def test_admin_passes_everything(policy: OwnershipPolicy) -> None:
    for spec in build_catalogue().all():
        policy.check(ADMIN, spec.entity, written_fields(spec))


def _allowed(policy: OwnershipPolicy, system: str, spec: CommandSpec, payload: Any) -> bool:
    try:
        policy.check(system, spec.entity, spec.fields_written(payload))
    except OwnershipViolation:
        return False
    return True


@pytest.mark.parametrize(
    ("entity", "command", "systems"),
    [
        ("order", "place", {"crm"}),
        ("order", "validate", {"hub", "erp"}),
        ("order", "reject", {"hub", "erp"}),
        ("order", "accept", {"erp"}),
        ("order", "fulfil", {"erp"}),
        ("order", "cancel", {"crm", "erp"}),
        ("customer", "assign_number", {"erp"}),
        ("customer", "set_payment_terms", {"erp"}),
        ("customer", "link", {"crm", "erp", "billing"}),
        ("contract", "amend", {"billing", "hub"}),
        ("contract", "record_usage", {"billing"}),
        ("invoice", "issue", {"billing"}),
        ("invoice", "post", {"erp"}),
        ("invoice", "mark_uncollectible", {"billing", "erp"}),
        ("payment", "apply", {"billing"}),
    ],
)
def test_who_may_run_what(
    policy: OwnershipPolicy, entity: str, command: str, systems: set[str]
) -> None:
    spec = build_catalogue().get(entity, command)
    assert spec is not None
    payload = spec.input_model.model_construct()
    allowed = {s for s in ("crm", "erp", "billing", "hub") if _allowed(policy, s, spec, payload)}
    assert allowed == systems


def test_partial_customer_writes_are_checked_per_field_sent(policy: OwnershipPolicy) -> None:
    spec = build_catalogue().get("customer", "change_details")
    assert spec is not None
    assert _allowed(policy, "crm", spec, ChangeCustomerDetails(display_name="Acme"))
    assert not _allowed(policy, "crm", spec, ChangeCustomerDetails(tax_id="DE1"))
    assert _allowed(policy, "erp", spec, ChangeCustomerDetails(tax_id="DE1", currency="EUR"))
    register = build_catalogue().get("customer", "register")
    assert register is not None
    assert _allowed(policy, "crm", register, RegisterCustomer(legal_name="Acme"))
    assert not _allowed(policy, "crm", register, RegisterCustomer(legal_name="A", tax_id="X"))
