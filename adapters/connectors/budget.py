"""A call budget per target system — concurrency slots and a request rate — shared by every
worker and every process that calls that target.

Why in PostgreSQL: a target's limits are the target's, not one process's. NetSuite's
concurrency limit is account-wide (every integration of the account shares it: 5 on a
standard account, 429 ``CONCURRENCY_LIMIT_EXCEEDED`` beyond), Stripe allows 25 requests/s
in test mode, Salesforce counts every call against one daily allocation. Two subscriber
processes with their own in-memory limiters would each take the whole limit. PostgreSQL is
the one thing every Concord process already shares, and one short autocommit statement per
call is cheap beside an HTTP round trip to a SaaS API.

How:

* **Slots** are rows ``(target, slot)``; taking one is an ``UPDATE … SKIP LOCKED`` of a free
  row (or one whose lease expired: a process killed mid-call frees its slots after
  ``lease_s``), giving it back clears the holder. No connection is held during the call.
* **Rate** is a token bucket row per target, refilled by elapsed time in the same statement
  that takes a token, so processes never disagree about the count.
* Inside one process an ``asyncio.Semaphore`` of the same size keeps waiters from polling
  PostgreSQL for slots the process itself holds.
* **Hand-off.** A call that ends while other calls of the same process wait for a slot hands
  its slot to them instead of giving it back and having them take it again: under load the
  two statements per call (take, give back) were longer than the call itself and held the
  slot meanwhile, so the slots, not the target, set the pace (an ERP call held its slot three
  times as long as NetSuite took to answer). A slot is handed on only while it is younger
  than ``handoff_s`` (far inside its lease), then given back and taken anew, so a busy
  process still lets other processes compete for it; an idle process gives its slots back
  at once, as before.

Waiting is polling with a short, growing sleep (10 ms to 200 ms): waits are rare and short
when the budget is sized like the target, and LISTEN/NOTIFY would cost a held connection per
process and target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

__all__ = ["Budget", "PgBudget"]

_MAX_SLOTS = 1000


class Budget:
    """The in-process budget (tests, a single worker): a semaphore, no rate limit by default.

    ``Budget.unlimited()`` is the budget of a client that has none configured."""

    def __init__(self, target: str, concurrency: int = 1000, rate_per_s: float = 0.0) -> None:
        if not 1 <= concurrency <= _MAX_SLOTS:
            raise ValueError(f"concurrency for {target!r} must be 1..{_MAX_SLOTS}")
        if rate_per_s < 0:
            raise ValueError(f"rate for {target!r} cannot be negative")
        self.target = target
        self.concurrency = concurrency
        self.rate_per_s = rate_per_s
        self._local = asyncio.Semaphore(concurrency)
        self._next_free = 0.0

    @classmethod
    def unlimited(cls, target: str = "target") -> Budget:
        return cls(target)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the target's slots (and one request's worth of rate) for one call."""
        async with self._local:
            await self._take_rate()
            yield

    async def _take_rate(self) -> None:
        if self.rate_per_s <= 0:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        start = max(now, self._next_free)
        self._next_free = start + 1.0 / self.rate_per_s
        if start > now:
            await asyncio.sleep(start - now)


