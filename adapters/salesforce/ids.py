"""Salesforce record ids, normalised to their 18-character form.

Salesforce shows 15-character ids (case-sensitive: ``001Dn00000AbCdE`` and
``001Dn00000ABCDE`` are different records) in its UI and reports, and 18-character ids
(case-insensitive) in the APIs and CDC. Concord keys the cross-reference on the 18-character
form, so a record reaches the same aggregate whichever form a message (or a person pasting
an id from a report) uses.

The three extra characters encode the case of the first fifteen: for each block of five
characters, a 5-bit number whose bit *i* is set when character *i* is an upper-case letter,
written as one character of ``A…Z0…5``. The encoding also lets a lower-cased 18-character id
(a spreadsheet, a case-insensitive database) be restored to its true case.
"""

from __future__ import annotations

import re

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-5]{3})?$")


def checksum(id15: str) -> str:
    """The three-character suffix of a 15-character id."""
    out = []
    for block in range(3):
        chunk = id15[block * 5 : block * 5 + 5]
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        out.append(_ALPHABET[bits])
    return "".join(out)


def _with_case(head: str, suffix: str) -> str:
    """``head`` with each letter's case as ``suffix`` encodes it."""
    chars = list(head)
    for block, code in enumerate(suffix):
        bits = _ALPHABET.index(code)
        for i in range(5):
            at = block * 5 + i
            chars[at] = chars[at].upper() if bits >> i & 1 else chars[at].lower()
    return "".join(chars)


def to_18(value: str) -> str:
    """The 18-character form of a 15- or 18-character id; ``ValueError`` if it is neither."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"{value!r} is not a Salesforce id (15 or 18 letters and digits)")
    if len(value) == 15:
        return value + checksum(value)
    suffix = value[15:].upper()
    return _with_case(value[:15], suffix) + suffix
