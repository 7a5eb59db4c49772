"""Lineage and reconciliation on the realistic quarter (tests/integration/quarter.py): the
Globex deal's ids and links from opportunity to refund, the lineage lookup by an external id,
and the reconciliation breaks (open and closed, with amounts) and SLA timings, each against
rows written out by hand below from the quarter's script."""

from __future__ import annotations

from typing import Any

from adapters.bootstrap import Runtime
from adapters.projections.lineage_graph import Candidate, LineageReader
from projections.lineage.projection import Lineage
from projections.reconciliation.projection import Reconciliation
from tests.integration.projection_support import connect
from tests.integration.quarter import Quarter, play
from tests.integration.quarter_views import caught_up, d, day, table, utc


def documents(runtime: Runtime, q: Quarter) -> tuple[str, str]:
    """The ids of the refund and of the credit note: the events that recorded them."""
    events = table(runtime, "lineage_events", "event_id")
    refund = next(e[0] for e in events if e[3] == "PaymentRefunded")
    credit = next(e[0] for e in events if e[3] == "InvoiceCredited")
    assert {e[2] for e in events if e[3] in ("PaymentRefunded", "InvoiceCredited")} == {
        str(q.payments["feb"]),
        str(q.invoices["feb"]),
    }
    return str(refund), str(credit)


def deal_links(q: Quarter, refund: str, credit: str) -> set[tuple[str, str, str, str]]:
    """(child kind, child, parent kind, parent) from the deal's opportunity to its refund."""
    s = {name: str(value) for name, value in vars(q).items() if not isinstance(value, dict)}
    inv = {name: str(value) for name, value in q.invoices.items()}
    pay = {name: str(value) for name, value in q.payments.items()}
    customer = ("customer", s["globex"])
    links = {
        ("order", s["deal"], "opportunity", "006DEAL"),
        ("order", s["deal"], *customer),
        ("contract", s["deal_contract"], "order", s["deal"]),
        ("contract", s["deal_contract"], *customer),
        ("invoice", inv["jan"], "order", s["deal"]),  # January names the order only
        ("refund", refund, "payment", pay["feb"]),
        ("credit_note", credit, "invoice", inv["feb"]),
    }
    for bill in ("jan", "feb", "prorated", "mar"):
        links.add(("invoice", inv[bill], *customer))
    for bill in ("feb", "prorated", "mar"):
        links.add(("invoice", inv[bill], "contract", s["deal_contract"]))
    for payment, bill in (("partial", "jan"), ("declined", "jan"), ("retry", "jan")):
        links |= {
            ("payment", pay[payment], *customer),
            ("payment", pay[payment], "invoice", inv[bill]),
        }
    links |= {("payment", pay["feb"], *customer), ("payment", pay["feb"], "invoice", inv["feb"])}
    return links


def deal_ids(q: Quarter, refund: str, credit: str) -> set[tuple[str, str, str, str]]:
    """(system, external id, kind, object) of every object of the deal but its customer."""
    deal, contract = str(q.deal), str(q.deal_contract)
    inv = {name: str(value) for name, value in q.invoices.items()}
    pay = {name: str(value) for name, value in q.payments.items()}
    ids = {
        ("crm", "006DEAL", "opportunity", "006DEAL"),
        ("concord", deal, "order", deal),
        ("erp", "SO-1001", "order", deal),  # accepted twice, one id
        ("concord", contract, "contract", contract),
        ("billing", f"sub-{q.deal_contract.hex[:8]}", "contract", contract),
        ("erp", "INV10001", "invoice", inv["jan"]),
        ("erp", "INV10002", "invoice", inv["feb"]),
        ("concord", refund, "refund", refund),
        ("api", "RF-1", "refund", refund),
        ("api", "CN-1", "refund", refund),
        ("concord", credit, "credit_note", credit),
        ("api", "CN-1", "credit_note", credit),
    }
    for number, bill in enumerate(("jan", "feb", "prorated", "mar"), start=1):
        ids |= {
            ("concord", inv[bill], "invoice", inv[bill]),
            ("api", f"INV-000{number}", "invoice", inv[bill]),
        }
    for number, payment in enumerate(("partial", "declined", "retry", "feb"), start=1):
        ids |= {
            ("concord", pay[payment], "payment", pay[payment]),
            ("api", f"ch_100{number}", "payment", pay[payment]),
        }
    return ids


def test_the_deals_lineage_from_opportunity_to_refund(runtime: Runtime) -> None:
    q = play(runtime)
    caught_up(runtime, Lineage())
    refund, credit = documents(runtime, q)
    links = deal_links(q, refund, credit)
    objects = {link[1] for link in links}
    found = {
        row[:4] for row in table(runtime, "lineage_links", "child_id", ("event_id", "recorded_at"))
    }
    assert {link for link in found if link[1] in objects} == links
    objects |= {"006DEAL"}
    ids = {
        row[:4] for row in table(runtime, "lineage_ids", "object_id", ("event_id", "recorded_at"))
    }
    assert {i for i in ids if i[3] in objects} == deal_ids(q, refund, credit)