class PgBudget(Budget):
    """The shared budget: slots and tokens in ``<schema>.concord_target_slots`` /
    ``concord_target_rates`` (made by ``create_schema``: adapters/postgres/outbound_tables.py)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        schema: str,
        target: str,
        concurrency: int,
        rate_per_s: float = 0.0,
        *,
        lease_s: float = 120.0,
        handoff_s: float = 1.0,
    ) -> None:
        super().__init__(target, concurrency, rate_per_s)
        self._pool = pool
        self._schema = schema
        self._lease_s = lease_s
        self._handoff_s = min(handoff_s, lease_s / 4)
        self._holder = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._ready = False
        self._waiting = 0
        self._spare: list[tuple[int, float]] = []
        """Slots this process holds in PostgreSQL between two of its calls (slot, taken at)."""
        self._releasing: set[asyncio.Task[None]] = set()

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(
            slots=sql.Identifier(self._schema, "concord_target_slots"),
            rates=sql.Identifier(self._schema, "concord_target_rates"),
        )

    async def _prepare(self) -> None:
        """Make the target's rows match its configured size (idempotent, every process)."""
        if self._ready:
            return
        async with self._pool.connection() as conn:
            await conn.execute(
                self._q(
                    "INSERT INTO {slots} (target, slot) SELECT %s, g FROM generate_series(0, %s) g "
                    "ON CONFLICT DO NOTHING"
                ),
                (self.target, self.concurrency - 1),
            )
            await conn.execute(
                self._q("DELETE FROM {slots} WHERE target = %s AND slot >= %s"),
                (self.target, self.concurrency),
            )
            await conn.execute(
                self._q(
                    "INSERT INTO {rates} (target, tokens, updated_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT DO NOTHING"
                ),
                (self.target, max(1.0, self.rate_per_s)),
            )
        self._ready = True

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._prepare()
        self._waiting += 1
        try:
            await self._local.acquire()
        except BaseException:
            self._waiting -= 1
            self._drop_unclaimed()
            raise
        self._waiting -= 1
        try:
            taken = await self._take()
            try:
                if self.rate_per_s > 0:
                    await self._wait(self._try_token)
                yield
            finally:
                await self._give(taken)
        finally:
            self._local.release()

    def _drop_unclaimed(self) -> None:
        """A waiter went away (cancelled): a slot handed on for it goes back at once, not
        when its lease runs out (a process stopping would keep it from the next one)."""
        while len(self._spare) > self._waiting:
            slot, _ = self._spare.pop(0)
            task = asyncio.get_running_loop().create_task(self._release(slot))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _take(self) -> tuple[int, float]:
        """A slot handed on by a call of this process that just ended, else one from
        PostgreSQL."""
        loop = asyncio.get_running_loop()
        while self._spare:
            slot, since = self._spare.pop()
            if loop.time() - since < self._handoff_s:
                return slot, since
            await self._release(slot)  # left over (its waiter went away): give it back
        return await self._wait(self._try_slot), loop.time()

    async def _give(self, taken: tuple[int, float]) -> None:
        """Hand the slot to a waiting call of this process, or give it back."""
        loop = asyncio.get_running_loop()
        if self._waiting > len(self._spare) and loop.time() - taken[1] < self._handoff_s:
            self._spare.append(taken)
            return
        await self._release(taken[0])

    async def _wait(self, attempt: Any) -> Any:
        pause = 0.01
        while True:
            got = await attempt()
            if got is not None:
                return got
            await asyncio.sleep(pause)
            pause = min(0.2, pause * 1.5)

    async def _try_slot(self) -> int | None:
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute(
                    self._q(
                        "UPDATE {slots} s SET holder = %s, "
                        "expires_at = now() + make_interval(secs => %s) "
                        "FROM (SELECT slot FROM {slots} WHERE target = %s AND "
                        "(holder IS NULL OR expires_at < now()) "
                        "LIMIT 1 FOR UPDATE SKIP LOCKED) free "
                        "WHERE s.target = %s AND s.slot = free.slot RETURNING s.slot"
                    ),
                    (self._holder, self._lease_s, self.target, self.target),
                )
            ).fetchone()
        return None if row is None else int(row[0])

    async def _try_token(self) -> bool | None:
        """One token, or None when the bucket is empty (refilled by elapsed time)."""
        refill = (
            "LEAST(%(cap)s, tokens + %(rate)s * EXTRACT(EPOCH FROM clock_timestamp() - updated_at))"
        )
        async with self._pool.connection() as conn:
            row = await (
                await conn.execute(
                    self._q(
                        f"UPDATE {{rates}} SET tokens = {refill} - 1, "
                        "updated_at = clock_timestamp() "
                        f"WHERE target = %(target)s AND {refill} >= 1 RETURNING tokens"
                    ),
                    {
                        "cap": max(1.0, self.rate_per_s),
                        "rate": self.rate_per_s,
                        "target": self.target,
                    },
                )
            ).fetchone()
        return None if row is None else True

    async def _release(self, slot: int) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                self._q(
                    "UPDATE {slots} SET holder = NULL, expires_at = NULL "
                    "WHERE target = %s AND slot = %s AND holder = %s"
                ),
                (self.target, slot, self._holder),
            )
