"""Every message the relay publishes validates against the JSON Schema published for its
type at GET /v1/schemas/events — the contract subscribers code against."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from adapters.bootstrap import Runtime
from adapters.nats.relay import Relay
from tests.conftest import run_sync
from tests.integration.commands import new_customer, new_invoice, new_payment, run
from tests.integration.relay_support import relay_settings, stream_messages


def test_published_envelopes_match_their_schemas(
    runtime: Runtime, nats_url: str, stream_name: str
) -> None:
    customer = new_customer(runtime)
    run(runtime, "customer", "link", {"system": "erp", "external_id": "C-9"}, aggregate_id=customer)
    # Personal fields are published sealed (a string), whatever their own type.
    address = {"line1": "1 Main St", "city": "Springfield", "country": "US"}
    run(runtime, "customer", "register", {"legal_name": "Sole Trader", "billing_address": address})
    run(runtime, "customer", "change_details", {"billing_address": address}, aggregate_id=customer)
    invoice = new_invoice(runtime, customer, total="100.00")
    payment = new_payment(runtime, customer, amount="40.00")
    run(
        runtime,
        "payment",
        "apply",
        {"invoice_id": str(invoice), "amount": {"amount": "40.00", "currency": "EUR"}},
        aggregate_id=payment,
    )
    run_sync(Relay(relay_settings(runtime, nats_url, stream_name)).catch_up())
    schemas = runtime.event_schemas()
    messages = stream_messages(nats_url, stream_name)
    types = {m["envelope"]["type"] for m in messages}
    assert {"CustomerRegistered", "OrderPlaced", "InvoiceIssued", "PaymentReceived"} <= types
    for message in messages:
        envelope = message["envelope"]
        validator = Draft202012Validator(schemas[envelope["type"]])
        errors = sorted(validator.iter_errors(envelope), key=str)
        assert errors == [], f"{envelope['type']}: {errors[0].message}"
    # And a wrong message is caught: the schema is not vacuous.
    broken = dict(messages[0]["envelope"], data={"unexpected": 1})
    assert list(Draft202012Validator(schemas[broken["type"]]).iter_errors(broken))
