"""The subscriber's delivery state in PostgreSQL: holds, parked events, dead letters.

Why PostgreSQL and not memory or NATS: "aggregate X is blocked behind event E" must survive a
restart, and an operator (CLI, API) must see and change it from another process. Parked
events are copied here and acknowledged in the stream so the consumer's ack floor moves on
and other aggregates keep flowing; their order is kept by ``stream_seq``.

Only the one running instance of a subscriber (it holds an advisory lock) creates or deletes
holds; operators only change states (``retry_requested``, ``discarded`` → hold
``draining``), which the running subscriber picks up. So the subscriber can keep the set of
held aggregates in memory and pay no query per message in the normal case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from adapters.nats.spec import Delivery

__all__ = ["DEAD_LETTER", "DRAINING", "RETRYING", "DeadLetterTask", "Hold", "HoldStore"]

RETRYING = "retrying"
DEAD_LETTER = "dead_letter"
DRAINING = "draining"

Key = tuple[str, str]


@dataclass(frozen=True)
class Hold:
    """Aggregate blocked for one subscriber; ``blocker_seq`` is the event it waits on."""

    state: str
    blocker_seq: int

    def admits(self, stream_seq: int) -> bool:
        """True for the one message that may go through: the blocker being retried."""
        return self.state == RETRYING and self.blocker_seq == stream_seq


@dataclass(frozen=True)
class DeadLetterTask:
    """A dead letter an operator asked to retry, claimed by the running subscriber."""

    id: int
    delivery: Delivery
    attempts: int


class HoldStore:
    """SQL for one subscriber's holds, parked events and dead letters (async)."""

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str, subscriber: str) -> None:
        self.pool = pool
        self.schema = schema
        self.subscriber = subscriber
        ident = sql.Identifier(schema)
        self._holds = sql.SQL("{}.concord_delivery_holds").format(ident)
        self._parked = sql.SQL("{}.concord_parked").format(ident)
        self._dead = sql.SQL("{}.concord_dead_letters").format(ident)

    async def _rows(self, query: sql.Composable, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(query, params)
            rows: list[dict[str, Any]] = await cursor.fetchall()
            return rows

    async def _exec(self, query: sql.Composable, params: tuple[Any, ...]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(query, params)

    # ------------------------------------------------------------------------ start-up

    async def load(self) -> dict[Key, Hold]:
        """Held aggregates; a retry that was running when the process died is re-queued."""
        await self._exec(
            sql.SQL(
                "UPDATE {} SET status = 'retry_requested' "
                "WHERE subscriber = %s AND status = 'retrying'"
            ).format(self._dead),
            (self.subscriber,),
        )
        # Parked events whose hold is gone (a crash between steps) must still be released,
        # in order, before anything newer of their aggregate: give them a draining hold.
        await self._exec(
            sql.SQL(
                "INSERT INTO {holds} (subscriber, aggregate, aggregate_id, state, "
                "blocker_event_id, blocker_stream_seq) "
                "SELECT DISTINCT ON (p.aggregate, p.aggregate_id) p.subscriber, p.aggregate, "
                "p.aggregate_id, 'draining', p.event_id, p.stream_seq FROM {parked} p "
                "WHERE p.subscriber = %s ORDER BY p.aggregate, p.aggregate_id, p.stream_seq "
                "ON CONFLICT (subscriber, aggregate, aggregate_id) DO NOTHING"
            ).format(holds=self._holds, parked=self._parked),
            (self.subscriber,),
        )
        rows = await self._rows(
            sql.SQL(
                "SELECT aggregate, aggregate_id, state, blocker_stream_seq FROM {} "
                "WHERE subscriber = %s"
            ).format(self._holds),
            (self.subscriber,),
        )
        return {
            (r["aggregate"], r["aggregate_id"]): Hold(r["state"], r["blocker_stream_seq"])
            for r in rows
        }

    async def hold_state(self, key: Key) -> str | None:
        """The aggregate's hold as stored (None: not held)."""
        rows = await self._rows(
            sql.SQL(
                "SELECT state FROM {} WHERE subscriber = %s AND aggregate = %s "
                "AND aggregate_id = %s"
            ).format(self._holds),
            (self.subscriber, *key),
        )
        return str(rows[0]["state"]) if rows else None

    async def retry_interrupted(self, task: DeadLetterTask) -> None:
        """A retry that broke off (not a delivery failure): ask for it again."""
        await self._exec(
            sql.SQL(
                "UPDATE {} SET status = 'retry_requested' WHERE id = %s AND status = 'retrying'"
            ).format(self._dead),
            (task.id,),
        )

    async def draining(self) -> list[Key]:
        rows = await self._rows(
            sql.SQL(
                "SELECT aggregate, aggregate_id FROM {} "
                "WHERE subscriber = %s AND state = 'draining'"
            ).format(self._holds),
            (self.subscriber,),
        )
        return [(r["aggregate"], r["aggregate_id"]) for r in rows]

    # ---------------------------------------------------------------------- live path

    async def hold_retrying(self, d: Delivery, error: str, attempts: int) -> Hold:
        """Block the aggregate behind ``d`` while ``d`` is retried (or note another failure)."""
        await self._exec(
            sql.SQL(
                "INSERT INTO {} AS h (subscriber, aggregate, aggregate_id, state, "
                "blocker_event_id, blocker_stream_seq, attempts, last_error) "
                "VALUES (%s, %s, %s, 'retrying', %s, %s, %s, %s) "
                "ON CONFLICT (subscriber, aggregate, aggregate_id) DO UPDATE "
                "SET attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, "
                "updated_at = now() WHERE h.blocker_stream_seq = EXCLUDED.blocker_stream_seq"
            ).format(self._holds),
            (
                self.subscriber,
                d.aggregate,
                d.aggregate_id,
                d.event_id,
                d.stream_seq,
                attempts,
                error,
            ),
        )
        return Hold(RETRYING, d.stream_seq)

    async def park(self, d: Delivery) -> None:
        """Keep ``d`` behind its aggregate's blocker (idempotent for a redelivered copy)."""
        await self._exec(
            sql.SQL(
                "INSERT INTO {} (subscriber, aggregate, aggregate_id, stream_seq, event_id, "
                "event_type, version, subject, envelope) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(self._parked),
            (
                self.subscriber,
                d.aggregate,
                d.aggregate_id,
                d.stream_seq,
                d.event_id,
                d.event_type,
                d.version,
                d.subject,
                Jsonb(d.envelope),
            ),
        )

    async def dead_letter(
        self, d: Delivery, reason: str, error: str, attempts: int, *, was_parked: bool
    ) -> int:
        """Record ``d`` as a dead letter and make it its aggregate's blocker, atomically."""
        key = (self.subscriber, d.aggregate, d.aggregate_id)
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                sql.SQL(
                    "INSERT INTO {dead} (subscriber, event_id, event_type, aggregate, "
                    "aggregate_id, version, stream_seq, subject, envelope, reason, error, "
                    "attempts, first_failed_at, last_failed_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(("
                    "  SELECT since FROM {holds} WHERE subscriber = %s AND aggregate = %s "
                    "  AND aggregate_id = %s AND blocker_stream_seq = %s), now()), now()) "
                    "RETURNING id"
                ).format(dead=self._dead, holds=self._holds),
                (
                    self.subscriber,
                    d.event_id,
                    d.event_type,
                    d.aggregate,
                    d.aggregate_id,
                    d.version,
                    d.stream_seq,
                    d.subject,
                    Jsonb(d.envelope),
                    reason,
                    error,
                    attempts,
                    *key,
                    d.stream_seq,
                ),
            )
            row = await cursor.fetchone()
            assert row is not None
            dead_letter_id = int(row[0])
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} AS h (subscriber, aggregate, aggregate_id, state, "
                    "blocker_event_id, blocker_stream_seq, dead_letter_id, attempts, "
                    "last_error) VALUES (%s, %s, %s, 'dead_letter', %s, %s, %s, %s, %s) "
                    "ON CONFLICT (subscriber, aggregate, aggregate_id) DO UPDATE SET "
                    "state = 'dead_letter', blocker_event_id = EXCLUDED.blocker_event_id, "
                    "since = CASE WHEN h.blocker_stream_seq = EXCLUDED.blocker_stream_seq "
                    "  THEN h.since ELSE now() END, "
                    "blocker_stream_seq = EXCLUDED.blocker_stream_seq, "
                    "dead_letter_id = EXCLUDED.dead_letter_id, attempts = EXCLUDED.attempts, "
                    "last_error = EXCLUDED.last_error, updated_at = now()"
                ).format(self._holds),
                (*key, d.event_id, d.stream_seq, dead_letter_id, attempts, error),
            )
            if was_parked:
                await conn.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE subscriber = %s AND aggregate = %s "
                        "AND aggregate_id = %s AND stream_seq = %s"
                    ).format(self._parked),
                    (*key, d.stream_seq),
                )
        return dead_letter_id

    async def dead_letter_malformed(
        self, subject: str, stream_seq: int, data: bytes, error: str
    ) -> int:
        """A message that is not an envelope: an open dead letter (listed, so the gap is seen
        and an operator decides), blocking nothing since its aggregate cannot be known."""
        rows = await self._rows(
            sql.SQL(
                "INSERT INTO {} (subscriber, event_id, event_type, aggregate, aggregate_id, "
                "version, stream_seq, subject, envelope, reason, error, attempts, "
                "first_failed_at, last_failed_at, status) VALUES (%s, '', '', '', %s, 0, %s, "
                "%s, %s, 'malformed', %s, 1, now(), now(), 'dead') RETURNING id"
            ).format(self._dead),
            (
                self.subscriber,
                f"#{stream_seq}",
                stream_seq,
                subject,
                Jsonb({"raw": data.decode("utf-8", "replace")}),
                error,
            ),
        )
        return int(rows[0]["id"])

    async def blocker_delivered(self, d: Delivery) -> Hold:
        """The blocker went through: what is parked behind it may now be released."""
        await self._exec(
            sql.SQL(
                "UPDATE {} SET state = 'draining', updated_at = now() "
                "WHERE subscriber = %s AND aggregate = %s AND aggregate_id = %s"
            ).format(self._holds),
            (self.subscriber, d.aggregate, d.aggregate_id),
        )
        return Hold(DRAINING, d.stream_seq)

    # ---------------------------------------------------------------------- releasing

    async def next_parked(self, key: Key) -> Delivery | None:
        rows = await self._rows(
            sql.SQL(
                "SELECT * FROM {} WHERE subscriber = %s AND aggregate = %s "
                "AND aggregate_id = %s ORDER BY stream_seq LIMIT 1"
            ).format(self._parked),
            (self.subscriber, *key),
        )
        return _delivery(rows[0]) if rows else None

    async def unpark(self, key: Key, stream_seq: int) -> None:
        await self._exec(
            sql.SQL(
                "DELETE FROM {} WHERE subscriber = %s AND aggregate = %s "
                "AND aggregate_id = %s AND stream_seq = %s"
            ).format(self._parked),
            (self.subscriber, *key, stream_seq),
        )

    async def release_if_empty(self, key: Key) -> bool:
        """Drop the hold unless something is (still, or newly) parked behind it."""
        rows = await self._rows(
            sql.SQL(
                "DELETE FROM {holds} h WHERE subscriber = %s AND aggregate = %s "
                "AND aggregate_id = %s AND state = 'draining' AND NOT EXISTS ("
                "  SELECT 1 FROM {parked} p WHERE p.subscriber = h.subscriber "
                "  AND p.aggregate = h.aggregate AND p.aggregate_id = h.aggregate_id) "
                "RETURNING 1"
            ).format(holds=self._holds, parked=self._parked),
            (self.subscriber, *key),
        )
        return bool(rows)

    # ---------------------------------------------------------------- operator requests

    async def claim_retries(self) -> list[DeadLetterTask]:
        """Requested retries, now ``retrying``; a malformed one (requested before operators
        were refused that) goes back to ``dead``: it has no envelope to deliver."""
        rows = await self._rows(
            sql.SQL(
                "UPDATE {} SET status = CASE WHEN reason = 'malformed' THEN 'dead' "
                "ELSE 'retrying' END WHERE subscriber = %s "
                "AND status = 'retry_requested' RETURNING *"
            ).format(self._dead),
            (self.subscriber,),
        )
        return [
            DeadLetterTask(int(r["id"]), _delivery(r), int(r["attempts"]))
            for r in rows
            if r["status"] == "retrying"
        ]

    async def retry_delivered(self, task: DeadLetterTask, attempts: int) -> Hold:
        d = task.delivery
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.SQL(
                    "UPDATE {} SET status = 'delivered', resolved_at = now(), "
                    "attempts = attempts + %s WHERE id = %s"
                ).format(self._dead),
                (attempts, task.id),
            )
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (subscriber, aggregate, aggregate_id, state, "
                    "blocker_event_id, blocker_stream_seq, dead_letter_id) "
                    "VALUES (%s, %s, %s, 'draining', %s, %s, %s) "
                    "ON CONFLICT (subscriber, aggregate, aggregate_id) DO UPDATE "
                    "SET state = 'draining', updated_at = now()"
                ).format(self._holds),
                (self.subscriber, d.aggregate, d.aggregate_id, d.event_id, d.stream_seq, task.id),
            )
        return Hold(DRAINING, d.stream_seq)

    async def retry_failed(
        self, task: DeadLetterTask, reason: str, error: str, attempts: int
    ) -> None:
        await self._exec(
            sql.SQL(
                "UPDATE {} SET status = 'dead', reason = %s, error = %s, "
                "attempts = attempts + %s, last_failed_at = now() WHERE id = %s"
            ).format(self._dead),
            (reason, error, attempts, task.id),
        )


def _delivery(row: dict[str, Any]) -> Delivery:
    return Delivery(
        subject=row["subject"],
        stream_seq=int(row["stream_seq"]),
        aggregate=row["aggregate"],
        aggregate_id=row["aggregate_id"],
        event_type=row["event_type"],
        event_id=row["event_id"],
        version=int(row["version"]),
        envelope=row["envelope"],
    )
