"""The Salesforce connector against the served CRM sandbox: milestones land once with the
right values despite faults, retries find nothing left to write, errors are classified."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.connectors.budget import Budget
from adapters.connectors.hub_reader import MemoryHubReader
from adapters.connectors.port import PermanentDeliveryError, TransientDeliveryError
from adapters.salesforce.client import LIMIT_RETRY_AFTER_S, SalesforceClient
from adapters.salesforce.outbound import SalesforceConnector, salesforce_connector
from adapters.sandbox.base import serve_in_thread
from adapters.sandbox.crm import CrmSandbox
from adapters.settings import Settings

ORDER = "7d4f0a52-8f0e-4d59-9a52-6f1f4b1f0001"
CONTRACT = "7d4f0a52-8f0e-4d59-9a52-6f1f4b1f0002"
INVOICE = "7d4f0a52-8f0e-4d59-9a52-6f1f4b1f0003"
PAYMENT = "7d4f0a52-8f0e-4d59-9a52-6f1f4b1f0004"
_versions = itertools.count(1)


@dataclass
class Crm:
    sandbox: CrmSandbox
    url: str
    opportunity: str
    hub: MemoryHubReader

    def connector(self, timeout: float = 5.0, token: str = "sandbox-token") -> SalesforceConnector:
        client = SalesforceClient(
            self.url, token, budget=Budget("crm", concurrency=2), timeout=timeout
        )
        return SalesforceConnector(client, self.hub)

    def opp(self) -> dict[str, Any]:
        return self.sandbox.get("Opportunity", self.opportunity)

    def patches(self) -> int:
        return sum(
            1
            for c in self.sandbox.calls
            if c.method == "PATCH" and c.path.endswith(self.opportunity) and c.status == 204
        )


@pytest.fixture
def crm() -> Iterator[Crm]:
    sandbox = CrmSandbox("secret", token="sandbox-token")
    account = sandbox.create_account("Initech LLC")
    product = sandbox.create_product("Seat", "SEAT", prices={"USD": "50.00"})
    opportunity = sandbox.create_opportunity(account, "Initech deal", close_date="2026-03-31")
    sandbox.add_line(opportunity, product, quantity=4)
    sandbox.win(opportunity)
    hub = MemoryHubReader(
        {
            ("order", ORDER): {"id": ORDER, "opportunity_id": opportunity, "status": "placed"},
            ("contract", CONTRACT): {"id": CONTRACT, "order_id": ORDER},
            ("invoice", INVOICE): {
                "id": INVOICE,
                "order_id": None,
                "contract_id": CONTRACT,
                "status": "paid",
            },
        }
    )
    with serve_in_thread(sandbox) as running:
        yield Crm(sandbox, running.url, opportunity, hub)


def event(
    kind: str, aggregate: str, aggregate_id: str, at: str, source: str = "billing", **data: Any
) -> dict[str, Any]:
    """An envelope as hub/application/views.py ``envelope()`` publishes it."""
    return {
        "envelope_version": 1,
        "event_id": f"00000000-0000-4000-8000-{next(_versions):012d}",
        "type": kind,
        "schema_version": 1,
        "aggregate": aggregate,
        "aggregate_id": aggregate_id,
        "version": next(_versions),
        "recorded_at": "2026-12-01T00:00:00+00:00",
        "occurred_at": at,
        "provenance": {"source_system": source, "actor": "test", "occurred_at": at},
        "data": data,
    }


def deliver(crm: Crm, *events: dict[str, Any], **options: Any) -> SalesforceClient:
    """Deliver in order on one event loop with a fresh connector (as one subscriber does);
    the client is returned closed, for its ``usage``."""
    connector = crm.connector(**options)

    async def run() -> None:
        try:
            for envelope in events:
                await connector.deliver(envelope, envelope["event_id"])
        finally:
            await connector.aclose()

    asyncio.run(run())
    return connector.client


def the_quarter() -> list[dict[str, Any]]:
    return [
        event(
            "OrderPlaced",
            "order",
            ORDER,
            "2026-03-31T09:00:00+00:00",
            "crm",
            opportunity_id=None,
            customer_id="c",
        ),
        event("OrderValidated", "order", ORDER, "2026-03-31T09:00:05+00:00", "concord"),
        event(
            "OrderAcceptedByErp",
            "order",
            ORDER,
            "2026-03-31T09:01:00+00:00",
            "erp",
            erp_order_number="SO-10042",
        ),
        event(
            "ContractActivated",
            "contract",
            CONTRACT,
            "2026-04-01T00:00:00+00:00",
            billing_subscription_id="sub_1",
        ),
        event(
            "InvoiceIssued",
            "invoice",
            INVOICE,
            "2026-04-01T00:05:00+00:00",
            order_id=None,
            contract_id=CONTRACT,
        ),
        event(
            "InvoicePaymentApplied",
            "invoice",
            INVOICE,
            "2026-04-03T12:00:00+00:00",
            payment_id=PAYMENT,
            amount="200.00",
        ),
        event(
            "PaymentApplied",
            "payment",
            PAYMENT,
            "2026-04-03T12:00:00+00:00",
            invoice_id=INVOICE,
            amount="200.00",
        ),
    ]


def test_every_milestone_lands_once_with_its_business_time(crm: Crm) -> None:
    cdc_before = len(crm.sandbox.cdc)
    deliver(crm, *the_quarter())
    opp = crm.opp()
    assert opp["Concord_Status__c"] == "Paid"
    assert opp["Concord_Status_Reason__c"] is None
    assert opp["Concord_Ordered_At__c"] == "2026-03-31T09:00:00.000+0000"  # placed, not validated
    assert opp["Concord_ERP_Accepted_At__c"] == "2026-03-31T09:01:00.000+0000"
    assert opp["Concord_ERP_Order_Number__c"] == "SO-10042"
    assert opp["Concord_Activated_At__c"] == "2026-04-01T00:00:00.000+0000"
    assert opp["Concord_First_Invoice_At__c"] == "2026-04-01T00:05:00.000+0000"
    assert opp["Concord_Paid_At__c"] == "2026-04-03T12:00:00.000+0000"
    writes = crm.patches()
    assert writes == 5  # OrderValidated (later) and PaymentApplied (same) change nothing
    echoes = crm.sandbox.cdc[cdc_before:]
    assert len(echoes) == writes
    origins = {m["data"]["payload"]["ChangeEventHeader"]["changeOrigin"] for m in echoes}
    assert origins == {"com/salesforce/api/rest/60.0;client=concord"}
    client = deliver(crm, *the_quarter())  # redelivered: read, nothing written
    assert crm.patches() == writes and len(crm.sandbox.cdc) == cdc_before + writes
    assert client.usage is not None and client.usage[1] == 15_000


def test_out_of_order_events_keep_the_earliest_times_and_the_furthest_status(crm: Crm) -> None:
    later_invoice = event(
        "InvoiceIssued",
        "invoice",
        INVOICE,
        "2026-05-01T00:00:00+00:00",
        order_id=ORDER,
        contract_id=CONTRACT,
    )
    quarter = the_quarter()
    deliver(crm, quarter[3], later_invoice, quarter[4], quarter[2], quarter[0])
    opp = crm.opp()
    assert opp["Concord_Status__c"] == "Invoiced"
    assert opp["Concord_First_Invoice_At__c"] == "2026-04-01T00:05:00.000+0000"
    assert opp["Concord_Ordered_At__c"] == "2026-03-31T09:00:00.000+0000"
    assert opp["Concord_ERP_Order_Number__c"] == "SO-10042"


def test_rejection_suspension_and_cancellation_carry_their_reasons(crm: Crm) -> None:
    quarter = the_quarter()
    deliver(crm, quarter[0], quarter[3])
    suspended = event(
        "ContractSuspended",
        "contract",
        CONTRACT,
        "2026-06-01T00:00:00+00:00",
        effective_date="2026-06-01",
    )
    deliver(crm, suspended)
    assert crm.opp()["Concord_Status__c"] == "Suspended"
    assert crm.opp()["Concord_Status_Reason__c"] == "suspended from 2026-06-01"
    deliver(crm, quarter[4])  # an invoice does not lift a suspension
    assert crm.opp()["Concord_Status__c"] == "Suspended"
    resumed = event(
        "ContractResumed",
        "contract",
        CONTRACT,
        "2026-06-10T00:00:00+00:00",
        effective_date="2026-06-10",
    )
    deliver(crm, resumed)
    assert (crm.opp()["Concord_Status__c"], crm.opp()["Concord_Status_Reason__c"]) == (
        "Active",
        None,
    )
    cancelled = event(
        "ContractCancelled",
        "contract",
        CONTRACT,
        "2026-07-01T00:00:00+00:00",
        effective_date="2026-07-31",
        reason="customer churned",
    )
    deliver(crm, cancelled, quarter[5])  # a late payment does not reopen it
    assert crm.opp()["Concord_Status__c"] == "Cancelled"
    assert crm.opp()["Concord_Status_Reason__c"] == "customer churned (effective 2026-07-31)"
    assert crm.opp()["Concord_Paid_At__c"] == "2026-04-03T12:00:00.000+0000"


def test_a_held_order_shows_why_until_it_is_released(crm: Crm) -> None:
    quarter = the_quarter()
    deliver(crm, quarter[0], quarter[2])
    why = "billing refused the subscription: Stripe answered 400: no card on file"
    held = event("OrderHeld", "order", ORDER, "2026-04-01T00:00:00+00:00", reason=why)
    deliver(crm, held, quarter[3])  # what billing does meanwhile does not lift the hold
    opp = crm.opp()
    assert (opp["Concord_Status__c"], opp["Concord_Status_Reason__c"]) == ("On hold", why)
    assert opp["Concord_Activated_At__c"] == "2026-04-01T00:00:00.000+0000"
    writes = crm.patches()
    released = event("OrderReleased", "order", ORDER, "2026-04-02T00:00:00+00:00", note="ok")
    deliver(crm, released, released)  # again: nothing more to lift
    opp = crm.opp()
    assert (opp["Concord_Status__c"], opp["Concord_Status_Reason__c"]) == ("Active", None)
    assert crm.patches() == writes + 1


def test_rejected_order_says_why(crm: Crm) -> None:
    rejected = event(
        "OrderRejected",
        "order",
        ORDER,
        "2026-03-31T09:00:05+00:00",
        "concord",
        reasons=["line 1: SKU SEAT has no ERP item", "parent account not synced"],
    )
    deliver(crm, rejected)
    assert crm.opp()["Concord_Status__c"] == "Rejected"
    assert crm.opp()["Concord_Status_Reason__c"] == (
        "line 1: SKU SEAT has no ERP item; parent account not synced"
    )


def test_events_the_crm_does_not_hear_of_make_no_call(crm: Crm) -> None:
    crm.hub.states[("order", "other")] = {"id": "other", "opportunity_id": None}
    before = len(crm.sandbox.calls)
    connector = crm.connector()
    assert not connector.wants(event("CustomerRegistered", "customer", "c1", "2026-01-01"))
    assert not connector.wants(event("ContractCreated", "contract", CONTRACT, "2026-01-01"))
    assert all(connector.wants(e) for e in the_quarter())
    deliver(
        crm,
        event("CustomerRegistered", "customer", "c1", "2026-01-01T00:00:00+00:00", "crm"),
        event(
            "OrderPlaced", "order", "other", "2026-01-01T00:00:00+00:00", "api", opportunity_id=None
        ),
        event("OrderValidated", "order", "missing", "2026-01-01T00:00:00+00:00"),
        event("InvoicePaymentApplied", "invoice", "unknown", "2026-01-01T00:00:00+00:00"),
    )
    assert len(crm.sandbox.calls) == before


def _fails(crm: Crm, envelope: dict[str, Any], **options: Any) -> Exception:
    try:
        deliver(crm, envelope, **options)
    except (TransientDeliveryError, PermanentDeliveryError) as failed:
        return failed
    raise AssertionError("expected a delivery error")


def test_transient_faults_then_the_milestone_lands_once(crm: Crm) -> None:
    accepted = the_quarter()[2]
    faults: list[tuple[dict[str, Any], float | None]] = [
        ({"kind": "error", "status": 503, "method": "PATCH"}, None),
        ({"kind": "error", "status": 429, "retry_after": 7}, 7.0),
        ({"kind": "error", "status": 400, "code": "UNABLE_TO_LOCK_ROW", "method": "PATCH"}, 1.0),
        ({"kind": "timeout", "seconds": 1.0, "apply": False}, None),
    ]
    for fault, retry_after in faults:
        crm.sandbox.faults.add(fault)
        failed = _fails(crm, accepted, timeout=0.5)
        assert isinstance(failed, TransientDeliveryError), fault
        assert failed.retry_after == retry_after, fault
    assert crm.patches() == 0
    crm.sandbox.faults.add({"kind": "timeout", "seconds": 1.0, "method": "PATCH"})
    assert isinstance(_fails(crm, accepted, timeout=0.5), TransientDeliveryError)
    assert crm.patches() == 1  # applied, though the connector did not hear back
    deliver(crm, accepted, timeout=0.5)  # the retry finds it written
    assert crm.patches() == 1
    assert crm.opp()["Concord_ERP_Order_Number__c"] == "SO-10042"


def test_used_up_allocation_waits_long(crm: Crm) -> None:
    crm.sandbox.daily_limit = crm.sandbox.api_used
    failed = _fails(crm, the_quarter()[0])
    assert isinstance(failed, TransientDeliveryError)
    assert failed.retry_after == LIMIT_RETRY_AFTER_S
    assert "REQUEST_LIMIT_EXCEEDED" in failed.message


def test_permanent_errors_quote_salesforce(crm: Crm) -> None:
    bad_token = _fails(crm, token="expired", envelope=the_quarter()[0])
    assert isinstance(bad_token, PermanentDeliveryError)
    assert "INVALID_SESSION_ID" in bad_token.message
    too_long = event(
        "OrderAcceptedByErp",
        "order",
        ORDER,
        "2026-03-31T09:01:00+00:00",
        "erp",
        erp_order_number="SO-" + "9" * 300,
    )
    refused = _fails(crm, too_long)
    assert isinstance(refused, PermanentDeliveryError)
    assert "STRING_TOO_LONG" in refused.message and "Concord_ERP_Order_Number__c" in refused.message
    crm.sandbox.delete("Opportunity", crm.opportunity)
    gone = _fails(crm, the_quarter()[0])
    assert isinstance(gone, PermanentDeliveryError) and "does not exist" in gone.message


def test_settings_make_the_connector(crm: Crm) -> None:
    assert salesforce_connector(Settings(), crm.hub) is None
    with pytest.raises(ValueError, match="CONCORD_SALESFORCE_TOKEN"):
        salesforce_connector(Settings(salesforce_url=crm.url), crm.hub)
    settings = Settings(
        salesforce_url=crm.url,
        salesforce_token="sandbox-token",
        salesforce_echo_client="concord-test",
        salesforce_concurrency=3,
    )
    connector = salesforce_connector(settings, crm.hub)
    assert connector is not None and connector.client.budget.concurrency == 3

    async def run() -> None:
        try:
            await connector.deliver(the_quarter()[0], "k")
        finally:
            await connector.aclose()

    asyncio.run(run())
    echo = crm.sandbox.cdc[-1]["data"]["payload"]["ChangeEventHeader"]
    assert echo["changeOrigin"] == "com/salesforce/api/rest/60.0;client=concord-test"
