"""What every sandbox system shares: records, a call log, fault injection, an admin API,
webhooks sent back with retries, and a way to run it (in a test's thread or as a process).

Why a shared base: the ERP, CRM and billing sandboxes differ in their API shapes (each in its
own module) but a test drives all three the same way — count their records, make the next
calls fail, cut the system off for a while, drop or duplicate a webhook — and an operator
trying the demo meets one admin API, not three.

Faults (``POST /_admin/faults``, or :meth:`Faults.add` from Python), each optionally limited
to a method and a path prefix, each rendered in the system's own error shape:

=============  ===========================================================================
``error``      the next ``count`` calls answer ``status`` (``code``, ``retry_after``)
``latency``    the next ``count`` calls wait ``seconds`` first, then are served
``timeout``    the next ``count`` calls are applied, then answered only after ``seconds``
               (``apply: false``: not applied, answered 504): the client gave up either way,
               and only the first kind leaves an effect the client does not know about
``outage``     every call for ``seconds`` answers ``status`` (503, or 429 for a rate limit)
``drop_webhook`` / ``duplicate_webhook``  the next ``count`` webhooks are lost (never sent,
               no retry) or sent twice
=============  ===========================================================================

The admin API is for tests and the demo only; a sandbox binds to 127.0.0.1 by default and
refuses non-loopback clients (it stands in for a SaaS system, it is not one).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = [
    "FaultRule",
    "Faults",
    "Running",
    "Sandbox",
    "WebhookSender",
    "json_response",
    "serve_forever",
    "serve_in_thread",
]

FaultKind = Literal["error", "latency", "timeout", "outage", "drop_webhook", "duplicate_webhook"]
_KINDS = frozenset(FaultKind.__args__)  # type: ignore[attr-defined]
_MAX_CALLS = 10_000
_MAX_ADMIN_BODY = 64 * 1024
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "testclient"})


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON answer (orjson: the sandboxes' records hold Decimal-free plain JSON)."""
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


