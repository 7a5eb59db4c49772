"""Matching a source's customer to the customers Concord knows, before creating one.

Records that carry another system's id are linked by it, never matched (translators do
that). For the rest, in this order: the same **tax id** links (sure); the same **web domain**
links (sure); the same legal name links only when it is written the same way; a name that
is equal once normalised (case, punctuation, legal suffixes such as Inc, LLC, GmbH, Ltd,
K.K., SAS) or merely similar (a typo) is **uncertain** and goes to the match review queue
instead of creating a duplicate. The functions here are pure; lookups come from
:class:`adapters.postgres.match_keys.MatchKeys` through the translator's ``Known``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from uuid import UUID

#: Legal-form suffixes (and prefixes) dropped when comparing names, normalised the same way
#: as names (lower case, punctuation removed): "K.K." → "kk", "S.A.S." → "sas".
LEGAL_FORMS = frozenset(
    {
        "inc", "incorporated", "corp", "corporation", "co", "company", "llc", "llp", "lp",
        "ltd", "limited", "plc", "gmbh", "ag", "kg", "ug", "se", "sa", "sas", "sarl", "srl",
        "spa", "bv", "nv", "oy", "ab", "as", "aps", "kk", "gk", "pty", "pte", "bhd", "sdn",
        "kft", "zrt", "sro", "sp", "zoo", "oü",
    }
)  # fmt: skip

#: How alike two normalised names must be (difflib ratio) to be worth a reviewer's look.
SIMILAR = 0.85


def _spaced(text: str) -> str:
    return " ".join(text.split())


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise_name(name: str) -> str:
    """``"ACME, Inc."`` → ``"acme"``; ``"Müller GmbH & Co. KG"`` → ``"muller"``."""
    words = re.sub(r"[^\w\s]|_", "", _fold(name).replace("&", " ")).split()
    kept = [w for w in words if w not in LEGAL_FORMS and w != "and"]
    return " ".join(kept or words)


def name_tokens(name: str) -> set[str]:
    """Blocking keys of a name: candidates share at least one. Each word of the normalised
    name, its first four letters and its consonant skeleton, so that a typo ("Acmee",
    "Glboex") still finds the customer it is a typo of (the decision then compares names)."""
    keys: set[str] = set()
    for word in normalise_name(name).split():
        if len(word) < 3:
            continue
        keys.add(word)
        keys.add("prefix:" + word[:4])
        skeleton = re.sub(r"[aeiouy]", "", word)
        if len(skeleton) >= 3:
            keys.add("skeleton:" + skeleton)
    return keys


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance (a transposition counts as one edit)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            best = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                best = min(best, previous2[j - 2] + 1)
            current.append(best)
        previous2, previous = previous, current
    return previous[-1]


def similar(a: str, b: str) -> bool:
    """Close enough to be a typo: one edit in a short name, two in a longer one, or a high
    overall likeness of longer names."""
    allowed = 1 if max(len(a), len(b)) < 8 else 2
    return edit_distance(a, b) <= allowed or SequenceMatcher(None, a, b).ratio() >= SIMILAR


def normalise_domain(domain: str) -> str:
    """``"https://www.Acme.com/"`` → ``"acme.com"``."""
    host = _fold(domain).strip()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host).split("/")[0].split(":")[0]
    return host.removeprefix("www.").rstrip(".")


def normalise_tax_id(tax_id: str) -> str:
    """``"DE 123.456.789"`` → ``"DE123456789"`` (tax ids compare without separators)."""
    return re.sub(r"[^0-9A-Z]", "", _fold(tax_id).upper())


@dataclass(frozen=True)
class Candidate:
    """What a source says about a customer it has no linked id for."""

    legal_name: str
    web_domain: str | None = None
    tax_id: str | None = None
    names_trusted: bool = True
    """False for a source that does not own customer names (a billing checkout's typed
    name): an identical name is then only a candidate for review, never a link."""


@dataclass(frozen=True)
class Known:
    """A customer the hub holds, as far as matching looks at it."""

    id: UUID
    legal_name: str
    web_domain: str | None = None
    tax_id: str | None = None


@dataclass(frozen=True)
class MatchResult:
    """``sure`` links to ``customer_id``; otherwise ``uncertain`` lists who to review."""

    customer_id: UUID | None
    reason: str
    uncertain: tuple[tuple[UUID, str], ...] = ()

    @property
    def sure(self) -> bool:
        return self.customer_id is not None


NO_MATCH = MatchResult(None, "no customer matches")


def decide(candidate: Candidate, known: list[Known]) -> MatchResult:
    """The best match among ``known`` (customers found by any blocking key)."""
    if candidate.tax_id:
        tax = normalise_tax_id(candidate.tax_id)
        for other in known:
            if other.tax_id and normalise_tax_id(other.tax_id) == tax:
                return MatchResult(other.id, f"same tax id {tax}")
    if candidate.web_domain:
        domain = normalise_domain(candidate.web_domain)
        for other in known:
            if other.web_domain and normalise_domain(other.web_domain) == domain:
                return MatchResult(other.id, f"same web domain {domain}")
    written = _spaced(candidate.legal_name)
    if candidate.names_trusted:
        for other in known:
            if _spaced(other.legal_name) == written:
                return MatchResult(other.id, "same legal name")
    folded = _spaced(_fold(candidate.legal_name))
    wanted = normalise_name(candidate.legal_name)
    review: list[tuple[UUID, str]] = []
    for other in known:
        theirs = normalise_name(other.legal_name)
        if _spaced(other.legal_name) == written:
            review.append((other.id, "same legal name, from a source that does not own names"))
        elif _spaced(_fold(other.legal_name)) == folded:
            review.append((other.id, "same name in other letter case or accents"))
        elif theirs == wanted:
            review.append((other.id, "same name once case, punctuation and legal form are ignored"))
        elif similar(theirs, wanted):
            review.append((other.id, "similar name (possible typo)"))
    if review:
        return MatchResult(None, "uncertain: a person should decide", tuple(review))
    return NO_MATCH
