"""Key rules without a key file: minting rights and expiry input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.key_rules import KeyRingError, check_request, mint_refusal, parse_expiry
from hub.application.service import Caller

OPERATOR = Caller("ops", "admin", frozenset({"read", "write", "admin"}))
AUDITOR = Caller("audit", "admin", frozenset({"read"}))
CRM_ADMIN = Caller("crm-ops", "crm", frozenset({"read", "write", "admin"}))


def test_an_operator_mints_any_system_within_its_scopes() -> None:
    for system in ("crm", "erp", "billing", "admin"):
        assert mint_refusal(OPERATOR, system, {"read", "write", "admin"}) is None


def test_no_key_grants_a_scope_it_lacks() -> None:
    refused = mint_refusal(AUDITOR, "crm", {"read", "write"})
    assert refused is not None and refused.field == "scopes" and "write" in refused.message
    assert mint_refusal(AUDITOR, "admin", {"read"}) is None  # (the route needs admin anyway)
    # Without the admin scope an admin-system key is no operator: its own system only.
    assert mint_refusal(AUDITOR, "crm", {"read"}) is not None


def test_a_system_key_mints_only_for_its_own_system() -> None:
    for system in ("admin", "erp", "billing"):
        refused = mint_refusal(CRM_ADMIN, system, {"read"})
        assert refused is not None and refused.field == "system"
    assert mint_refusal(CRM_ADMIN, "crm", {"read", "write", "admin"}) is None


def test_check_request_names_the_problem() -> None:
    assert check_request("sf", "crm", [" read ", "write"]) == {"read", "write"}
    for args, words in (
        (("bad id", "crm", ["read"]), "client id"),
        (("sf", "sap", ["read"]), "sap"),
        (("sf", "crm", ["root"]), "root"),
        (("sf", "crm", []), "at least one scope"),
    ):
        with pytest.raises(KeyRingError, match=words):
            check_request(*args)


def test_parse_expiry() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry("90d", now) == now + timedelta(days=90)
    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("30m", now) == now + timedelta(minutes=30)
    assert parse_expiry("2027-01-01T00:00:00Z", now) == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("tomorrow", "2027-01-01T00:00:00", "-5d", "5y"):
        with pytest.raises(KeyRingError):
            parse_expiry(bad, now)
