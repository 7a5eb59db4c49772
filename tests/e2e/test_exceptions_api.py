"""The exception workbench over HTTP: every kind of stuck item, produced by the real
sources on PostgreSQL, each action's effect, the lineage, bad input and auth."""

from __future__ import annotations

import base64
from typing import Any
from uuid import uuid4

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from typer.testing import CliRunner

from adapters.nats.holds import HoldStore
from adapters.nats.spec import Delivery
from adapters.process.dispatcher import dispatch_once
from adapters.process.service import process_runner
from adapters.projections.runner import ProjectionRunner
from api.cli import app as cli
from hub.application.products import product_id
from projections.erp.invoices import ErpBilling
from projections.lineage.projection import Lineage
from tests.conftest import run_sync
from tests.e2e.conftest import Api, assert_problem
from tests.e2e.inbound_support import (
    runtime,  # noqa: F401  (the fixture with webhook secrets)
    stripe_event,
    stripe_invoice,
)
from tests.e2e.test_match_review import customer, stripe_named
from tests.e2e.test_webhooks_stripe import deliver, linked_customer
from tests.integration.commands import run
from tests.integration.subscriber_support import envelope

ADMIN = "admin-client"


def listing(api: Api, **params: Any) -> dict[str, Any]:
    response = api.get("/v1/exceptions", params=params, role="admin")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def items(api: Api, **params: Any) -> list[dict[str, Any]]:
    return [i for g in listing(api, **params)["groups"] for i in g["items"]]


def one(api: Api, reason: str) -> dict[str, Any]:
    [item] = items(api, reason=reason)
    return item


