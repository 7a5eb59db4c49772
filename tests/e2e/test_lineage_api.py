"""``GET /v1/lineage/{id}`` over HTTP on the lineage view built by a real runner: the same
deal graph found from any system's id, events with their provenance, ``as_of`` hiding what
came later, DOT and Mermaid text, and bad input (404, 409, 422 problem+json; 401)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from adapters.projections.runner import ProjectionRunner
from hub.application.service import Origin
from projections.lineage.projection import Lineage
from tests.e2e.conftest import Api, assert_problem
from tests.integration import lineage_chain as deal
from tests.integration.commands import run


def catch_up(api: Api) -> None:
    rt = api.runtime
    ProjectionRunner(Lineage(), rt.connections, rt.settings.schema_name).catch_up()


def lineage(api: Api, id: str, **params: str) -> dict[str, Any]:
    response = api.get(f"/v1/lineage/{id}", params=params, role="reader")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def kinds(body: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for node in body["nodes"]:
        found.setdefault(node["kind"], set()).add(node["id"])
    return found


def test_every_systems_id_finds_the_same_deal_graph(api: Api) -> None:
    assert_problem(api.get("/v1/lineage/SO-7001", role="reader"), 404, "not-found")  # not built
    chain = deal.build_chain(api.runtime)
    catch_up(api)

    by_order = lineage(api, str(chain.order))
    assert by_order["root"]["kind"] == "order" and not by_order["truncated"]
    graph = kinds(by_order)
    refund, credit = next(iter(graph["refund"])), next(iter(graph["credit_note"]))
    assert graph == {
        "customer": {str(chain.customer)},
        "opportunity": {deal.OPPORTUNITY},
        "order": {str(chain.order)},
        "contract": {str(chain.contract)},
        "invoice": {str(chain.invoice)},
        "payment": {str(chain.payment)},
        "refund": {refund},
        "credit_note": {credit},
    }
    for asked, kind in (
        (deal.OPPORTUNITY, "opportunity"),
        (deal.ERP_ORDER, "order"),
        (deal.SUBSCRIPTION, "contract"),
        (deal.INVOICE_NUMBER, "invoice"),
        (deal.ERP_DOCUMENT, "invoice"),
        (str(chain.payment), "payment"),
        (deal.PAYMENT_REFERENCE, "payment"),
        (str(chain.contract), "contract"),
        (deal.CREDIT_NOTE, "refund"),
        (deal.INVOICE_CREDIT, "credit_note"),
    ):
        body = lineage(api, asked)
        assert (body["id"], body["root"]["kind"]) == (asked, kind)
        assert kinds(body) == graph, asked
        assert {(e["type"], e["event_id"]) for e in body["events"]} == {
            (e["type"], e["event_id"]) for e in by_order["events"]
        }

    nodes = {n["id"]: n for n in by_order["nodes"]}
    assert {"system": "erp", "id": deal.ERP_ORDER} in nodes[str(chain.order)]["ids"]
    assert {"system": "billing", "id": deal.SUBSCRIPTION} in nodes[str(chain.contract)]["ids"]
    edges = {(e["from_kind"], e["to_kind"]) for e in by_order["edges"]}
    assert {
        ("opportunity", "order"),
        ("order", "contract"),
        ("contract", "invoice"),
        ("invoice", "payment"),
        ("payment", "refund"),
        ("invoice", "credit_note"),
    } <= edges
    placed = next(e for e in by_order["events"] if e["type"] == "OrderPlaced")
    assert (placed["causation_id"], placed["correlation_id"], placed["store"]) == (
        "delivery-7001",
        deal.OPPORTUNITY,
        "orders",
    )
    times = [e["recorded_at"] for e in by_order["events"]]
    assert times == sorted(times)

    # As of the invoice's posting the payment (and its refund) did not exist yet.
    posted = next(e for e in by_order["events"] if e["type"] == "InvoicePosted")
    before = lineage(api, deal.ERP_ORDER, as_of=posted["recorded_at"])
    assert set(kinds(before)) == {"customer", "opportunity", "order", "contract", "invoice"}
    assert before["as_of"] is not None
    assert all(e["recorded_at"] <= posted["recorded_at"] for e in before["events"])
    assert "PaymentReceived" not in {e["type"] for e in before["events"]}
    early = api.get(
        f"/v1/lineage/{chain.payment}", params={"as_of": posted["recorded_at"]}, role="reader"
    )
    assert_problem(early, 404, "not-found")


def test_the_graph_as_dot_and_mermaid(api: Api) -> None:
    chain = deal.build_chain(api.runtime)
    catch_up(api)
    dot = api.get(f"/v1/lineage/{chain.invoice}", params={"format": "dot"}, role="reader")
    assert dot.status_code == 200 and dot.headers["content-type"].startswith("text/plain")
    lines = dot.text.splitlines()
    assert lines[0] == "digraph lineage {" and lines[-1] == "}"
    assert sum(" -> " in line for line in lines) == 11  # every link of the chain
    assert sum("[label=" in line for line in lines) == 8
    assert any(f"erp: {deal.ERP_ORDER}" in line for line in lines)
    mermaid = api.get(f"/v1/lineage/{chain.invoice}", params={"format": "mermaid"})
    rows = mermaid.text.splitlines()
    assert rows[0] == "flowchart LR"
    assert sum(" --> " in row for row in rows) == 11
    assert any(f"billing: {deal.SUBSCRIPTION}" in row for row in rows)


def test_bad_input_ambiguity_and_auth(api: Api) -> None:
    chain = deal.build_chain(api.runtime)
    # Another payment whose reference is the ERP's order number: that id now names two.
    received = {
        "customer_id": str(chain.customer),
        "amount": {"amount": "5.00", "currency": "EUR"},
        "method": "wire",
        "received_at": "2026-12-06T10:00:00Z",
        "reference": deal.ERP_ORDER,
    }
    other = UUID(run(api.runtime, "payment", "receive", received).body["id"])
    catch_up(api)

    ambiguous = assert_problem(
        api.get(f"/v1/lineage/{deal.ERP_ORDER}", role="reader"), 409, "ambiguous-id"
    )
    listed = " ".join(e["message"] for e in ambiguous["errors"])
    assert f"order {chain.order}" in listed and f"payment {other}" in listed
    assert_problem(api.get("/v1/lineage/NOPE-1", role="reader"), 404, "not-found")
    assert_problem(api.get("/v1/lineage/" + "x" * 256, role="reader"), 422, "validation-failed")
    for params, field in (
        ({"as_of": "2026-12-01T00:00:00"}, "as_of"),  # no offset
        ({"as_of": "yesterday"}, "as_of"),
        ({"format": "svg"}, "format"),
    ):
        response = api.get(f"/v1/lineage/{chain.order}", params=params, role="reader")
        assert_problem(response, 422, "validation-failed", field=f"query.{field}")
    assert api.get(f"/v1/lineage/{chain.order}", role=None).status_code == 401


def test_each_event_names_the_inbound_delivery_behind_it(api: Api) -> None:
    """Placed by delivery 41 (causation ``inbound:41``); the ERP acceptance caused by the
    OrderPlaced event, and a fulfilment caused by that acceptance, reach the same delivery
    through their chain of causing events; an event no delivery caused names none."""
    chain = deal.build_chain(api.runtime, delivery="inbound:41")
    history = api.runtime.hub.history("order", chain.order)
    placed_id = str(history[0]["event_id"])
    caused_by_placing = Origin(causation_id=placed_id)
    run(api.runtime, "order", "fulfil", {}, aggregate_id=chain.order, origin=caused_by_placing)
    fulfilled_id = str(api.runtime.hub.history("order", chain.order)[-1]["event_id"])
    # A contract change caused by the fulfilment: two hops back to the delivery.
    cancel = {"effective_date": "2027-06-30", "reason": "downgrade"}
    run(
        api.runtime,
        "contract",
        "cancel",
        cancel,
        aggregate_id=chain.contract,
        origin=Origin(causation_id=fulfilled_id),
    )
    catch_up(api)
    events = {e["type"]: e for e in lineage(api, str(chain.order))["events"]}
    placed = events["OrderPlaced"]
    assert (placed["delivery_id"], placed["delivery"], placed["delivery_via"]) == (
        41,
        "/v1/inbound/41",
        None,
    )
    fulfilled, cancelled = events["OrderFulfilled"], events["ContractCancelled"]
    assert (fulfilled["caused_by_event"], fulfilled["delivery_id"]) == (placed_id, 41)
    assert fulfilled["delivery_via"] == placed_id
    assert (cancelled["caused_by_event"], cancelled["delivery_id"]) == (fulfilled_id, 41)
    assert cancelled["delivery_via"] == placed_id
    issued = events["InvoiceIssued"]
    assert (issued["delivery_id"], issued["delivery"], issued["caused_by_event"]) == (
        None,
        None,
        None,
    )
