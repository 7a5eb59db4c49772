"""Salesforce ids: 15-character ids get their checksum suffix; 18-character ids keep (or
regain) their case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.salesforce import to_18
from adapters.salesforce.ids import checksum

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def test_known_pairs() -> None:
    assert to_18("0015000000Gv7qJ") == "0015000000Gv7qJAAR"
    assert to_18("001000000000000") == "001000000000000AAA"
    assert to_18("AAAAAAAAAAAAAAA") == "AAAAAAAAAAAAAAA555"  # every bit set: 31 → "5"
    # "00D5e": D is bit 2 → 4 → "E"; "00000" → "A"; "0abcD": D is bit 4 → 16 → "Q".
    assert checksum("00D5e000000abcD") == "EAQ"


def test_an_18_character_id_is_unchanged_and_regains_its_case() -> None:
    assert to_18("0015000000Gv7qJAAR") == "0015000000Gv7qJAAR"
    assert to_18("0015000000gv7qjaar") == "0015000000Gv7qJAAR"
    assert to_18("0015000000GV7QJAAR") == "0015000000Gv7qJAAR"


@pytest.mark.parametrize("bad", ["", "001", "0015000000Gv7qJA", "0015000000Gv7q-", "001*", 42])
def test_anything_else_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="not a Salesforce id"):
        to_18(bad)  # type: ignore[arg-type]


@given(st.text(alphabet=ALNUM, min_size=15, max_size=15))
def test_round_trip(id15: str) -> None:
    full = to_18(id15)
    assert len(full) == 18 and full[:15] == id15
    assert to_18(full) == full
    assert to_18(full.lower()) == full == to_18(full.upper())