def act(api: Api, item: dict[str, Any], action: str, **body: Any) -> dict[str, Any]:
    response = api.post(
        f"/v1/exceptions/{item['id']}/actions", {"action": action, **body}, role="admin"
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def sql_exec(api: Api, text: str, *args: Any) -> list[tuple[Any, ...]]:
    settings = api.runtime.settings
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(settings.schema_name)))
        cursor = conn.execute(text, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def settle(api: Api) -> None:
    for _ in range(10):
        process_runner(api.runtime).catch_up()
        if not dispatch_once(api.runtime):
            return


def catch_up(api: Api, *projections: Any) -> None:
    rt = api.runtime
    for projection in projections:
        ProjectionRunner(projection, rt.connections, rt.settings.schema_name).catch_up()


def fail_deliveries(api: Api, order: str, customer_id: str) -> None:
    """What the ERP subscriber records when deliveries fail: two dead letters (one a
    NetSuite tax failure) and one aggregate being retried."""
    settings = api.runtime.settings

    async def record() -> None:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(settings.database_url, open=False)
        await pool.open()
        try:
            store = HoldStore(pool, settings.schema_name, "erp")

            def delivery(kind: str, aggregate_id: str, seq: int, event: str) -> Delivery:
                env = envelope(kind, aggregate_id, 1, event)
                subject = f"concord.v1.{kind}.{event}.{aggregate_id}"
                return Delivery(subject, seq, kind, aggregate_id, event, env["event_id"], 1, env)

            await store.dead_letter(
                delivery("order", order, 1, "OrderValidated"),
                "permanent",
                "400 INVALID_FLD_VALUE: item 77 is inactive",
                1,
                was_parked=False,
            )
            await store.dead_letter(
                delivery("invoice", str(uuid4()), 2, "InvoiceIssued"),
                "permanent",
                "400 USER_ERROR: Tax calculation failed. No tax code for the ship-to address",
                1,
                was_parked=False,
            )
            await store.hold_retrying(
                delivery("customer", customer_id, 3, "CustomerRegistered"), "503 upstream", 2
            )
        finally:
            await pool.close()

    run_sync(record())


def test_subscriber_items_their_actions_history_and_lineage(api: Api) -> None:
    acme = api.customer()
    order = api.order(acme)
    fail_deliveries(api, order, acme)
    body = listing(api)
    assert body["counts"] == {"dead_letter": 1, "tax_failure": 1, "retrying_delivery": 1}
    dead = one(api, "dead_letter")
    assert dead["object"] == {"kind": "order", "id": order, "canonical": True}
    assert dead["lineage"] == f"/v1/lineage/{order}" and dead["customer_id"] == acme
    assert dead["actions"] == ["retry", "discard", "resolve"] and dead["age_s"] >= 0
    assert [i["reason"] for i in items(api, customer=acme)] == ["dead_letter", "retrying_delivery"]
    assert [i["reason"] for i in items(api, kind="invoice")] == ["tax_failure"]
    retrying = one(api, "retrying_delivery")
    assert retrying["actions"] == ["resolve"]
    # an action the item does not allow, and resolve without a note
    refused = api.post(
        f"/v1/exceptions/{retrying['id']}/actions", {"action": "retry"}, role="admin"
    )
    assert_problem(refused, 422, "action-not-allowed", field="body.action")
    no_note = api.post(
        f"/v1/exceptions/{retrying['id']}/actions", {"action": "resolve"}, role="admin"
    )
    assert_problem(no_note, 422, "note-required", field="body.note")

    # retry: the dead letter is handed to the running subscriber
    result = act(api, dead, "retry", note="item reactivated in the ERP")
    assert result["outcome"]["dead_letter"]["status"] == "retry_requested"
    assert result["action"]["actor"] == ADMIN
    dead_letter = api.get(f"/v1/dead-letters/{dead['detail']['dead_letter_id']}").json()
    assert (dead_letter["status"], dead_letter["resolved_by"]) == ("retry_requested", ADMIN)
    again = api.get(f"/v1/exceptions/{dead['id']}", role="admin").json()
    assert again["actions"] == ["resolve"]
    assert [(h["action"], h["actor"], h["note"]) for h in again["history"]] == [
        ("retry", ADMIN, "item reactivated in the ERP")
    ]
    # discard the tax failure: closed at its source, gone from the list
    tax = one(api, "tax_failure")
    assert act(api, tax, "discard")["outcome"]["dead_letter"]["status"] == "discarded"
    assert_problem(api.get(f"/v1/exceptions/{tax['id']}"), 404, "not-found")
    # resolve: recorded, hidden until the item changes again
    act(api, retrying, "resolve", note="ERP maintenance window, it will go through")
    assert listing(api)["counts"] == {"dead_letter": 1}
    resolved = api.get(f"/v1/exceptions/{retrying['id']}").json()
    assert resolved["resolved_at"] is not None

    # every action is an event of its object in the lineage, with who did it
    catch_up(api, Lineage())
    lineage = api.get(f"/v1/lineage/{order}", role="reader").json()
    actions = [e for e in lineage["events"] if e["type"] == "OperatorAction"]
    assert [(e["kind"], e["object_id"], e["action"], e["actor"]) for e in actions] == [
        ("order", order, "retry", ADMIN),
        ("customer", acme, "resolve", ADMIN),  # the customer is a node of the deal's graph
    ]
    assert actions[0]["exception_id"] == dead["id"] and actions[0]["reason"] == "dead_letter"
    customer_view = api.get(f"/v1/lineage/{acme}", role="reader").json()
    by_customer = [e for e in customer_view["events"] if e["type"] == "OperatorAction"]
    assert [e["action"] for e in by_customer] == ["retry", "resolve"]  # its deal's too


def test_held_deliveries_and_match_reviews(api: Api) -> None:
    linked_customer(api)
    body = stripe_invoice("in_unmapped", "cus_Acme", subscription="sub_1")
    body["lines"]["data"][0]["pricing"]["price_details"]["price"] = "price_new_tier"
    stranger = stripe_invoice("in_stranger", "cus_Nobody", number="INV-0002")
    acme = customer(api, "Globex GmbH")
    for held_body in (
        stripe_event("invoice.finalized", body, "evt_i1", 1767312000),
        stripe_event("invoice.finalized", stranger, "evt_i2", 1767312000),
        stripe_named("cus_2", "GLOBEX G.m.b.H.", "evt_c2"),
        stripe_named("cus_3", "Globex GmbH.", "evt_c3"),
    ):
        assert deliver(api, held_body).status_code == 202
    assert listing(api)["counts"] == {"unmapped_sku": 1, "held_delivery": 1, "match_review": 2}
    unmapped = one(api, "unmapped_sku")
    assert unmapped["object"]["kind"] == "delivery" and unmapped["lineage"] is None
    assert unmapped["detail"]["waiting_for"]["external_id"] == "price_new_tier"
    assert unmapped["actions"] == ["retry", "replay", "discard", "resolve"]
    # retry and replay run it again through the inbound service: still waiting
    assert act(api, unmapped, "retry")["outcome"]["delivery"]["status"] == "held"
    assert act(api, unmapped, "replay")["outcome"]["delivery"]["status"] == "held"
    # discard gives up on it at the inbound log, with who and why
    held = one(api, "held_delivery")
    act(api, held, "discard", note="test customer, never to be billed")
    logged = api.get(f"/v1/inbound/{held['object']['id']}").json()
    assert logged["status"] == "discarded" and logged["detail"]["discarded_by"] == ADMIN
    # approve links the review's only candidate; reject says it is nobody Concord knows
    reviews = {i["detail"]["external_id"]: i for i in items(api, reason="match_review")}
    assert reviews["cus_2"]["actions"] == ["approve", "reject"]
    approved = act(api, reviews["cus_2"], "approve")
    assert approved["outcome"]["match"]["status"] == "linked"
    assert approved["action"]["object_id"] == acme  # recorded on the customer it now is
    rejected = act(api, reviews["cus_3"], "reject", note="a reseller, not Globex")
    assert rejected["outcome"]["match"]["status"] == "new"
    assert api.get("/v1/matches").json()["items"] == []
    assert listing(api)["counts"] == {"unmapped_sku": 1}
    # the approval is in the customer's lineage
    catch_up(api, Lineage())
    events = api.get(f"/v1/lineage/{acme}", role="reader").json()["events"]
    assert [(e["action"], e["actor"]) for e in events if e["type"] == "OperatorAction"] == [
        ("approve", ADMIN)
    ]
    # once mapped, the held invoice is issued: the actions on its delivery are in its lineage
    mapping = {"charge_type": "recurring", "billing_period": "month"}
    put = api.http.put(
        "/v1/mappings/TIER-NEW",
        json=mapping | {"ids": {"billing_price_ids": ["price_new_tier"]}},
        headers=api.headers("admin"),
    )
    assert put.status_code in (200, 201), put.text
    assert "unmapped_sku" not in listing(api)["counts"]
    catch_up(api, Lineage())
    invoice = api.get("/v1/lineage/in_unmapped", role="reader").json()
    on_delivery = [e for e in invoice["events"] if e["type"] == "OperatorAction"]
    assert [(e["kind"], e["action"]) for e in on_delivery] == [
        ("invoice", "retry"),
        ("invoice", "replay"),
    ]
    assert on_delivery[0]["delivery"] == f"/v1/inbound/{unmapped['object']['id']}"


def _product(api: Api, sku: str, **ids: list[str]) -> None:
    response = api.http.put(
        f"/v1/mappings/{sku}",
        json={"charge_type": "recurring", "billing_period": "month", "ids": ids},
        headers=api.headers("admin"),
    )
    assert response.status_code in (200, 201), response.text


def _deal(api: Api, customer_id: str, opportunity: str, sku: str = "SEATS") -> str:
    line = {
        "sku": sku,
        "quantity": "5",
        "unit_price": "1200.00",
        "charge_type": "recurring",
        "billing_unit_price": "100.00",
    }
    return api.order(customer_id, opportunity_id=opportunity, lines=[line])


def test_process_items_and_the_dispatch_retry(api: Api) -> None:
    _product(api, "SEATS", erp_item_ids=["77"], billing_price_ids=["price_seats"])
    _product(api, "GONE", erp_item_ids=["78"], billing_price_ids=["price_gone"])
    initech = api.customer(legal_name="Initech")
    settle(api)
    # unmapped: a product the process has no ERP item for
    waiting = _deal(api, initech, "006W", sku="NOMAP")
    # rejected: a retired product
    run(api.runtime, "product", "retire", {}, aggregate_id=product_id("GONE"))
    rejected = _deal(api, initech, "006R", sku="GONE")
    # overdue: a validated deal whose ERP step is past its deadline
    overdue = _deal(api, initech, "006O")
    # missing parent: a deal of a customer the process has not seen
    hooli = api.customer(legal_name="Hooli")
    settle(api)
    sql_exec(api, "DELETE FROM q2c_customers WHERE customer_id = %s", hooli)
    orphan = _deal(api, hooli, "006M")
    # failed step: a deal cancelled before its validation was executed
    cancelled = _deal(api, initech, "006C")
    process_runner(api.runtime).catch_up()
    cancel = api.post(f"/v1/orders/{cancelled}/cancel", {"reason": "lost"}, role="crm")
    assert cancel.status_code == 200, cancel.text
    settle(api)
    sql_exec(
        api,
        "UPDATE q2c_steps SET deadline_at = now() - interval '1 hour' WHERE process_id = %s "
        "AND step = 'erp_order'",
        overdue,
    )
    counts = listing(api)["counts"]
    for reason in ("unmapped_sku", "rejected_order", "overdue_step", "missing_parent"):
        assert counts.get(reason) == 1, counts
    assert counts["failed_step"] == 1, counts
    by_reason = {i["reason"]: i for i in items(api, kind="order")}
    assert by_reason["unmapped_sku"]["object"]["id"] == waiting
    assert by_reason["unmapped_sku"]["detail"]["waiting_for"] == ["sku:NOMAP"]
    assert by_reason["rejected_order"]["object"]["id"] == rejected
    assert by_reason["overdue_step"]["detail"]["step"] == "erp_order"
    assert by_reason["missing_parent"]["object"]["id"] == orphan
    assert by_reason["missing_parent"]["customer_id"] == hooli
    failed = by_reason["failed_step"]
    assert failed["object"]["id"] == cancelled and failed["actions"] == ["retry", "resolve"]
    assert failed["detail"]["command"] == "order.validate" and failed["detail"]["error"]
    # retry: the dispatch row goes, the dispatcher executes the command again
    command = failed["detail"]["command_id"]
    act(api, failed, "retry", note="trying once more")
    assert sql_exec(
        api, "SELECT status FROM concord_q2c_dispatch WHERE command_id = %s", command
    ) == [("retrying",)]  # due now
    dispatch_once(api.runtime)
    assert sql_exec(
        api, "SELECT status, attempts FROM concord_q2c_dispatch WHERE command_id = %s", command
    ) == [("refused", 2)]
    # the refused retry is the same item again, with its history
    [back] = [i for i in items(api, reason="failed_step")]
    assert back["id"] == failed["id"] and [h["action"] for h in back["history"]] == ["retry"]
    act(api, by_reason["rejected_order"], "resolve", note="customer told, new deal coming")
    assert "rejected_order" not in listing(api)["counts"]


def test_an_invoice_whose_tax_failed(api: Api) -> None:
    acme = api.customer()
    invoice = api.invoice(acme, api.order(acme))
    failed = api.post(
        f"/v1/invoices/{invoice}/record_tax", {"status": "failed", "reason": "no nexus"}, role="erp"
    )
    assert failed.status_code == 200, failed.text
    catch_up(api, ErpBilling())
    item = one(api, "tax_failure")
    assert item["object"] == {"kind": "invoice", "id": invoice, "canonical": True}
    assert item["customer_id"] == acme and "no nexus" in item["summary"]
    assert item["actions"] == ["resolve"]
    act(api, item, "resolve", note="nexus added in the tax engine")
    assert listing(api)["count"] == 0
    catch_up(api, Lineage())
    events = api.get(f"/v1/lineage/{invoice}", role="reader").json()["events"]
    [action] = [e for e in events if e["type"] == "OperatorAction"]
    assert (action["action"], action["actor"], action["note"]) == (
        "resolve",
        ADMIN,
        "nexus added in the tax engine",
    )


def test_bad_input_unknown_ids_and_auth(api: Api) -> None:
    acme = api.customer()
    fail_deliveries(api, api.order(acme), acme)
    dead = one(api, "dead_letter")
    path = f"/v1/exceptions/{dead['id']}/actions"
    assert_problem(api.get("/v1/exceptions?reason=bogus"), 422, "validation-failed")
    assert_problem(api.get("/v1/exceptions?kind=planet"), 422, "validation-failed")
    assert_problem(
        api.get("/v1/exceptions?customer=nope"), 422, "validation-failed", field="query.customer"
    )
    assert_problem(api.get("/v1/exceptions?limit=0"), 422, "validation-failed", field="query.limit")
    assert_problem(api.get("/v1/exceptions?limit=1001"), 422, "validation-failed")
    assert_problem(api.get("/v1/exceptions/not%20an%20id"), 422, "validation-failed")
    unknown = base64.urlsafe_b64encode(b"dl:999999").decode().rstrip("=")
    assert_problem(api.get(f"/v1/exceptions/{unknown}"), 404, "not-found")
    assert_problem(api.get("/v1/exceptions/AAAAAAAA"), 404, "not-found")
    nowhere = api.post(f"/v1/exceptions/{unknown}/actions", {"action": "retry"}, role="admin")
    assert_problem(nowhere, 404, "not-found", field="path.exception_id")
    for bad in ({"action": "explode"}, {}, {"action": "retry", "extra": 1}, {"action": 3}):
        assert_problem(api.post(path, bad, role="admin"), 422, "validation-failed")
    long_note = {"action": "resolve", "note": "x" * 2001}
    assert_problem(api.post(path, long_note, role="admin"), 422, "validation-failed")
    with_customer = {"action": "retry", "customer_id": acme}
    assert_problem(
        api.post(path, with_customer, role="admin"),
        422,
        "validation-failed",
        field="body.customer_id",
    )
    # auth: admin to read (the list gathers admin-only sources) and to act
    assert api.get("/v1/exceptions", role=None).status_code == 401
    for role in ("crm", "reader"):
        assert api.get("/v1/exceptions", role=role).status_code == 403
        assert (
            api.get(f"/v1/exceptions/{one(api, 'dead_letter')['id']}", role=role).status_code == 403
        )
    assert api.post(path, {"action": "retry"}, role=None).status_code == 401
    for role in ("crm", "reader"):
        assert api.post(path, {"action": "retry"}, role=role).status_code == 403
    assert sql_exec(api, "SELECT count(*) FROM concord_exception_actions") == [(0,)]
    assert one(api, "dead_letter")["history"] == []
    # bounded: the limit cuts the list and says so
    cut = listing(api, limit=1)
    assert cut["truncated"] is True and cut["count"] == 3
    assert sum(g["count"] for g in cut["groups"]) == 1


def test_the_cli_lists_and_acts(api: Api, monkeypatch: Any) -> None:
    acme = api.customer()
    fail_deliveries(api, api.order(acme), acme)
    settings = api.runtime.settings
    assert settings.database_url
    monkeypatch.setenv("CONCORD_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONCORD_SCHEMA_NAME", settings.schema_name)
    monkeypatch.setenv("CONCORD_DATA_DIR", str(settings.data_dir))
    runner = CliRunner()
    listed = runner.invoke(cli, ["exceptions", "list", "--reason", "dead_letter"])
    assert listed.exit_code == 0, listed.output
    dead = one(api, "dead_letter")
    assert dead["id"] in listed.output and "retry, discard, resolve" in listed.output
    bad = runner.invoke(cli, ["exceptions", "list", "--reason", "bogus"])
    assert bad.exit_code == 1 and "not one of" in bad.output
    done = runner.invoke(cli, ["exceptions", "act", dead["id"], "discard", "--by", "ops-jane"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(cli, ["exceptions", "show", dead["id"]])
    assert shown.exit_code == 1  # discarded: no longer open
    history = sql_exec(api, "SELECT action, actor FROM concord_exception_actions")
    assert history == [("discard", "ops-jane")]
