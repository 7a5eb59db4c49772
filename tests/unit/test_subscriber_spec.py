"""Pure pieces of the subscriber: subject matching, envelope parsing, backoff timing, specs."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.connectors.port import Connector
from adapters.nats.registry import DECLARATIONS, Declaration, UnknownSubscriber, build_specs, select
from adapters.nats.retry import backoff_delay
from adapters.nats.spec import MalformedEvent, SubscriberSpec, parse_delivery, subject_matches
from adapters.settings import Settings


class _Nothing(Connector):
    async def deliver(self, envelope: dict[str, object], idempotency_key: str) -> None:
        return None


def _spec(**overrides: object) -> SubscriberSpec:
    values: dict[str, object] = {
        "name": "erp",
        "filter_subjects": ("c.v1.>",),
        "handlers": {"*": _Nothing()},
    }
    values.update(overrides)
    return SubscriberSpec(**values)  # type: ignore[arg-type]


def test_subject_matching() -> None:
    assert subject_matches("c.v1.>", "c.v1.order.OrderPlaced.1")
    assert subject_matches("c.v1.order.*.1", "c.v1.order.OrderPlaced.1")
    assert not subject_matches("c.v1.order.*.1", "c.v1.order.OrderPlaced.2")
    assert not subject_matches("c.v1.>", "c.v1")
    assert not subject_matches("c.v1.*", "c.v1.order.x")


def test_parse_delivery_reads_the_subject_from_the_right() -> None:
    body = orjson.dumps({"event_id": "e", "version": 3})
    d = parse_delivery("my.prefix.v1.order.OrderPlaced.abc", body, 9)
    assert (d.aggregate, d.event_type, d.aggregate_id, d.version, d.key) == (
        "order",
        "OrderPlaced",
        "abc",
        3,
        ("order", "abc"),
    )
    with pytest.raises(MalformedEvent):
        parse_delivery("c.v1.order.OrderPlaced.abc", b"[1]", 1)
    with pytest.raises(MalformedEvent):
        parse_delivery("short.subject", body, 1)


@given(
    attempt=st.integers(1, 20),
    retry_after=st.none() | st.floats(0, 1e4),
    seed=st.integers(0, 2**32),
)
def test_backoff_stays_within_schedule_and_honours_retry_after(
    attempt: int, retry_after: float | None, seed: int
) -> None:
    spec = _spec(backoff=(1.0, 4.0, 16.0), jitter=0.5)
    delay = backoff_delay(spec, attempt, retry_after, random.Random(seed))
    base = spec.backoff[min(attempt, 3) - 1]
    assert delay >= (retry_after or 0.0)
    assert delay >= base * 0.5
    assert delay <= max(base, retry_after or 0.0)


def test_spec_validation_and_handler_lookup() -> None:
    special = _Nothing()
    spec = _spec(handlers={"*": _Nothing(), "OrderPlaced": special})
    assert spec.handler_for("OrderPlaced") is special
    assert spec.handler_for("OrderCancelled") is not special
    assert _spec(handlers={"OrderPlaced": special}).handler_for("Other") is None
    for bad in (
        {"name": "a.b"},
        {"filter_subjects": ()},
        {"max_deliver": 0},
        {"backoff": ()},
        {"jitter": 2.0},
        {"ack_wait": 0},
    ):
        with pytest.raises(ValueError):
            _spec(**bad)


def test_registry_builds_specs_for_configured_targets_only() -> None:
    settings = Settings(
        targets="erp=http://erp.local/events, crm=https://crm.local/in",
        nats_subject_prefix="concord",
    )
    specs = build_specs(settings, max_deliver=3)
    assert sorted(specs) == ["crm", "erp"]
    assert "concord.v1.invoice.>" in specs["erp"].filter_subjects
    assert specs["erp"].max_deliver == 3
    assert sorted(s.name for s in select(specs, None)) == ["crm", "erp"]
    with pytest.raises(UnknownSubscriber, match="no target"):
        select(specs, ["billing"])
    with pytest.raises(UnknownSubscriber, match="no subscriber 'ledger'"):
        select(specs, ["ledger"])
    with pytest.raises(UnknownSubscriber, match="undeclared"):
        build_specs(Settings(targets="ledger=http://x/"))
    with pytest.raises(ValueError, match="CONCORD_TARGETS"):
        Settings(targets="erp").target_urls()
    with pytest.raises(ValueError, match="unknown kinds"):
        Declaration("x", ("widget",))
    assert {d.name for d in DECLARATIONS} == {"erp", "crm", "billing"}
