"""README's "Who sends what" section is the rendering of the ownership policy and catalogue.

Fails when ``adapters/ownership.yaml``, the catalogue or the worked examples change and the
README is not regenerated (``python -m adapters.who_sends_what README.md``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.bootstrap import load_policy
from adapters.who_sends_what import (
    EXAMPLES,
    commands_of,
    render_section,
    render_table,
    section_of,
)
from hub.application.catalogue import build_catalogue
from hub.domain.ownership import ADMIN, OwnershipPolicy

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_section_is_the_rendered_policy_and_examples() -> None:
    rendered = render_section(load_policy(None), build_catalogue())
    assert section_of(README.read_text()) == rendered, (
        "README's 'Who sends what' differs from the policy/catalogue: run "
        "`python -m adapters.who_sends_what README.md`"
    )


def test_table_follows_the_policy() -> None:
    """Moving a field to another owner moves the command in the table (it is not frozen)."""
    policy = load_policy(None)
    catalogue = build_catalogue()
    assert "| erp | customer | `change_details`: tax_id, currency;" in render_table(
        policy, catalogue
    )
    document = policy.model_dump()
    document["entities"]["customer"]["fields"]["customer_number"] = ["billing"]
    moved = render_table(OwnershipPolicy.model_validate(document), catalogue)
    erp_row = next(row for row in moved.splitlines() if row.startswith("| erp | customer |"))
    billing_row = next(row for row in moved.splitlines() if row.startswith("| billing | customer"))
    assert "`assign_number`" not in erp_row
    assert "`assign_number`" in billing_row and "customer_number" in billing_row


def test_a_command_needing_a_field_the_system_lacks_is_not_listed() -> None:
    """ERP owns tax_id and currency, but registering needs legal_name (CRM's)."""
    policy = load_policy(None)
    register = build_catalogue().get("customer", "register")
    assert register is not None
    assert commands_of(register, policy, "erp") is None
    assert commands_of(register, policy, "crm") == (
        "`register` (new): legal_name, display_name, web_domain, billing_address, "
        "parent_customer_id"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.system)
def test_each_example_sends_a_command_its_system_owns(example: object) -> None:
    from adapters.who_sends_what import Example

    assert isinstance(example, Example)
    policy = load_policy(None)
    catalogue = build_catalogue()
    parts = example.path.strip("/").split("/")  # v1, collection[, id, command]
    entity = parts[1].removesuffix("s")
    name = (
        parts[3]
        if len(parts) == 4
        else next(s.name for s in catalogue.for_entity(entity) if s.creates)
    )
    spec = catalogue.get(entity, name)
    assert spec is not None, example.path
    if example.system != ADMIN:
        assert commands_of(spec, policy, example.system) is not None


def test_one_example_per_system_key() -> None:
    assert sorted(e.system for e in EXAMPLES) == sorted(["crm", "erp", "billing", ADMIN])