def test_a_lookup_by_an_external_id_walks_the_whole_deal(runtime: Runtime) -> None:
    q = play(runtime)
    caught_up(runtime, Lineage())
    refund, credit = documents(runtime, q)
    with connect(runtime) as conn:
        reader = LineageReader(conn, runtime.settings.schema_name, None)
        # "CN-1" is the credit note's number and the refund's: both, credit note first.
        assert reader.candidates("CN-1") == [
            Candidate("api", "CN-1", "credit_note", credit),
            Candidate("api", "CN-1", "refund", refund),
        ]
        assert reader.candidates("C-1001") == [
            Candidate("erp", "C-1001", "customer", str(q.globex))
        ]
        (order,) = reader.candidates("SO-1001")
        graph = reader.graph((order.kind, order.id))
    links = deal_links(q, refund, credit)
    # Every edge of the deal, parent to child; the customer is a node but is not walked
    # through (the add-on deal and Kaisha are not reached).
    assert {(e["to_kind"], e["to_id"], e["from_kind"], e["from_id"]) for e in graph.edges} == links
    assert set(graph.nodes) == {(k, i) for k, i, *_ in links} | {(k, i) for *_, k, i in links}
    globex = str(q.globex)
    assert graph.nodes[("customer", globex)] == [
        {"system": "concord", "id": globex},
        {"system": "crm", "id": "001GLOBEX"},
        {"system": "erp", "id": "4711"},
        {"system": "erp", "id": "C-1001"},
    ]
    assert graph.nodes[("opportunity", "006DEAL")] == [{"system": "crm", "id": "006DEAL"}]
    # Events of the aggregates reached: Globex 5 (registered, 2 links, number, terms), the
    # order 4, the contract 3, January 6 (issued, posted, 3 applied, 1 unapplied), February
    # 5, prorated 1, March 1, payments 2 + 3 (declined: failed) + 2 + 3 (refunded) = 35.
    assert not graph.truncated
    assert len(graph.events) == 35
    kinds = [(e["kind"], e["type"]) for e in graph.events if e["object_id"] == str(q.deal)]
    assert kinds == [
        ("order", t)
        for t in ("OrderPlaced", "OrderAcceptedByErp", "OrderAmended", "OrderAcceptedByErp")
    ]


def breaks(runtime: Runtime) -> dict[str, tuple[Any, ...]]:
    rows = table(runtime, "recon_breaks", "break_key", ("changed_at",))
    return {row[0]: row[1:] for row in rows}


