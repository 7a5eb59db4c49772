"""The sandbox base: faults, the admin API and webhooks, on a minimal system."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from adapters.sandbox.base import Sandbox, json_response, serve_in_thread


class Tiny(Sandbox):
    name = "tiny"

    def routes(self) -> list[BaseRoute]:
        return [Route("/things", self._create, methods=["POST"])]

    async def _create(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        with self.lock:
            things = self.records.setdefault("thing", {})
            thing_id = str(len(things) + 1)
            things[thing_id] = {"id": thing_id, **body}
        self.webhooks.emit(f"evt_{thing_id}", "thing.created", {"id": f"evt_{thing_id}"})
        return json_response({"id": thing_id}, 201)


def _wait(check: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_error_faults_refuse_and_change_nothing() -> None:
    with serve_in_thread(Tiny()) as running, httpx.Client(base_url=running.url) as http:
        added = http.post(
            "/_admin/faults", json={"kind": "error", "count": 2, "status": 429, "retry_after": 3}
        )
        assert added.status_code == 201
        first = http.post("/things", json={"a": 1})
        assert first.status_code == 429 and first.headers["Retry-After"] == "3"
        assert http.post("/things", json={"a": 1}).status_code == 429
        assert running.sandbox.count("thing") == 0
        assert http.post("/things", json={"a": 1}).status_code == 201
        assert http.get("/_admin/records").json()["records"] == {"thing": 1}
        statuses = [c["status"] for c in http.get("/_admin/calls").json()["calls"]]
        assert statuses == [429, 429, 201]


def test_timeout_fault_applies_but_answers_late() -> None:
    with serve_in_thread(Tiny()) as running, httpx.Client(base_url=running.url) as http:
        http.post("/_admin/faults", json={"kind": "timeout", "seconds": 1.0})
        try:
            http.post("/things", json={"a": 1}, timeout=0.2)
        except httpx.ReadTimeout:
            pass
        else:  # pragma: no cover - the fault did not hold the answer
            raise AssertionError("expected the client to time out")
        assert running.sandbox.count("thing") == 1  # applied, the client does not know


def test_outage_window_ends() -> None:
    with serve_in_thread(Tiny()) as running, httpx.Client(base_url=running.url) as http:
        http.post("/_admin/faults", json={"kind": "outage", "seconds": 0.3, "status": 503})
        assert http.post("/things", json={}).status_code == 503
        assert http.post("/things", json={}).status_code == 503
        time.sleep(0.35)
        assert http.post("/things", json={}).status_code == 201


def test_bad_fault_is_refused_with_the_reason() -> None:
    with serve_in_thread(Tiny()) as running, httpx.Client(base_url=running.url) as http:
        for bad in (
            {"kind": "explode"},
            {"kind": "error", "count": -1},
            [1],
            {"kind": "error", "x": 1},
        ):
            answer = http.post("/_admin/faults", json=bad)
            assert answer.status_code == 422, bad
            assert answer.json()["error"] == "invalid_fault"
        assert http.get("/_admin/faults").json()["faults"] == []


def test_webhooks_retry_drop_and_duplicate() -> None:
    received: list[bytes] = []
    with serve_in_thread(_Receiver(received)) as receiver:
        tiny = Tiny()
        tiny.webhooks.backoff = (0.05,)
        with serve_in_thread(tiny) as running, httpx.Client(base_url=running.url) as http:
            http.post("/_admin/webhooks", json={"url": f"{receiver.url}/hook"})
            receiver.sandbox.faults.add({"kind": "error", "count": 2, "status": 500})
            http.post("/things", json={})  # evt_1: two 500s, then delivered
            _wait(lambda: tiny.webhooks.pending == 0)
            http.post("/_admin/faults", json={"kind": "drop_webhook"})
            http.post("/things", json={})  # evt_2: dropped
            http.post("/_admin/faults", json={"kind": "duplicate_webhook"})
            http.post("/things", json={})  # evt_3: twice
            _wait(lambda: tiny.webhooks.pending == 0)
            hooks = http.get("/_admin/webhooks").json()["deliveries"]
    assert sorted(orjson.loads(r)["id"] for r in received) == ["evt_1", "evt_3", "evt_3"]
    by_id = {d["event_id"]: d for d in hooks}
    assert by_id["evt_1"]["attempts"] == 3 and by_id["evt_1"]["delivered"]
    assert by_id["evt_2"]["dropped"] and by_id["evt_3"]["duplicated"]


class _Receiver(Sandbox):
    name = "receiver"

    def __init__(self, received: list[bytes]) -> None:
        super().__init__()
        self.received = received

    def routes(self) -> list[BaseRoute]:
        return [Route("/hook", self._hook, methods=["POST"])]

    async def _hook(self, request: Request) -> Response:
        self.received.append(await request.body())
        return json_response({})


def test_webhook_workers_send_at_once() -> None:
    """Three workers have three events in flight together (one would send them in turn:
    the receiver holds each until three are in, so one worker never gets past one)."""
    gate = _Gate(3)
    with serve_in_thread(gate) as receiver:
        tiny = Tiny()
        tiny.webhooks.workers = 3
        with serve_in_thread(tiny) as running, httpx.Client(base_url=running.url) as http:
            http.post("/_admin/webhooks", json={"url": f"{receiver.url}/hook"})
            for _ in range(3):
                http.post("/things", json={})
            _wait(lambda: tiny.webhooks.pending == 0, 30)
    assert gate.most == 3


class _Gate(Sandbox):
    """Holds every webhook until ``wanted`` are in flight (5 s at most), noting the most."""

    name = "gate"

    def __init__(self, wanted: int) -> None:
        super().__init__()
        self.wanted = wanted
        self.in_flight = self.most = 0
        self.full = asyncio.Event()

    def routes(self) -> list[BaseRoute]:
        return [Route("/hook", self._hook, methods=["POST"])]

    async def _hook(self, request: Request) -> Response:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= self.wanted:
            self.full.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.full.wait(), 5)
        self.in_flight -= 1
        return json_response({})
