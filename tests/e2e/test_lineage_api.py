"""``GET /v1/lineage/{id}`` over HTTP with the lineage view built by a real runner: every
kind of id finds the same deal graph, ``as_of`` before and after a payment, DOT and
Mermaid pictures, ambiguous and unknown ids, bad input and auth."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.projections.runner import ProjectionRunner
from projections.lineage.projection import Lineage
from tests.e2e.conftest import Api, assert_problem
from tests.integration.commands import new_customer, new_order, run
from tests.integration.lineage_support import Deal, whole_deal


def built(api: Api, delivery: int = 41) -> Deal:
    deal = whole_deal(api.runtime, delivery=delivery)
    rt = api.runtime
    ProjectionRunner(Lineage(), rt.connections, rt.settings.schema_name).catch_up()
    return deal


def lineage(api: Api, key: str, **params: str) -> dict[str, Any]:
    response = api.get(f"/v1/lineage/{key}", params=params, role="reader")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def kinds(body: dict[str, Any]) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in body["nodes"]:
        found[node["kind"]] = found.get(node["kind"], 0) + 1
    return found


def test_every_kind_of_id_finds_the_whole_deal(api: Api) -> None:
    deal = built(api)
    whole = lineage(api, str(deal.order))
    assert kinds(whole) == {
        "customer": 1,
        "opportunity": 1,
        "order": 1,
        "contract": 1,
        "invoice": 1,
        "payment": 1,
        "credit_note": 1,
        "refund": 1,
    }
    assert whole["truncated"] is False and whole["limits"] == {"nodes": 200, "events": 2000}
    nodes = {n["id"]: n for n in whole["nodes"]}
    order_ids = {(i["system"], i["id"]) for i in nodes[str(deal.order)]["ids"]}
    assert ("erp", deal.erp_order) in order_ids
    relations = {(e["parent_kind"], e["relation"], e["child_kind"]) for e in whole["edges"]}
    assert {
        ("opportunity", "placed_from", "order"),
        ("order", "contracted", "contract"),
        ("contract", "invoiced", "invoice"),
        ("invoice", "paid_by", "payment"),
        ("payment", "refunded", "refund"),
        ("invoice", "credited", "credit_note"),
        ("customer", "customer_of", "order"),
    } <= relations
    keys = (
        deal.opportunity,
        deal.erp_order,
        deal.subscription,
        deal.invoice_number,
        deal.erp_invoice,
        deal.payment_reference,
        deal.refund_reference,
        deal.credit_note,
        str(deal.contract),
        str(deal.invoice),
        str(deal.payment),
    )
    for key in keys:
        other = lineage(api, key)
        assert {n["id"] for n in other["nodes"]} == set(nodes), key
        assert len(other["events"]) == len(whole["events"]), key
        assert len(other["matched"]) == (2 if key == deal.opportunity else 1), key
    # A customer's graph starts from its objects.
    assert set(nodes) <= {n["id"] for n in lineage(api, str(deal.customer))["nodes"]}

    events = {e["type"]: e for e in whole["events"]}
    placed, accepted = events["OrderPlaced"], events["OrderAcceptedByErp"]
    assert (placed["delivery_id"], placed["delivery"]) == (41, "/v1/inbound/41")
    assert placed["provenance"]["causation_id"] == "inbound:41"
    # Caused by OrderPlaced (as a process manager's command): the same delivery, via it.
    assert accepted["caused_by_event"] == placed["event_id"]
    assert (accepted["delivery_id"], accepted["delivery_via"]) == (41, placed["event_id"])
    assert accepted["provenance"]["correlation_id"] == deal.opportunity
    stamps = [datetime.fromisoformat(e["recorded_at"]) for e in whole["events"]]
    assert stamps == sorted(stamps)


def test_as_of_before_and_after_the_payment(api: Api) -> None:
    deal = built(api)
    before = lineage(api, str(deal.invoice), as_of=deal.before_payment.isoformat())
    assert "payment" not in kinds(before) and "refund" not in kinds(before)
    assert {e["type"] for e in before["events"]} >= {"InvoiceIssued", "InvoicePosted"}
    assert not {"PaymentReceived", "InvoicePaymentApplied"} & {e["type"] for e in before["events"]}
    assert all(
        datetime.fromisoformat(e["recorded_at"]) <= deal.before_payment for e in before["events"]
    )
    after = lineage(api, str(deal.invoice), as_of="2999-01-01T00:00:00Z")
    assert kinds(after)["payment"] == 1 and "PaymentReceived" in {
        e["type"] for e in after["events"]
    }
    # The payment itself did not exist yet then.
    missing = api.get(
        f"/v1/lineage/{deal.payment_reference}",
        params={"as_of": deal.before_payment.isoformat()},
        role="reader",
    )
    assert_problem(missing, 404, "not-found")


def test_dot_and_mermaid_pictures(api: Api) -> None:
    deal = built(api)
    graph = lineage(api, str(deal.order))
    dot = api.get(f"/v1/lineage/{deal.order}", params={"format": "dot"}, role="reader")
    assert dot.status_code == 200 and dot.headers["content-type"].startswith("text/vnd.graphviz")
    lines = dot.text.strip().splitlines()
    assert lines[0] == "digraph lineage {" and lines[-1] == "}"
    assert sum(" -> " in line for line in lines) == len(graph["edges"])
    assert f'"{deal.order}" [label="order {deal.order}' in dot.text
    assert f"erp erp_order_number: {deal.erp_order}" in dot.text
    mermaid = api.get(f"/v1/lineage/{deal.order}", params={"format": "mermaid"}, role="reader")
    assert mermaid.status_code == 200 and mermaid.headers["content-type"].startswith("text/plain")
    body = mermaid.text.strip().splitlines()
    assert body[0] == "flowchart LR"
    assert sum("-->|" in line for line in body) == len(graph["edges"])
    assert sum(line.strip().startswith("n") and '["' in line for line in body) == len(
        graph["nodes"]
    )


def test_ambiguous_unknown_and_bad_input(api: Api) -> None:
    deal = built(api)
    # Another customer's invoice numbered like the ERP's order: one id, two graphs.
    other = new_customer(api.runtime, "Other Ltd")
    body = {
        "customer_id": str(other),
        "order_id": str(new_order(api.runtime, other)),
        "lines": [{"sku": "PLAN-PRO", "quantity": "1", "unit_price": "5.00", "amount": "5.00"}],
        "currency": "EUR",
        "subtotal": "5.00",
        "tax": "0.00",
        "total": "5.00",
        "issue_date": "2026-12-02",
        "due_date": "2026-12-31",
        "source_number": deal.erp_order,
    }
    run(api.runtime, "invoice", "issue", body)
    rt = api.runtime
    ProjectionRunner(Lineage(), rt.connections, rt.settings.schema_name).catch_up()
    clash = api.get(f"/v1/lineage/{deal.erp_order}", role="reader")
    problem = assert_problem(clash, 409, "ambiguous-id", field="path.id")
    assert len(problem["errors"]) == 2
    narrowed = lineage(api, deal.erp_order, system="erp")
    assert narrowed["matched"] == [{"kind": "order", "object_id": str(deal.order)}]

    assert_problem(api.get("/v1/lineage/nope-404", role="reader"), 404, "not-found")
    for params, field in (
        ({"as_of": "2026-12-01T10:00:00"}, "as_of"),  # no offset
        ({"as_of": "yesterday"}, "as_of"),
        ({"format": "png"}, "format"),
        ({"system": "sap"}, "system"),
    ):
        response = api.get(f"/v1/lineage/{deal.order}", params=params, role="reader")
        assert_problem(response, 422, "validation-failed", field=f"query.{field}")
    too_long = api.get("/v1/lineage/" + "x" * 256, role="reader")
    assert_problem(too_long, 422, "validation-failed", field="path.id")


def test_lineage_needs_a_read_key(api: Api) -> None:
    deal = built(api)
    assert api.get(f"/v1/lineage/{deal.order}", role=None).status_code == 401
    writer = api.runtime.keys.create("writer", "crm", ["write"])
    forbidden = api.http.get(
        f"/v1/lineage/{deal.order}", headers={"Authorization": f"Bearer {writer}"}
    )
    assert_problem(forbidden, 403, "forbidden")


def test_before_the_projection_ran_every_id_is_unknown(api: Api) -> None:
    assert_problem(api.get("/v1/lineage/SO-1", role="reader"), 404, "not-found")
