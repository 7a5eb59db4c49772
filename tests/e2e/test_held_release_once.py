"""A held delivery is re-run once per arrival of what it waits for, never once per releaser.

Every worker that applies an event while something is held looks for what it released, and
so does the periodic releaser: without a claim, two of them running at once both re-run the
same ready delivery (the second finds the receipt, or is refused by the first's effect),
which was most of the re-run work under load. A claim must never lose a release either: a
delivery whose next dependency arrives while another worker holds its claim still runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.bootstrap import Runtime
from adapters.salesforce import to_18
from tests.e2e.conftest import Api, order_body
from tests.e2e.inbound_support import (
    ACCOUNT,
    crm_account,
    inbound_runtime,
    mapped,  # noqa: F401  (the catalogue fixture)
    stripe_customer,
    stripe_event,
    stripe_invoice,
)
from tests.e2e.test_webhooks_stripe import deliver

ONE_OFF = {"metadata": {"sf_opportunity_id": "006X"}}

pytestmark = pytest.mark.usefixtures("mapped")


@pytest.fixture
def runtime(database_url: str, pg_schema: str, tmp_path: Path) -> Iterator[Runtime]:
    """Webhook secrets, and no periodic releaser: the test alone decides who releases."""
    yield from inbound_runtime(database_url, pg_schema, tmp_path, inbound_release_interval_s=0)


def held_invoice(api: Api, event_id: str = "evt_inv") -> int:
    """A one-off invoice for Stripe customer ``cus_H``, held until that customer is known."""
    body = stripe_event("invoice.finalized", stripe_invoice("in_H", "cus_H") | ONE_OFF, event_id, 1)
    [result] = deliver(api, body).json()["results"]
    assert result["waiting_for"] == "billing customer cus_H"
    return int(result["delivery_id"])


def count_runs(api: Api, delivery_id: int, during: Any = None) -> list[str]:
    """Patch the service so every run of ``delivery_id`` is recorded; ``during`` runs in
    another thread (joined) at the start of the first run, as a concurrent worker would."""
    service = api.runtime.inbound
    original = service.process
    runs: list[str] = []

    def process(adapter: Any, delivery: Any, event: Any) -> Any:
        if delivery.id == delivery_id:
            runs.append(delivery.status)
            if len(runs) == 1 and during is not None:
                other = threading.Thread(target=during)
                other.start()
                other.join()
        return original(adapter, delivery, event)

    service.process = process  # type: ignore[method-assign]
    return runs


def test_two_releasers_at_once_run_a_ready_delivery_once(api: Api) -> None:
    crm_account(api)
    delivery_id = held_invoice(api)
    runs = count_runs(api, delivery_id, during=api.runtime.inbound.release)
    linked = stripe_event("customer.created", stripe_customer("cus_H", ACCOUNT), "evt_h", 1)
    assert deliver(api, linked).json()["results"][0]["status"] == "applied"
    assert runs == ["held"]
    row = api.get(f"/v1/inbound/{delivery_id}").json()
    assert row["waiting_for"] == {"system": "crm", "entity": "order", "external_id": "006X"}


def test_unrelated_deliveries_do_not_run_a_held_one(api: Api) -> None:
    crm_account(api)
    delivery_id = held_invoice(api)
    runs = count_runs(api, delivery_id)
    for n in range(3):
        account = to_18(f"001Dn00000AbCd{n}")
        crm_account(api, account)
        other = stripe_event("customer.created", stripe_customer(f"cus_{n}", account), f"e{n}", 1)
        response = deliver(api, other)
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["status"] == "applied", response.text
    api.runtime.inbound.release()
    assert runs == []


def test_a_dependency_arriving_while_claimed_still_releases(api: Api, monkeypatch: Any) -> None:
    """While one worker re-runs the invoice (its claim), the order it waits for next is
    created and another worker's release skips the claimed invoice: the claim's holder
    looks for the order again once it holds the invoice, so the invoice is not left held."""
    from adapters.stripe import adapter as stripe_adapter

    customer_id = crm_account(api)
    delivery_id = held_invoice(api)  # waits for cus_H, then for the CRM order 006X
    original = stripe_adapter._invoice_finalized
    arrived: list[bool] = []

    def order_then_release() -> None:
        headers = {"Concord-Source-Record-Id": "006X"}
        body = order_body(customer_id, "EUR", opportunity_id="006X")
        assert api.post("/v1/orders", body, headers=headers).status_code == 201
        api.runtime.inbound.release()

    def translate(event: Any, known: Any) -> Any:
        translation = original(event, known)
        waits = translation.waits_for
        if waits is not None and waits.entity == "order" and not arrived:
            arrived.append(True)  # the order arrives after this run looked for it
            other = threading.Thread(target=order_then_release)
            other.start()
            other.join()
        return translation

    monkeypatch.setattr(stripe_adapter, "_invoice_finalized", translate)
    linked = stripe_event("customer.created", stripe_customer("cus_H", ACCOUNT), "evt_h", 1)
    assert deliver(api, linked).status_code == 200
    assert arrived == [True]
    row = api.get(f"/v1/inbound/{delivery_id}").json()
    assert row["status"] == "applied", row