def test_reconciliation_breaks_and_slas_of_the_quarter(runtime: Runtime) -> None:
    q = play(runtime)
    caught_up(runtime, Reconciliation())
    deal, contract, feb = str(q.deal), str(q.deal_contract), str(q.invoices["feb"])
    lineage = "/v1/lineage/{}".format
    # Open: the deal's CRM Amount (25,500.00) was not updated after the upgrade (37,500.00).
    # Not a break: the order commits 1 unit of API usage and the contract meters API
    # (quantity 0). Closed: the contract's 10 seats met the order's amended 15 (the orders
    # store is applied first) until the contract was amended too (that command carries no
    # business time, so it closed when recorded); February was over-applied by 110.00
    # between the credit note (03-10) and the refund that took the 110.00 back (03-12);
    # each payment's cash was unapplied from its receipt to its application (Kaisha's
    # overnight).
    # (code, kind, object, customer, currency, expected, by, actual, by, detail, opened,
    #  closed, lineage)
    found = breaks(runtime)
    seats = found.pop(f"ORDER_CONTRACT_MISMATCH:{contract}")
    assert seats[:10] == (
        "ORDER_CONTRACT_MISMATCH", "contract", q.deal_contract, q.globex, None, d("15"),
        "hub (order lines)", d("10"), "billing (contract)", "SEATS: order 15, contract 10",
    )  # fmt: skip
    assert seats[10] == utc("2024-01-10") and seats[11] is not None and seats[11] > seats[10]
    assert found == {
        f"OPP_AMOUNT_MISMATCH:{deal}": (
            "OPP_AMOUNT_MISMATCH", "order", q.deal, q.globex, "USD", d("25500.00"),
            "crm (opportunity Amount)", d("37500.00"), "hub (order lines total)",
            "the opportunity's Amount is 25500.00 USD, the order's lines total 37500.00 USD",
            utc("2024-02-15"), None, lineage(deal),
        ),
        f"PAYMENT_OVERAPPLIED:{feb}": (
            "PAYMENT_OVERAPPLIED", "invoice", q.invoices["feb"], q.globex, "USD", d("990.00"),
            "billing (total less credit notes)", d("1100.00"), "payments applied",
            "payments hold 1100.00 USD of an invoice that bills 990.00 USD",
            utc("2024-03-10"), utc("2024-03-12"), lineage(feb),
        ),
        **{
            f"PAYMENT_UNAPPLIED:{q.payments[name]}": (
                "PAYMENT_UNAPPLIED", "payment", q.payments[name], customer, currency, d("0"),
                "invoices (applied)", d(amount), "payments (unapplied)",
                f"{amount} {currency} received that no invoice holds",
                utc(received, "10:00"), utc(applied, "10:00"), lineage(q.payments[name]),
            )
            for name, customer, currency, amount, received, applied in (
                ("partial", q.globex, "USD", "1500.00", "2024-01-25", "2024-01-25"),
                ("declined", q.globex, "USD", "600.00", "2024-02-05", "2024-02-05"),
                ("retry", q.globex, "USD", "600.00", "2024-02-10", "2024-02-10"),
                ("feb", q.globex, "USD", "1100.00", "2024-02-20", "2024-02-20"),
                ("yen", q.kaisha, "JPY", "99000", "2024-01-31", "2024-02-01"),
            )
        },
    }  # fmt: skip
    open_now = {row[0] for row in table(runtime, "recon_open_breaks", "break_key", ())}
    assert open_now == {f"OPP_AMOUNT_MISMATCH:{deal}"}
    history = table(runtime, "recon_break_events", "break_key, at, change", ("event_id",))
    assert [h for h in history if h[0] == f"PAYMENT_OVERAPPLIED:{feb}"] == [
        (f"PAYMENT_OVERAPPLIED:{feb}", "opened", utc("2024-03-10"), d("990.00"), d("1100.00")),
        (f"PAYMENT_OVERAPPLIED:{feb}", "closed", utc("2024-03-12"), d("990.00"), d("1100.00")),
    ]
    assert len(history) == 15  # 8 openings (1 per break) and 7 closings
    # Kaisha's yen sat unapplied over the January month end.
    assert table(runtime, "recon_unapplied_cash", "period_end", ()) == [
        (day("2024-01-31"), q.kaisha, "JPY", d("99000"), 1)
    ]
    # Order to activation: the deal 10 days (864,000 s), the add-on at once (cancelled
    # later, but it was activated), Kaisha's support 13 days (1,123,200 s) over new year.
    months = {m: day(f"{m}-01") for m in ("2023-12", "2024-01", "2024-02", "2024-03")}
    assert set(table(runtime, "sla_order_activation", "contract_id", ())) == {
        (
            q.deal_contract,
            q.deal,
            q.globex,
            utc("2024-01-10"),
            utc("2024-01-20"),
            864000,
            months["2024-01"],
        ),
        (
            q.addon_contract,
            q.addon,
            q.globex,
            utc("2024-02-01"),
            utc("2024-02-01"),
            0,
            months["2024-02"],
        ),
        (
            q.support_contract,
            q.support,
            q.kaisha,
            utc("2023-12-20"),
            utc("2024-01-02"),
            1123200,
            months["2023-12"],
        ),
    }
    # Invoice to cash: January settled by the retry on 02-10 (40 days; the declined card of
    # 02-05 did not count once it failed), February on 02-20 (19), the yen invoice on 02-01
    # (31); the prorated and March invoices are still open.
    inv = q.invoices
    assert set(table(runtime, "sla_invoice_cash", "invoice_id", ())) == {
        (
            inv["jan"],
            q.globex,
            day("2024-01-01"),
            utc("2024-02-10", "10:00"),
            40,
            months["2024-01"],
        ),
        (
            inv["feb"],
            q.globex,
            day("2024-02-01"),
            utc("2024-02-20", "10:00"),
            19,
            months["2024-02"],
        ),
        (inv["prorated"], q.globex, day("2024-02-15"), None, None, months["2024-02"]),
        (inv["mar"], q.globex, day("2024-03-01"), None, None, months["2024-03"]),
        (
            inv["yen"],
            q.kaisha,
            day("2024-01-01"),
            utc("2024-02-01", "10:00"),
            31,
            months["2024-01"],
        ),
    }
    # percentile_disc: January's invoices took 31 and 40 days: p50 31, p90 40.
    assert set(table(runtime, "sla_monthly", "sla, month", ())) == {
        ("order_to_activation", months["2023-12"], "seconds", 1, 1123200, 1123200),
        ("order_to_activation", months["2024-01"], "seconds", 1, 864000, 864000),
        ("order_to_activation", months["2024-02"], "seconds", 1, 0, 0),
        ("invoice_to_cash", months["2024-01"], "days", 2, 31, 40),
        ("invoice_to_cash", months["2024-02"], "days", 1, 19, 19),
    }
