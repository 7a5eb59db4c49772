"""The metrics projection on the realistic quarter (tests/integration/quarter.py): every
monthly figure against arithmetic done by hand below, and the same rows whatever the order
the stores are caught up in (payments first), event by event, and after a rebuild."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from adapters.bootstrap import Runtime
from adapters.projections import runner as runner_module
from projections.metrics.projection import Metrics
from projections.metrics.tables import TABLES
from tests.integration.projection_support import rebuild, rows, runner
from tests.integration.quarter import Quarter, play

VIEW = Metrics()


class StoresReversed(Metrics):
    """The same projection applying payments, then invoices, contracts, orders."""

    stores = tuple(reversed(Metrics.stores))


DEC, JAN, FEB, MAR = date(2023, 12, 1), date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)


def monthly(runtime: Runtime) -> dict[tuple[Any, ...], tuple[int, ...]]:
    """(month, currency, customer, contract) -> (bookings, acv, billings, cash, recognised,
    deferred, receivables), minor units."""
    found = rows(runtime, "metrics_monthly", "month, currency, customer_id, contract_id")
    return {tuple(r[:4]): tuple(int(v) for v in r[4:]) for r in found}


def expected(q: Quarter) -> dict[tuple[Any, ...], tuple[int, ...]]:
    usd, jpy = "USD", "JPY"
    deal, addon, support = q.deal_contract, q.addon_contract, q.support_contract
    return {
        # Globex deal contract, USD cents.
        # Bookings Jan: SETUP 1000.00 + SEATS 10 x 2400.00 + API 500.00 = 25,500.00;
        #   ACV 10 x 100.00 x 12 = 12,000.00.
        # Billings Jan (tax excluded): SETUP 1000.00 + SEATS 1000.00 = 2,000.00.
        # Recognised Jan: SETUP in full on activation 2024-01-20 (1000.00) + SEATS
        #   [01-01, 02-01) 1000.00 = 2,000.00 -> deferred 0.
        # Receivables Jan: billed with tax 2,100.00 - applied 1,500.00 (partial) = 600.00.
        (JAN, usd, q.globex, deal): (2550000, 1200000, 200000, 0, 200000, 0, 60000),
        # Bookings Feb (upgrade to 15 seats): 37,500.00 - 25,500.00 = 12,000.00;
        #   ACV 15 x 100 x 12 - 12,000.00 = 6,000.00.
        # Billings Feb: SEATS 1000.00 + prorated 758.62 = 1,758.62.
        # Recognised Feb: SEATS [02-01, 03-01) 1000.00; prorated 75862 cents over the 46 days
        #   [02-15, 04-01): 15 days by 02-29 -> floor(75862 x 15 / 46) = floor(24737.6) =
        #   24737; API usage of [02-01, 03-01) on its last day 02-29: 37.50.
        #   = 100000 + 24737 + 3750 = 128487. Deferred: 175862 - 128487 = 47375.
        # Applied Feb: declined 600.00 applied and taken back at its receipt date (0), retry
        #   600.00, February payment 1100.00 = 1,700.00. Receivables: 60000 + (110000 +
        #   75862) - 170000 = 75862 (the prorated invoice, unpaid).
        (FEB, usd, q.globex, deal): (1200000, 600000, 175862, 0, 128487, 47375, 75862),
        # Billings Mar: SEATS 1000.00 + API 37.50 - credit note 110.00 of which tax excluded
        #   110.00 x 1000 / 1100 = 100.00 -> 103750 - 10000 = 93750.
        # Recognised Mar: prorated 75862 - 24737 = 51125; SEATS [03-01, 04-01) 100000; the
        #   credit of a line whose period is over, all on its date: -10000. = 141125.
        #   Deferred: 47375 + 93750 - 141125 = 0 (every period ended by 04-01).
        # Receivables: 75862 + (113750 - 11000 credit) - (-11000 refund taken back off the
        #   February invoice) = 189612 = prorated 758.62 + March 1,137.50, both unpaid.
        (MAR, usd, q.globex, deal): (0, 0, 93750, 0, 141125, 0, 189612),
        # Add-on: booked 1 x 1200.00 (ACV 1 x 100.00 x 12) on its close date; the
        # cancellation books nothing negative.
        (FEB, usd, q.globex, addon): (120000, 120000, 0, 0, 0, 0, 0),
        (MAR, usd, q.globex, addon): (0, 0, 0, 0, 0, 0, 0),
        # Globex cash (no contract): Jan 1500.00; Feb declined +600 -600 (failed: counts
        # nothing), retry 600.00, February 1100.00 = 1,700.00; Mar refund -110.00.
        (JAN, usd, q.globex, None): (0, 0, 0, 150000, 0, 0, 0),
        (FEB, usd, q.globex, None): (0, 0, 0, 170000, 0, 0, 0),
        (MAR, usd, q.globex, None): (0, 0, 0, -11000, 0, 0, 0),
        # Kaisha support, JPY (whole yen). Booked 2023-12-20: 1 x 360000, ACV 30000 x 12.
        # Billed 2024-01-01 [01-01, 04-01), 91 days, 90000 (tax 9000): Jan floor(90000 x 31 /
        # 91) = floor(30659.3) = 30659; through Feb (60 days) floor(59340.7) = 59340 -> Feb
        # 28681; Mar 90000 - 59340 = 30660. Deferred: 59341, 30660, 0. Paid 99000 in Jan.
        (DEC, jpy, q.kaisha, support): (360000, 360000, 0, 0, 0, 0, 0),
        (JAN, jpy, q.kaisha, support): (0, 0, 90000, 0, 30659, 59341, 0),
        (FEB, jpy, q.kaisha, support): (0, 0, 0, 0, 28681, 30660, 0),
        (MAR, jpy, q.kaisha, support): (0, 0, 0, 0, 30660, 0, 0),
        (JAN, jpy, q.kaisha, None): (0, 0, 0, 99000, 0, 0, 0),
        (FEB, jpy, q.kaisha, None): (0, 0, 0, 0, 0, 0, 0),
        # The renewal's own order (no contract of its own): 360000 booked on 2024-03-20.
        (MAR, jpy, q.kaisha, None): (360000, 360000, 0, 0, 0, 0, 0),
    }


def tables(runtime: Runtime) -> list[list[tuple[Any, ...]]]:
    return [rows(runtime, t.name, ", ".join(t.primary_key)) for t in TABLES]


def test_the_quarter_matches_hand_computed_figures_whatever_the_store_order(
    runtime: Runtime,
) -> None:
    quarter = play(runtime)
    runner(runtime, VIEW).catch_up()
    assert monthly(runtime) == expected(quarter)
    first = tables(runtime)

    rebuild(runtime, VIEW)
    runner(runtime, StoresReversed(), batch=1).catch_up()
    assert monthly(runtime) == expected(quarter)
    assert tables(runtime) == first

    rebuild(runtime, VIEW)
    runner(runtime, VIEW, batch=500).catch_up()
    assert tables(runtime) == first


def test_a_memo_emptied_before_every_batch_reads_the_same_rows_back(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the projection remembers is read from its tables on a miss (after a restart, a
    failed batch or the memo's size bound): one event per batch with nothing remembered
    builds the very rows of a build that remembered everything, in both store orders."""
    quarter = play(runtime)
    runner(runtime, VIEW).catch_up()
    first = tables(runtime)
    monkeypatch.setattr(runner_module, "MEMO_LIMIT", -1)  # emptied before every batch
    for projection in (Metrics(), StoresReversed()):
        rebuild(runtime, VIEW)
        runner(runtime, projection, batch=1).catch_up()
        assert monthly(runtime) == expected(quarter)
        assert tables(runtime) == first
