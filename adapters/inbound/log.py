"""The inbound log: every accepted delivery, stored as received, before it is translated.

Why first: an auditor must be able to open the exact payload behind any canonical event
(each event's ``causation_id`` is ``inbound:<id>``), and a fixed translator or mapping can
only re-translate history that was kept. One row per source event (``UNIQUE (system,
event_id)``): a repeated delivery finds its row instead of adding one. The row's status
says what became of it; *exactly one effect* does not rest on it but on the receipt the
commit writes in the same transaction as the events (see :mod:`adapters.inbound.service`).

A held delivery being re-run is claimed (``claimed_until``): every worker that applies an
event while something is held looks for what it released, and so does the periodic releaser;
without the claim, releasers running at once re-ran the same ready delivery each (the later
ones finding its receipt). Settling the delivery ends the claim in the same statement.

Statuses: ``received`` (logged, not yet translated, or its commit failed and a retry will
finish it), ``applied``, ``held`` (waiting for ``wait_*``), ``ignored`` (nothing to do),
``refused`` (what it says cannot be true; ``detail`` says why; a retry re-runs it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor, sql
from psycopg.types.json import Jsonb

from adapters.inbound.model import Ref, SourceEvent

TABLES = [
    """
    CREATE TABLE IF NOT EXISTS {schema}.concord_inbound (
        id               bigserial   PRIMARY KEY,
        system           text        NOT NULL,
        event_id         text        NOT NULL,
        event_type       text        NOT NULL,
        received_at      timestamptz NOT NULL DEFAULT now(),
        occurred_at      timestamptz,
        headers          jsonb       NOT NULL,
        body             bytea,
        body_sha256      text        NOT NULL,
        verification     text        NOT NULL,
        status           text        NOT NULL DEFAULT 'received',
        detail           jsonb,
        wait_system      text,
        wait_entity      text,
        wait_external_id text,
        attempts         integer     NOT NULL DEFAULT 0,
        updated_at       timestamptz NOT NULL DEFAULT now(),
        customer_ids     uuid[]      NOT NULL DEFAULT '{{}}',
        UNIQUE (system, event_id)
    )
    """,
    # Erasure finds the deliveries about a customer by it (see erase_deliveries).
    "CREATE INDEX IF NOT EXISTS concord_inbound_customers ON {schema}.concord_inbound "
    "USING gin (customer_ids)",
    """
    CREATE INDEX IF NOT EXISTS concord_inbound_held
        ON {schema}.concord_inbound (wait_system, wait_entity, wait_external_id)
        WHERE status = 'held'
    """,
    "CREATE INDEX IF NOT EXISTS concord_inbound_received ON {schema}.concord_inbound (received_at)",
    # A releaser re-running a held delivery claims it until then (see InboundLog.claim_released).
    "ALTER TABLE {schema}.concord_inbound ADD COLUMN IF NOT EXISTS claimed_until timestamptz",
]

CLAIM_LEASE_S = 60
"""How long a releaser's claim on a held delivery lasts if it never settles it (the process
stopped mid re-run): after that, the next release round takes it again, so no release is
lost; a re-run takes well under a second."""

FINAL = frozenset({"applied", "ignored", "discarded"})
"""Statuses a repeated delivery does not re-run (held and refused ones are re-tried)."""

#: Header names never stored: credentials and signatures are secrets or derived from them
#: (the verification column says how the delivery was authenticated instead).
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
        "stripe-signature",
        "x-hubspot-signature",
        "x-hubspot-signature-v3",
        "x-concord-signature",
    }
)


#: Any header whose name holds one of these is taken for a credential and never stored
#: (custom auth headers of a proxy or bridge included).
SECRET_WORDS = ("auth", "token", "secret", "signature", "cookie", "key", "password", "session")


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The delivery's headers without secrets (names lower-cased)."""
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower() not in SECRET_HEADERS and not any(w in k.lower() for w in SECRET_WORDS)
    }


