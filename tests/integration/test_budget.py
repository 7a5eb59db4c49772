"""The shared call budget: slots and rate shared by every process through PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
from psycopg_pool import AsyncConnectionPool

from adapters.connectors.budget import Budget, PgBudget
from adapters.postgres.outbound_tables import create_outbound_tables


def _tables(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        create_outbound_tables(conn, schema)


async def _in_flight_peak(budgets: list[Budget], calls: int) -> int:
    """Run ``calls`` calls spread over ``budgets``; the most that ran at once."""
    running = 0
    peak = 0

    async def call(budget: Budget) -> None:
        nonlocal running, peak
        async with budget.slot():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(call(budgets[i % len(budgets)]) for i in range(calls)))
    return peak


def test_two_processes_share_one_concurrency_limit(database_url: str, pg_schema: str) -> None:
    _tables(database_url, pg_schema)

    async def run() -> int:
        # Two pools and two budgets: what two subscriber processes would each build.
        async with (
            AsyncConnectionPool(database_url, min_size=1, max_size=3, open=False) as one,
            AsyncConnectionPool(database_url, min_size=1, max_size=3, open=False) as two,
        ):
            budgets: list[Budget] = [
                PgBudget(one, pg_schema, "erp", concurrency=3),
                PgBudget(two, pg_schema, "erp", concurrency=3),
            ]
            return await _in_flight_peak(budgets, 24)

    peak = asyncio.run(run())
    assert peak == 3  # each process alone would have allowed 3, together 6
    with psycopg.connect(database_url) as conn:
        held = conn.execute(
            f'SELECT count(*) FROM "{pg_schema}".concord_target_slots WHERE holder IS NOT NULL'
        ).fetchone()
    assert held == (0,)  # every slot given back


def test_a_dead_holders_slot_is_freed_after_its_lease(database_url: str, pg_schema: str) -> None:
    _tables(database_url, pg_schema)

    async def run() -> tuple[int | None, int | None]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
            dead = PgBudget(pool, pg_schema, "crm", concurrency=1, lease_s=0.2)
            await dead._prepare()
            taken = await dead._try_slot()  # and never given back: the process was killed
            alive = PgBudget(pool, pg_schema, "crm", concurrency=1)
            await alive._prepare()
            blocked = await alive._try_slot()
            await asyncio.sleep(0.3)
            return (taken, blocked) if blocked is not None else (taken, await alive._try_slot())

    taken, later = asyncio.run(run())
    assert taken == 0 and later == 0


def test_the_rate_bucket_is_shared(database_url: str, pg_schema: str) -> None:
    _tables(database_url, pg_schema)

    async def run() -> list[bool | None]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=2, open=False) as pool:
            a = PgBudget(pool, pg_schema, "billing", concurrency=5, rate_per_s=0.5)
            b = PgBudget(pool, pg_schema, "billing", concurrency=5, rate_per_s=0.5)
            await a._prepare()
            await b._prepare()
            # A full bucket holds one token (refilled every 2 s): the next takes, by either
            # process, within milliseconds find it empty.
            return [await (a if i % 2 else b)._try_token() for i in range(3)]

    taken = asyncio.run(run())
    assert taken == [True, None, None]


def test_bad_sizes_are_refused() -> None:
    for bad in ({"concurrency": 0}, {"concurrency": 1001}, {"rate_per_s": -1}):
        try:
            Budget("erp", **bad)  # type: ignore[arg-type]
        except ValueError as refused:
            assert "erp" in str(refused)
        else:  # pragma: no cover
            raise AssertionError(f"{bad} accepted")


class _CountingBudget(PgBudget):
    """The shared budget, counting the slots it takes from PostgreSQL."""

    takes = 0

    async def _try_slot(self) -> int | None:
        got = await super()._try_slot()
        if got is not None:
            self.takes += 1
        return got


def _hand_off_run(database_url: str, schema: str, handoff_s: float) -> tuple[int, int]:
    async def run() -> tuple[int, int]:
        async with AsyncConnectionPool(database_url, min_size=1, max_size=3, open=False) as pool:
            budget = _CountingBudget(pool, schema, "erp", concurrency=2, handoff_s=handoff_s)
            peak = await _in_flight_peak([budget], 20)
            return peak, budget.takes

    return asyncio.run(run())


def test_a_busy_process_hands_its_slots_on_instead_of_taking_them_again(
    database_url: str, pg_schema: str
) -> None:
    """Under load the take and give-back statements outlasted the calls (and held the slot):
    a call that ends while others of the process wait hands its slot to the next."""
    _tables(database_url, pg_schema)
    peak, takes = _hand_off_run(database_url, pg_schema, handoff_s=5.0)
    assert peak == 2  # the limit still holds
    assert takes <= 4  # 20 calls, 2 slots: taken about once each, not once per call
    with psycopg.connect(database_url) as conn:
        held = conn.execute(
            f'SELECT count(*) FROM "{pg_schema}".concord_target_slots WHERE holder IS NOT NULL'
        ).fetchone()
    assert held == (0,)  # idle again: every slot given back


def test_a_slot_older_than_the_hand_off_age_goes_back_to_postgresql(
    database_url: str, pg_schema: str
) -> None:
    """So a busy process still lets other processes compete for the target's slots."""
    _tables(database_url, pg_schema)
    peak, takes = _hand_off_run(database_url, pg_schema, handoff_s=0.0)
    assert peak == 2 and takes == 20
