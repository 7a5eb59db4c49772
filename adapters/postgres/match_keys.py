"""Blind match keys of customers: find candidates by tax id, domain or name words without
keeping those personal values in clear.

Names, domains and tax ids are sealed with each customer's key (crypto-shredding), so they
cannot be searched in SQL. Instead the committer stores keyed hashes (HMAC-SHA256 with a
secret of this hub, ``concord_secrets``) of their normalised forms, in the customer's own
transaction: a source's candidate is hashed the same way and looked up. Erasure and merges
delete a customer's keys (it can no longer be matched); the reviewer reads the candidates'
names through the API, where personal data rules apply.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor, sql

from adapters.inbound.matching import (
    Candidate,
    name_tokens,
    normalise_domain,
    normalise_tax_id,
)
from hub.domain.base import Aggregate

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_secrets (
        name       text        PRIMARY KEY,
        value      bytea       NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_match_keys (
        digest      text NOT NULL,
        customer_id uuid NOT NULL,
        PRIMARY KEY (digest, customer_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS concord_match_keys_customer ON {schema}.concord_match_keys "
    "(customer_id)",
]

#: At most this many candidates are compared for one source record (a common word).
MAX_CANDIDATES = 50


def candidate_keys(candidate: Candidate) -> list[tuple[str, str]]:
    """``(kind, normalised value)`` pairs a customer or a source's candidate is found by."""
    keys = [("token", word) for word in sorted(name_tokens(candidate.legal_name))]
    if candidate.web_domain and normalise_domain(candidate.web_domain):
        keys.append(("domain", normalise_domain(candidate.web_domain)))
    if candidate.tax_id and normalise_tax_id(candidate.tax_id):
        keys.append(("tax", normalise_tax_id(candidate.tax_id)))
    return keys


class MatchKeys:
    """Computes and stores the keyed hashes (the secret is read once per process)."""

    def __init__(self, datastore: PostgresDatastore, schema: str) -> None:
        self.datastore = datastore
        self.schema = sql.Identifier(schema)
        self._secret: bytes | None = None

    def secret(self) -> bytes:
        if self._secret is None:
            insert = sql.SQL(
                "INSERT INTO {}.concord_secrets (name, value) VALUES ('match-keys', %s) "
                "ON CONFLICT (name) DO NOTHING"
            ).format(self.schema)
            select = sql.SQL(
                "SELECT value FROM {}.concord_secrets WHERE name = 'match-keys'"
            ).format(self.schema)
            with self.datastore.get_connection() as conn:
                conn.execute(insert, (os.urandom(32),))
                row = conn.execute(select).fetchone()
            assert row is not None
            self._secret = bytes(row["value"])
        return self._secret

    def digests(self, candidate: Candidate) -> list[str]:
        secret = self.secret()
        return [
            hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:40]
            for kind, value in candidate_keys(candidate)
        ]

    def rows(self, customers: Sequence[Aggregate]) -> tuple[list[UUID], list[tuple[str, UUID]]]:
        """Customers whose keys are replaced, and their new keys (none once erased or
        merged away: they must not be matched any more)."""
        touched: list[UUID] = []
        rows: list[tuple[str, UUID]] = []
        for customer in customers:
            touched.append(customer.id)
            state: Any = customer
            if state.erased or state.merged_into is not None:
                continue
            candidate = Candidate(state.legal_name, state.web_domain, state.tax_id)
            rows += [(digest, customer.id) for digest in dict.fromkeys(self.digests(candidate))]
        return touched, rows

    def replace(self, curs: Cursor[Any], keys: dict[UUID, list[str]]) -> None:
        """Inside the customers' commit: replace their keys with ``keys``."""
        curs.execute(
            sql.SQL("DELETE FROM {}.concord_match_keys WHERE customer_id = ANY(%s)").format(
                self.schema
            ),
            (list(keys),),
        )
        rows = [(digest, customer) for customer, digests in keys.items() for digest in digests]
        if rows:
            digests, ids = (list(column) for column in zip(*rows, strict=True))
            curs.execute(
                sql.SQL(
                    "INSERT INTO {}.concord_match_keys (digest, customer_id) "
                    "SELECT * FROM unnest(%s::text[], %s::uuid[]) ON CONFLICT DO NOTHING"
                ).format(self.schema),
                (digests, ids),
            )

    def candidates(self, candidate: Candidate) -> list[UUID]:
        """Customers sharing a tax id, a domain or a name word with ``candidate``."""
        digests = self.digests(candidate)
        if not digests:
            return []
        query = sql.SQL(
            "SELECT customer_id, count(*) AS shared FROM {}.concord_match_keys "
            "WHERE digest = ANY(%s) GROUP BY customer_id ORDER BY shared DESC LIMIT %s"
        ).format(self.schema)
        with self.datastore.get_connection() as conn:
            return [row["customer_id"] for row in conn.execute(query, (digests, MAX_CANDIDATES))]