@dataclass(frozen=True)
class Delivery:
    """One logged source event."""

    id: int
    system: str
    event_id: str
    event_type: str
    received_at: datetime
    occurred_at: datetime | None
    headers: dict[str, Any]
    body: bytes | None
    body_sha256: str
    verification: str
    status: str
    detail: dict[str, Any] | None
    waiting_for: Ref | None
    attempts: int
    updated_at: datetime
    fresh: bool = False
    """True when the call that returned it logged it: no earlier delivery of the event
    exists, so nothing of it can have been committed yet (no receipt to look for)."""

    def source_event(self) -> SourceEvent | None:
        """The event as the translator sees it again (None when the body was erased)."""
        if self.body is None:
            return None
        return SourceEvent(
            event_id=self.event_id,
            event_type=self.event_type,
            document=orjson.loads(self.body),
            raw=self.body,
            occurred_at=self.occurred_at,
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready row without the body (lists, the workbench)."""
        return {
            "id": self.id,
            "system": self.system,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "received_at": self.received_at.isoformat(),
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "status": self.status,
            "detail": self.detail,
            "waiting_for": None
            if self.waiting_for is None
            else {
                "system": self.waiting_for.system,
                "entity": self.waiting_for.entity,
                "external_id": self.waiting_for.external_id,
            },
            "attempts": self.attempts,
            "updated_at": self.updated_at.isoformat(),
        }


_COLUMNS = (
    "id, system, event_id, event_type, received_at, occurred_at, headers, body, body_sha256, "
    "verification, status, detail, wait_system, wait_entity, wait_external_id, attempts, "
    "updated_at"
)


def _delivery(row: Mapping[str, Any], fresh: bool = False) -> Delivery:
    wait = None
    if row["wait_system"] is not None:
        wait = Ref(row["wait_system"], row["wait_entity"], row["wait_external_id"])
    body = row["body"]
    return Delivery(
        id=row["id"],
        system=row["system"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        received_at=row["received_at"],
        occurred_at=row["occurred_at"],
        headers=row["headers"],
        body=None if body is None else bytes(body),
        body_sha256=row["body_sha256"],
        verification=row["verification"],
        status=row["status"],
        detail=row["detail"],
        waiting_for=wait,
        attempts=row["attempts"],
        updated_at=row["updated_at"],
        fresh=fresh,
    )


class InboundLog:
    """The ``concord_inbound`` table, on the runtime's one pool."""

    def __init__(self, datastore: PostgresDatastore, schema: str) -> None:
        self.datastore = datastore
        self.schema = sql.Identifier(schema)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(schema=self.schema)

    def record(
        self, system: str, event: SourceEvent, headers: Mapping[str, str], verification: str
    ) -> Delivery:
        """Store the event as received, or find the row of an earlier delivery of it."""
        insert = self._sql(
            "INSERT INTO {schema}.concord_inbound (system, event_id, event_type, occurred_at, "
            "headers, body, body_sha256, verification) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            f"ON CONFLICT (system, event_id) DO NOTHING RETURNING {_COLUMNS}"
        )
        select = self._sql(
            f"SELECT {_COLUMNS} FROM {{schema}}.concord_inbound WHERE system = %s AND event_id = %s"
        )
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                insert,
                (
                    system,
                    event.event_id,
                    event.event_type,
                    event.occurred_at,
                    Jsonb(stored_headers(headers)),
                    event.raw,
                    sha256(event.raw).hexdigest(),
                    verification,
                ),
            ).fetchone()
            if row is not None:
                return _delivery(row, fresh=True)
            row = conn.execute(select, (system, event.event_id)).fetchone()
        assert row is not None
        return _delivery(row)

    def get(self, delivery_id: int) -> Delivery | None:
        query = self._sql(f"SELECT {_COLUMNS} FROM {{schema}}.concord_inbound WHERE id = %s")
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (delivery_id,)).fetchone()
        return None if row is None else _delivery(row)

    def settle(
        self,
        delivery_id: int,
        status: str,
        detail: dict[str, Any] | None = None,
        waiting_for: Ref | None = None,
        customers: Sequence[UUID] = (),
        ask_held: bool = False,
    ) -> bool:
        """Record what became of a delivery (one more attempt), and which customers its
        effects concern (an erasure of one of them erases the payload).

        ``ask_held``: also answer whether any delivery is held, in the same statement (no
        round trip of its own; False when not asked). Its snapshot is taken after the
        delivery's commit, so a delivery held concurrently is either seen here or sees the
        reference itself when it holds (``InboundService._hold``)."""
        wait = (
            (None, None, None)
            if waiting_for is None
            else (
                waiting_for.system,
                waiting_for.entity,
                waiting_for.external_id,
            )
        )
        update = (
            "UPDATE {schema}.concord_inbound SET status = %s, detail = %s, wait_system = %s, "
            "wait_entity = %s, wait_external_id = %s, attempts = attempts + 1, "
            "customer_ids = customer_ids || %s::uuid[], updated_at = now(), "
            "claimed_until = NULL WHERE id = %s AND status <> 'applied'"
        )
        params = (
            status,
            None if detail is None else Jsonb(detail),
            *wait,
            list(dict.fromkeys(customers)),
            delivery_id,
        )
        if not ask_held:
            with self.datastore.get_connection() as conn:
                conn.execute(self._sql(update), params)
            return False
        query = self._sql(
            f"WITH settled AS ({update} RETURNING 1) SELECT EXISTS (SELECT 1 FROM "
            "{schema}.concord_inbound WHERE status = 'held') AS held"
        )
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, params).fetchone()
        return row is not None and bool(row["held"])

    def note_failure(self, delivery_id: int, error: str) -> None:
        """A re-run failed unexpectedly: count the attempt and keep the error (the status
        stays and the claim ends, so the next release round tries again)."""
        query = self._sql(
            "UPDATE {schema}.concord_inbound SET attempts = attempts + 1, "
            "detail = coalesce(detail, '{{}}'::jsonb) "
            "|| jsonb_build_object('last_error', %s::text), "
            "updated_at = now(), claimed_until = NULL WHERE id = %s"
        )
        with self.datastore.get_connection() as conn:
            conn.execute(query, (error[:1000], delivery_id))

    def discard(self, delivery_id: int, actor: str, reason: str) -> Delivery | None:
        """An operator gives up on a held or refused delivery (it will never apply): kept in
        the log, with who and why, and never re-run (a redelivery is a duplicate)."""
        query = self._sql(
            "UPDATE {schema}.concord_inbound SET status = 'discarded', detail = "
            "coalesce(detail, '{{}}'::jsonb) || jsonb_build_object('discarded_by', %s::text, "
            "'reason', %s::text), wait_system = NULL, wait_entity = NULL, "
            "wait_external_id = NULL, updated_at = now() "
            f"WHERE id = %s AND status IN ('held', 'refused', 'received') RETURNING {_COLUMNS}"
        )
        with self.datastore.get_connection() as conn:
            row = conn.execute(query, (actor, reason, delivery_id)).fetchone()
        return None if row is None else _delivery(row)

    def any_held(self) -> bool:
        query = self._sql("SELECT 1 FROM {schema}.concord_inbound WHERE status = 'held' LIMIT 1")
        with self.datastore.get_connection() as conn:
            return conn.execute(query).fetchone() is not None

    def claim_released(self) -> list[Delivery]:
        """Held deliveries whose dependency has arrived (it is in the cross-reference, or
        the review is decided) and that no other releaser is re-running, claimed for this
        caller, oldest first: the order they were received in is the order they are applied
        in. ``SKIP LOCKED`` and the claim keep two releasers from taking the same one.

        The claim never loses a release: it ends when the re-run settles the delivery, and a
        re-run that holds it again looks for the new dependency after settling
        (``InboundService._hold``), so one that arrived while it was claimed is seen."""
        columns = ", ".join("i." + c.strip() for c in _COLUMNS.split(","))
        query = self._sql(
            "WITH ready AS (SELECT i.id FROM {schema}.concord_inbound i WHERE i.status = 'held' "
            "AND (i.claimed_until IS NULL OR i.claimed_until < now()) AND ("
            "EXISTS (SELECT 1 FROM {schema}.concord_xref x WHERE x.system = i.wait_system "
            "AND x.entity = i.wait_entity AND x.external_id = i.wait_external_id) OR "
            "(i.wait_system = 'review' AND EXISTS (SELECT 1 FROM {schema}.concord_matches m "
            "WHERE m.source || ':' || m.external_id = i.wait_external_id "
            "AND m.status <> 'pending'))) ORDER BY i.id FOR UPDATE OF i SKIP LOCKED) "
            "UPDATE {schema}.concord_inbound i SET claimed_until = now() + make_interval("
            f"secs => %s) FROM ready WHERE i.id = ready.id RETURNING {columns}"
        )
        with self.datastore.get_connection() as conn:
            rows = conn.execute(query, (CLAIM_LEASE_S,)).fetchall()
        return sorted((_delivery(row) for row in rows), key=lambda d: d.id)

    def list(
        self,
        *,
        status: str | None = None,
        system: str | None = None,
        since: datetime | None = None,
        after_id: int = 0,
        limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries oldest first, filtered; ``after_id`` pages."""
        where = ["id > %s"]
        params: list[Any] = [after_id]
        for column, value in (("status", status), ("system", system)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if since is not None:
            where.append("received_at >= %s")
            params.append(since)
        query = self._sql(
            f"SELECT {_COLUMNS} FROM {{schema}}.concord_inbound WHERE {' AND '.join(where)} "
            "ORDER BY id LIMIT %s"
        )
        with self.datastore.get_connection() as conn:
            return [_delivery(row) for row in conn.execute(query, (*params, limit)).fetchall()]


def erase_deliveries(curs: Cursor[Any], schema: sql.Identifier, customers: Sequence[UUID]) -> None:
    """Inside an erasure's transaction: drop the raw payloads (and headers) of deliveries
    about these customers, and their source-record mirrors. What stays: ids, types, times,
    status and the payload's SHA-256 (the audit trail that a delivery existed and what its
    bytes hashed to), as for events, where amounts and ids stay and names go."""
    ids = list(customers)
    curs.execute(
        sql.SQL(
            "UPDATE {}.concord_inbound SET body = NULL, headers = '{{}}'::jsonb, "
            "detail = CASE WHEN detail IS NULL THEN NULL ELSE jsonb_build_object('erased', true) "
            "END, updated_at = now() WHERE customer_ids && %s::uuid[]"
        ).format(schema),
        (ids,),
    )
    curs.execute(
        sql.SQL(
            "DELETE FROM {schema}.concord_inbound_mirror m USING {schema}.concord_xref x "
            "WHERE x.aggregate_id = ANY(%s::uuid[]) AND x.entity = 'customer' "
            "AND m.record_id = x.external_id"
        ).format(schema=schema),
        (ids,),
    )
