"""The HTTP connector against the sandbox target: how answers map to the subscriber's two
error kinds, and the target's idempotency contract (same key → one effect, same answer)."""

from __future__ import annotations

import socket
import time

import httpx
import orjson
import pytest

from adapters.connectors.http import HttpConnector, parse_retry_after
from adapters.connectors.port import PermanentDeliveryError, TransientDeliveryError
from adapters.connectors.signing import SIGNATURE_HEADER, sign
from adapters.sandbox.target import TargetSystem, serve_in_thread
from tests.conftest import run_sync
from tests.integration.subscriber_support import envelope, new_id, wait_until


def test_http_connector_maps_answers_to_transient_and_permanent() -> None:
    async def main() -> None:
        async with TargetSystem() as target:
            connector = HttpConnector(target.url, timeout=0.3)
            env = envelope("order", new_id(), 1, "OrderPlaced")
            key = env["event_id"]
            for status in (500, 503, 408, 409):
                target.fail_next(1, status=status)
                with pytest.raises(TransientDeliveryError) as transient:
                    await connector.deliver(env, key)
                assert str(status) in transient.value.message
                assert transient.value.retry_after is None
            target.fail_next(1, status=429, retry_after=7)
            with pytest.raises(TransientDeliveryError) as limited:
                await connector.deliver(env, key)
            assert limited.value.retry_after == 7.0
            target.slow_next(1, seconds=0.5)
            with pytest.raises(TransientDeliveryError, match="timeout"):
                await connector.deliver(env, key)
            # The target applied the slow call after the client gave up: the classic case
            # the idempotency key exists for.
            await wait_until("the slow call applied", lambda: target.effects)
            target.fail_next(1, status=422)
            with pytest.raises(PermanentDeliveryError, match="422"):
                await connector.deliver(env, key)
            await connector.deliver(env, key)  # the same key again: accepted, no new effect
            assert len(target.effects) == 1 and target.calls[-1].replayed
            await connector.aclose()

    run_sync(main())


def test_unreachable_target_is_transient() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there

    async def main() -> None:
        connector = HttpConnector(f"http://127.0.0.1:{port}/events", timeout=1)
        with pytest.raises(TransientDeliveryError, match="cannot reach"):
            await connector.deliver(envelope("order", new_id(), 1, "OrderPlaced"), "k")
        await connector.aclose()

    run_sync(main())


def test_target_in_a_thread_is_programmable_over_http() -> None:
    import httpx

    with serve_in_thread("crm") as target:
        aggregate_id = new_id()
        httpx.post(
            f"{target.base_url}/_control/fail-aggregate",
            json={"aggregate_id": aggregate_id, "status": 400, "count": 1},
        )
        body = envelope("customer", aggregate_id, 1, "CustomerRegistered")
        headers = {"Idempotency-Key": body["event_id"]}
        assert httpx.post(target.url, json=body, headers=headers).status_code == 400
        assert httpx.post(target.url, json=body, headers=headers).status_code == 201
        again = httpx.post(target.url, json=body, headers=headers)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert httpx.post(target.url, json=body).status_code == 400  # no key: refused
        effects = httpx.get(f"{target.base_url}/effects").json()
        assert [e["version"] for e in effects] == [1]
        assert len(httpx.get(f"{target.base_url}/calls").json()) == 4


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    # Bogus hints are capped or ignored: they must not stall an aggregate (or crash nak).
    assert parse_retry_after("inf") == 3600.0
    assert parse_retry_after("1e999") == 3600.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("-5") == 0.0


def test_a_target_call_has_an_overall_deadline() -> None:
    """A target that answers too slowly (e.g. trickling bytes) is a transient failure after
    the spec's deadline, whatever the connector's own timeouts."""
    from adapters.nats.retry import call_target
    from adapters.nats.spec import SubscriberSpec

    async def main() -> None:
        async with TargetSystem() as target:
            connector = HttpConnector(target.url, timeout=30)
            spec = SubscriberSpec("erp", ("x.>",), {"*": connector}, call_deadline=0.3)
            target.slow_next(1, seconds=2)
            env = envelope("order", new_id(), 1, "OrderPlaced")
            with pytest.raises(TransientDeliveryError, match="did not answer within"):
                await call_target(spec, connector, env, env["event_id"])
            await connector.aclose()

    run_sync(main())


def test_target_never_regresses_to_an_older_version() -> None:
    """Versions 1..5 of one aggregate pushed by 4 parallel workers in
    random order with random delays end at version 5; older ones are not applied after."""
    import asyncio
    import random

    async def main() -> None:
        async with TargetSystem() as target:
            connector = HttpConnector(target.url, timeout=5)
            aggregate = new_id()
            envelopes = [
                envelope("customer", aggregate, v, "CustomerDetailsChanged") for v in range(1, 6)
            ]
            random.Random(14).shuffle(envelopes)
            queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
            for env in envelopes:
                queue.put_nowait(env)

            async def worker(seed: int) -> None:
                rng = random.Random(seed)
                while not queue.empty():
                    env = queue.get_nowait()
                    await asyncio.sleep(rng.uniform(0, 0.02))
                    await connector.deliver(env, str(env["event_id"]))

            await asyncio.gather(*(worker(i) for i in range(4)))
            applied = target.versions(aggregate)
            assert applied == sorted(applied), applied  # never applied an older one later
            assert target.applied_versions[str(aggregate)] == 5
            assert len(target.calls) == 5  # every version was acknowledged
            await connector.aclose()

    run_sync(main())


def test_signed_deliveries_forged_refused_rotated_accepted() -> None:
    """A target with a secret refuses anyone without it (401, nothing applied) and keeps
    accepting Concord while the secret is rotated."""

    async def main() -> None:
        async with TargetSystem(secrets=["old"]) as target:
            forger = HttpConnector(target.url, timeout=5, secrets=["guessed"])
            unsigned = HttpConnector(target.url, timeout=5)
            env = envelope("order", new_id(), 1, "OrderPlaced")
            for intruder in (forger, unsigned):
                with pytest.raises(PermanentDeliveryError, match="401"):
                    await intruder.deliver(env, env["event_id"])
                await intruder.aclose()
            assert not target.effects
            assert [c.status for c in target.calls] == [401, 401]
            # Rotation: Concord signs with new and old; the target still knows only old...
            rotating = HttpConnector(target.url, timeout=5, secrets=["new", "old"])
            await rotating.deliver(env, env["event_id"])
            # ... then the target switches to the new secret only.
            target.secrets = ("new",)
            second = envelope("order", new_id(), 1, "OrderPlaced")
            await rotating.deliver(second, second["event_id"])
            assert len(target.effects) == 2
            await rotating.aclose()
            stale = HttpConnector(target.url, timeout=5, secrets=["old"])
            with pytest.raises(PermanentDeliveryError, match="401"):
                await stale.deliver(second, "another-key")
            await stale.aclose()

    run_sync(main())


def test_replayed_old_signature_is_refused() -> None:
    """A captured, correctly signed request replayed after the tolerance window gets 401."""

    async def main() -> None:
        async with TargetSystem(secrets=["s"]) as target:
            env = envelope("order", new_id(), 1, "OrderPlaced")
            body = orjson.dumps(env)
            old = sign(body, ["s"], now=time.time() - target.tolerance_s - 5)
            async with httpx.AsyncClient() as client:
                answer = await client.post(
                    target.url,
                    content=body,
                    headers={"Idempotency-Key": env["event_id"], SIGNATURE_HEADER: old},
                )
            assert answer.status_code == 401
            assert not target.effects

    run_sync(main())
