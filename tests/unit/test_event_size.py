"""The commit-time size check's bound holds for real envelopes and headers, and its default
is the NATS servers' configured ``max_payload``."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import orjson

from adapters.nats.size import (
    ENVELOPE_OVERHEAD,
    MAX_PAYLOAD_BYTES,
    largest_field,
    published_size_bound,
)
from adapters.nats.subjects import Subjects, headers_for
from adapters.postgres.mapper import OrjsonTranscoder, PydanticMapper
from adapters.settings import Settings
from hub.application.views import envelope
from hub.domain.order import ChargeType, Order, OrderLine
from tests.unit.stamps import stamp

ROOT = Path(__file__).resolve().parents[2]


def _megabytes(text: str) -> int:
    found = re.search(r"max_payload:\s*(\d+)MB", text)
    assert found, "max_payload not set"
    return int(found.group(1)) * 1024 * 1024


def test_default_limit_is_the_servers_max_payload() -> None:
    assert Settings().max_event_bytes == MAX_PAYLOAD_BYTES
    assert _megabytes((ROOT / "ops/nats/nats.conf").read_text()) == MAX_PAYLOAD_BYTES
    stream = orjson.loads((ROOT / "ops/nats/streams/CONCORD_EVENTS.json").read_bytes())
    assert stream["max_msg_size"] in (-1, MAX_PAYLOAD_BYTES)
    assert _megabytes((ROOT / "adapters/embedded.py").read_text()) == MAX_PAYLOAD_BYTES


def test_published_size_stays_within_the_bound() -> None:
    order = Order.place(
        stamp(),
        uuid4(),
        customer_id=uuid4(),
        lines=[
            OrderLine(
                sku="S" * 100,
                quantity=Decimal(1),
                unit_price=Decimal(1),
                charge_type=ChargeType.ONE_TIME,
            )
        ],
        currency="USD",
        term_months=12,
        start_date=date(2026, 1, 1),
        booking_date=date(2026, 1, 1),
        opportunity_id="O" * 255,
    )
    order.reject(stamp(), ["r" * 1000] * 3)
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    subjects = Subjects()
    for event in order.collect_events():
        stored = mapper.to_stored_event(event)
        state = orjson.loads(stored.state)
        env = envelope(
            "order", stored.topic, stored.originator_id, stored.originator_version, state
        )
        headers = headers_for(env, "order", 2**63 - 1)
        headers["Nats-Expected-Last-Sequence"] = str(2**64 - 1)
        headers["traceparent"] = "00-" + "f" * 32 + "-" + "f" * 16 + "-01"
        headers["tracestate"] = "x" * 256
        subject = subjects.event("order", env["type"], env["aggregate_id"])
        wire = (
            len(orjson.dumps(env))
            + len(subject)
            + sum(len(k) + len(v) + 4 for k, v in headers.items())
            + len("NATS/1.0\r\n\r\n")
        )
        assert wire <= published_size_bound(stored.state), (event, wire, ENVELOPE_OVERHEAD)
    assert largest_field(stored.state)[0] == "reasons"
