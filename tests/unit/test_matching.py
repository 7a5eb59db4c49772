"""Customer matching rules: sure links, uncertain reviews, no fuzzy links."""

from __future__ import annotations

import uuid

import pytest

from adapters.inbound.matching import (
    Candidate,
    Known,
    decide,
    normalise_domain,
    normalise_name,
    normalise_tax_id,
)

ACME = Known(uuid.uuid4(), "Acme GmbH", "acme.de", "DE123456789")
GLOBEX = Known(uuid.uuid4(), "Globex Corporation", None, None)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("ACME, Inc.", "acme"),
        ("Acme LLC", "acme"),
        ("Acme K.K.", "acme"),
        ("ACME S.A.S.", "acme"),
        ("Müller GmbH & Co. KG", "muller"),
        ("Acme Ltd.", "acme"),
        ("Inc", "inc"),  # a name that is only a legal form keeps its word
    ],
)
def test_names_normalise_case_punctuation_and_legal_forms(raw: str, normal: str) -> None:
    assert normalise_name(raw) == normal


def test_domains_and_tax_ids_normalise() -> None:
    assert normalise_domain("https://WWW.Acme.de/contact") == "acme.de"
    assert normalise_tax_id("de 123.456-789") == "DE123456789"


def test_exact_tax_id_links_whatever_the_name() -> None:
    found = decide(Candidate("Totally Different", tax_id="DE 123 456 789"), [GLOBEX, ACME])
    assert found.sure and found.customer_id == ACME.id


def test_same_domain_links() -> None:
    found = decide(Candidate("ACME Deutschland", web_domain="www.acme.de"), [ACME])
    assert found.sure and found.customer_id == ACME.id


def test_the_same_name_written_the_same_way_links() -> None:
    assert decide(Candidate("Acme  GmbH"), [ACME]).customer_id == ACME.id


def test_another_letter_case_goes_to_review() -> None:
    found = decide(Candidate("ACME GMBH"), [ACME])
    assert not found.sure and [c for c, _ in found.uncertain] == [ACME.id]


def test_a_name_from_a_source_that_does_not_own_names_never_links_by_itself() -> None:
    found = decide(Candidate("Acme GmbH", names_trusted=False), [ACME])
    assert not found.sure and [c for c, _ in found.uncertain] == [ACME.id]
    # A tax id or a domain still links: those are not typed at a checkout.
    assert decide(Candidate("x", tax_id="DE123456789", names_trusted=False), [ACME]).sure


@pytest.mark.parametrize("variant", ["ACME, Inc.", "Acme G.m.b.H.", "Acme Ltd", "Acme K.K."])
def test_legal_form_and_punctuation_variants_go_to_review(variant: str) -> None:
    found = decide(Candidate(variant), [ACME, GLOBEX])
    assert not found.sure
    assert [c for c, _ in found.uncertain] == [ACME.id]


@pytest.mark.parametrize("typo", ["Acmee GmbH", "Globx Corporation", "Glboex Corp"])
def test_typos_go_to_review(typo: str) -> None:
    found = decide(Candidate(typo), [ACME, GLOBEX])
    assert not found.sure and found.uncertain


def test_unrelated_names_match_nobody() -> None:
    found = decide(Candidate("Initech"), [ACME, GLOBEX])
    assert not found.sure and not found.uncertain