@dataclass
class FaultRule:
    """One injected fault; ``count`` None means "until the window ends" (outage)."""

    kind: FaultKind
    count: int | None = 1
    status: int = 503
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    apply: bool = True
    method: str | None = None
    path: str | None = None
    until: float | None = None  # monotonic deadline of an outage

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path or path.startswith(self.path)

    @classmethod
    def parse(cls, data: Any) -> FaultRule:
        """A rule from the admin API's JSON, with a clear ``ValueError`` for bad input."""
        if not isinstance(data, dict):
            raise ValueError("a fault is a JSON object")
        kind = data.get("kind")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}")
        unknown = set(data) - {f for f in cls.__dataclass_fields__ if f != "until"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        rule = cls(**data)
        if rule.count is not None and not (
            isinstance(rule.count, int) and 0 < rule.count <= 10_000
        ):
            raise ValueError("count must be an integer from 1 to 10000")
        if not (isinstance(rule.status, int) and 400 <= rule.status <= 599):
            raise ValueError("status must be an HTTP error status (400-599)")
        if not (isinstance(rule.seconds, int | float) and 0 <= rule.seconds <= 3600):
            raise ValueError("seconds must be from 0 to 3600")
        if rule.kind == "outage":
            if rule.seconds <= 0:
                raise ValueError("an outage needs seconds > 0")
            rule.count = None
            rule.until = time.monotonic() + rule.seconds
        return rule


class Faults:
    """The sandbox's active faults (thread-safe: tests add them from their own thread)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule | Mapping[str, Any]) -> FaultRule:
        parsed = rule if isinstance(rule, FaultRule) else FaultRule.parse(dict(rule))
        if parsed.kind == "outage" and parsed.until is None:
            parsed.until = time.monotonic() + parsed.seconds
            parsed.count = None
        with self._lock:
            self._rules.append(parsed)
        return parsed

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            self._expire()
            return [asdict(rule) for rule in self._rules]

    def take(self, kinds: frozenset[str], method: str = "", path: str = "") -> FaultRule | None:
        """The first live rule of one of ``kinds`` matching the call, used up by one."""
        with self._lock:
            self._expire()
            for rule in self._rules:
                if rule.kind in kinds and rule.matches(method, path):
                    if rule.count is not None:
                        rule.count -= 1
                    return rule
        return None

    def _expire(self) -> None:
        now = time.monotonic()
        self._rules = [
            r
            for r in self._rules
            if (r.count is None or r.count > 0) and (r.until is None or r.until > now)
        ]


@dataclass(frozen=True)
class CallLog:
    """One API call as the sandbox saw it (refused ones included)."""

    at: float
    method: str
    path: str
    status: int
    fault: str | None = None
    idempotency_key: str | None = None


@dataclass
class WebhookDelivery:
    """One webhook event and what became of it."""

    event_id: str
    type: str
    attempts: int = 0
    status: int | None = None
    delivered: bool = False
    dropped: bool = False
    duplicated: bool = False
    error: str | None = None


Signer = Callable[[bytes], Mapping[str, str]]


class WebhookSender:
    """Sends a sandbox's events to Concord as the real system does: signed, retried with
    backoff on anything but a 2xx, at least once (and, with a fault, twice or never).

    Runs on the sandbox server's event loop; :meth:`emit` may be called from any thread.
    Events are sent by ``workers`` senders from one queue in the order emitted: with one
    (the default, what ordered feeds such as Salesforce CDC promise) strictly one at a time;
    with more, several at once and so possibly out of order, as NetSuite user-event scripts
    and Stripe's webhooks are (one sender caps a sandbox at one round trip to Concord per
    event, far below what the real systems push). A failed one is retried later while the
    next ones go on (real systems do not hold the queue for one endpoint's error).
    """

    def __init__(
        self,
        faults: Faults,
        *,
        backoff: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0),
        max_attempts: int = 5,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError("a webhook sender needs at least one worker")
        self.workers = workers
        self.url: str | None = None
        self.signer: Signer | None = None
        self.backoff = backoff
        self.max_attempts = max_attempts
        self.deliveries: dict[str, WebhookDelivery] = {}
        self._faults = faults
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    def configure(self, url: str | None, signer: Signer | None = None) -> None:
        self.url = url
        if signer is not None:
            self.signer = signer

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._client = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self._tasks = [
            asyncio.create_task(self._run(), name=f"sandbox-webhooks-{n}")
            for n in range(self.workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()

    @property
    def pending(self) -> int:
        """Events emitted and not yet delivered, dropped or given up (tests wait for 0)."""
        with self._pending_lock:
            return self._pending

    def emit(self, event_id: str, event_type: str, body: Any) -> None:
        """Queue one event (a JSON-able body) for delivery; nothing is sent without a URL."""
        if self.url is None or self._loop is None or self._queue is None:
            return
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        delivery = WebhookDelivery(event_id, event_type)
        self.deliveries[event_id] = delivery
        if self._faults.take(frozenset({"drop_webhook"})) is not None:
            delivery.dropped = True
            return
        copies = 1
        if self._faults.take(frozenset({"duplicate_webhook"})) is not None:
            delivery.duplicated = True
            copies = 2
        with self._pending_lock:
            self._pending += copies
        for _ in range(copies):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (event_id, raw))

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            event_id, raw = await self._queue.get()
            await self._attempt(event_id, raw)

    async def _attempt(self, event_id: str, raw: bytes) -> None:
        delivery = self.deliveries[event_id]
        delivery.attempts += 1
        ok = False
        try:
            assert self._client is not None and self.url is not None
            headers = {"Content-Type": "application/json"}
            if self.signer is not None:
                headers.update(self.signer(raw))
            response = await self._client.post(self.url, content=raw, headers=headers)
            delivery.status = response.status_code
            ok = 200 <= response.status_code < 300
            delivery.error = None if ok else response.text[:300]
        except httpx.HTTPError as failed:
            delivery.error = repr(failed)
        if ok:
            delivery.delivered = True
        elif delivery.attempts < self.max_attempts:
            delay = self.backoff[min(delivery.attempts - 1, len(self.backoff) - 1)]
            assert self._loop is not None and self._queue is not None
            self._loop.call_later(delay, self._queue.put_nowait, (event_id, raw))
            return
        with self._pending_lock:
            self._pending -= 1


class Sandbox:
    """A stateful stand-in for one SaaS system. Subclasses add their API's routes and say
    how an error looks in that API (:meth:`error`); records live in :attr:`records`
    (``kind → id → record``), guarded by :attr:`lock`."""

    name = "sandbox"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, dict[str, dict[str, Any]]] = {}
        self.calls: deque[CallLog] = deque(maxlen=_MAX_CALLS)
        self.faults = Faults()
        self.webhooks = WebhookSender(self.faults)

    # --- what a system defines -------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        """The system's own API."""
        return []

    def error(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> Response:
        """An error in the system's own shape (overridden by each system)."""
        headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
        return json_response({"error": code, "message": message}, status, headers)

    def reset(self) -> None:
        """Forget every record (the admin API's reset); subclasses clear their counters."""
        with self.lock:
            self.records.clear()
            self.calls.clear()
        self.faults.clear()

    # --- what the base gives ---------------------------------------------------------------
    def count(self, kind: str) -> int:
        with self.lock:
            return len(self.records.get(kind, {}))

    def all(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.records.get(kind, {}).values()]

    def app(self) -> Starlette:
        admin = [
            Route("/_admin/faults", self._admin_faults, methods=["GET", "POST", "DELETE"]),
            Route("/_admin/records", self._admin_counts, methods=["GET"]),
            Route("/_admin/records/{kind}", self._admin_records, methods=["GET"]),
            Route("/_admin/calls", self._admin_calls, methods=["GET"]),
            Route("/_admin/webhooks", self._admin_webhooks, methods=["GET", "POST"]),
            Route("/_admin/reset", self._admin_reset, methods=["POST"]),
        ]
        app = Starlette(routes=[*admin, *self.routes()])
        app.add_middleware(_FaultMiddleware, sandbox=self)
        return app

    def log(self, request: Request, status: int, fault: str | None = None) -> None:
        self.calls.append(
            CallLog(
                time.time(),
                request.method,
                request.url.path,
                status,
                fault,
                request.headers.get("idempotency-key"),
            )
        )

    # --- admin API -------------------------------------------------------------------------
    async def _admin_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return json_response({"faults": []})
        if request.method == "POST":
            try:
                rule = self.faults.add(FaultRule.parse(await _admin_json(request)))
            except (ValueError, TypeError) as bad:
                return json_response({"error": "invalid_fault", "message": str(bad)}, 422)
            return json_response({"added": asdict(rule)}, 201)
        return json_response({"faults": self.faults.active()})

    async def _admin_counts(self, request: Request) -> Response:
        with self.lock:
            counts = {kind: len(rows) for kind, rows in self.records.items()}
        return json_response({"system": self.name, "records": counts})

    async def _admin_records(self, request: Request) -> Response:
        return json_response({"records": self.all(request.path_params["kind"])})

    async def _admin_calls(self, request: Request) -> Response:
        return json_response({"calls": [asdict(c) for c in list(self.calls)]})

    async def _admin_webhooks(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                data = await _admin_json(request)
                url = data.get("url") if isinstance(data, dict) else None
                if url is not None and not (isinstance(url, str) and url.startswith("http")):
                    raise ValueError("url must be an http(s) URL or null")
            except ValueError as bad:
                return json_response({"error": "invalid_webhook", "message": str(bad)}, 422)
            self.webhooks.configure(url)
        return json_response(
            {
                "url": self.webhooks.url,
                "pending": self.webhooks.pending,
                "deliveries": [asdict(d) for d in self.webhooks.deliveries.values()],
            }
        )

    async def _admin_reset(self, request: Request) -> Response:
        self.reset()
        return json_response({"reset": True})


async def _admin_json(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > _MAX_ADMIN_BODY:
        raise ValueError("body too large")
    try:
        return orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as bad:
        raise ValueError(f"body is not JSON: {bad}") from bad


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_CALL_FAULTS = frozenset({"error", "latency", "timeout", "outage"})


class _FaultMiddleware:
    """Pure ASGI: applies the active fault to each API call (not to the admin API) and logs
    every call with its status."""

    def __init__(self, app: Callable[..., Awaitable[None]], sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("", 0))[0]
        request = Request(scope, receive)
        if client not in _LOOPBACK:
            await self.sandbox.error(403, "FORBIDDEN", "sandboxes serve loopback only")(
                scope, receive, send
            )
            return
        path: str = scope["path"]
        if path.startswith("/_admin/"):
            await self.app(scope, receive, send)
            return
        rule = self.sandbox.faults.take(_CALL_FAULTS, scope["method"], path)
        if rule is not None and rule.kind in ("error", "outage"):
            self.sandbox.log(request, rule.status, rule.kind)
            code = rule.code or ("RATE_LIMITED" if rule.status == 429 else "UNAVAILABLE")
            message = rule.message or f"injected {rule.kind}"
            await self.sandbox.error(rule.status, code, message, rule.retry_after)(
                scope, receive, send
            )
            return
        if rule is not None and rule.kind == "latency":
            await asyncio.sleep(rule.seconds)
        if rule is not None and rule.kind == "timeout" and not rule.apply:
            await asyncio.sleep(rule.seconds)
            self.sandbox.log(request, 504, "timeout")
            await self.sandbox.error(504, "TIMEOUT", "injected timeout")(scope, receive, send)
            return
        status_box: list[int] = []
        held: list[dict[str, Any]] = []

        async def logged_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # Logged before the answer leaves: a client that reads the call log right
                # after its response must find its own call there.
                status_box.append(message["status"])
                self.sandbox.log(request, message["status"], rule.kind if rule else None)
            if rule is not None and rule.kind == "timeout":
                held.append(message)  # applied; the answer comes late
                return
            await send(message)

        await self.app(scope, receive, logged_send)
        if not status_box:
            self.sandbox.log(request, 500, rule.kind if rule else None)
        if held:
            await asyncio.sleep(rule.seconds if rule else 0)
            for late in held:
                await send(late)


@dataclass
class Running:
    """A sandbox being served: its base URL, and the sandbox itself for direct reads."""

    sandbox: Sandbox
    url: str
    server: uvicorn.Server = field(repr=False)


@contextlib.contextmanager
def serve_in_thread(sandbox: Sandbox, port: int = 0, host: str = "127.0.0.1") -> Iterator[Running]:
    """Serve ``sandbox`` on its own event loop in a daemon thread (tests, ``concord demo``)."""
    server = uvicorn.Server(_config(sandbox, host, port))
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(_serve(sandbox, server))

    thread = threading.Thread(target=run, name=f"sandbox-{sandbox.name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError(f"sandbox {sandbox.name} did not start (port {port} taken?)")
    started.set()
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(sandbox, f"http://{host}:{bound}", server)
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()


def serve_forever(sandbox: Sandbox, port: int, host: str = "127.0.0.1") -> None:
    """``concord sandbox <system>``: serve in the foreground until Ctrl-C."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sandbox, uvicorn.Server(_config(sandbox, host, port))))


def _config(sandbox: Sandbox, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        sandbox.app(),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        loop="asyncio",
    )


async def _serve(sandbox: Sandbox, server: uvicorn.Server) -> None:
    """The server and the webhook sender on one loop (webhooks go out while it serves)."""
    await sandbox.webhooks.start()
    try:
        await server.serve()
    finally:
        await sandbox.webhooks.stop()
