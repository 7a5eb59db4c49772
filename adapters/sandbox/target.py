"""A stand-in target system for subscribers: a tiny stateful HTTP server.

Why hand-written on asyncio streams rather than an ASGI app: it runs inside the test's (or the
benchmark's) own event loop without a second server stack, starts in a millisecond on a random
port, and its state is plain Python that a test reads directly. It behaves like an idempotent
SaaS API (Stripe's ``Idempotency-Key`` contract): the same key twice has one effect and
returns the original response, marked ``Idempotent-Replayed: true``.

Failures are programmable, from Python or over HTTP (for tests that drive a separate
process): fail the next N calls with a status (500, 429 + ``Retry-After``, 400 ...), answer
slowly (to provoke client timeouts), or always refuse one aggregate id.

Given ``secrets``, it verifies ``Concord-Signature`` the way a real receiver should (see
``adapters.connectors.signing.verify``) and answers 401 to an unsigned, forged or expired
event before looking at it, applying nothing.

HTTP surface::

    POST /<anything>               an event envelope (JSON) with an Idempotency-Key header
    GET  /effects, GET /calls      what happened, as JSON
    POST /_control/fail            {"count": 2, "status": 429, "retry_after": 1}
    POST /_control/slow            {"count": 1, "seconds": 5}
    POST /_control/fail-aggregate  {"aggregate_id": "...", "status": 400}
    POST /_control/reset

``python -m adapters.sandbox.target --port 8900`` runs one standalone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from adapters.connectors.signing import TOLERANCE_S, verify

__all__ = ["Call", "Effect", "TargetSystem", "serve_in_thread"]

_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Effect:
    """One applied change: what a real system would have written, once per key."""

    seq: int
    key: str
    aggregate: str
    aggregate_id: str
    version: int
    type: str
    status: int
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class Call:
    """One request as received (including refused and replayed ones)."""

    key: str
    aggregate_id: str
    version: int
    status: int
    replayed: bool
    at: float
    """``time.monotonic()`` when the request arrived."""


@dataclass
class _Failure:
    count: int
    status: int
    retry_after: float | None


class TargetSystem:
    """The stateful server. ``async with TargetSystem() as t: ... t.url ...``."""

    def __init__(
        self,
        name: str = "target",
        *,
        secrets: Sequence[str] = (),
        tolerance_s: float = TOLERANCE_S,
    ) -> None:
        self.name = name
        self.secrets: tuple[str, ...] = tuple(secrets)
        """Accepted signing secrets; empty means signatures are not checked."""
        self.tolerance_s = tolerance_s
        self.effects: dict[str, Effect] = {}
        self.applied_versions: dict[str, int] = {}
        """Highest version applied per aggregate: older versions are not applied again."""
        self.calls: list[Call] = []
        self._failures: list[_Failure] = []
        self._slow: list[tuple[int, float]] = []
        self._bad_aggregates: dict[str, _Failure] = {}
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # ------------------------------------------------------------------- programming

    def fail_next(self, count: int, status: int = 500, retry_after: float | None = None) -> None:
        """Answer the next ``count`` calls with ``status`` (no effect is applied)."""
        self._failures.append(_Failure(count, status, retry_after))

    def slow_next(self, count: int, seconds: float) -> None:
        """Delay the next ``count`` answers (the effect is applied after the delay)."""
        self._slow.append((count, seconds))

    def fail_aggregate(
        self,
        aggregate_id: str,
        status: int = 400,
        count: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Refuse calls about one aggregate: the next ``count`` ones, or every one until
        :meth:`heal_aggregate` (``count=None``)."""
        self._bad_aggregates[str(aggregate_id)] = _Failure(
            -1 if count is None else count, status, retry_after
        )

    def heal_aggregate(self, aggregate_id: str) -> None:
        self._bad_aggregates.pop(str(aggregate_id), None)

    def reset(self) -> None:
        self.effects.clear()
        self.applied_versions.clear()
        self.calls.clear()
        self._failures.clear()
        self._slow.clear()
        self._bad_aggregates.clear()

    # ---------------------------------------------------------------------- reading

    def versions(self, aggregate_id: str) -> list[int]:
        """Versions of one aggregate in the order their effects were applied."""
        return [e.version for e in self.effects.values() if e.aggregate_id == str(aggregate_id)]

    def calls_for(self, key: str) -> list[Call]:
        return [c for c in self.calls if c.key == key]

    # ---------------------------------------------------------------------- serving

    @property
    def url(self) -> str:
        """Where to POST events (any path works; this one reads well in logs)."""
        return f"http://127.0.0.1:{self.port}/{self.name}/events"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._connection, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def __aenter__(self) -> TargetSystem:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                method, path, headers = _parse_head(head)
                length = int(headers.get("content-length", "0") or 0)
                if headers.get("transfer-encoding") or length > _MAX_BODY:
                    await _respond(writer, 411 if length <= _MAX_BODY else 413, b"{}", {})
                    return
                body = await reader.readexactly(length) if length else b""
                status, payload, extra = await self._handle(method, path, headers, body)
                await _respond(writer, status, payload, extra)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if method == "GET" and path == "/effects":
            return 200, orjson.dumps([_public(e) for e in self.effects.values()]), {}
        if method == "GET" and path == "/calls":
            return 200, orjson.dumps([asdict(c) for c in self.calls]), {}
        if method == "POST" and path.startswith("/_control/"):
            return self._control(path.removeprefix("/_control/"), body)
        if method != "POST":
            return 404, b'{"error": "not found"}', {}
        return await self._event(headers, body)

    def _control(self, action: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        args: dict[str, Any] = orjson.loads(body) if body else {}
        if action == "fail":
            self.fail_next(
                int(args.get("count", 1)), int(args.get("status", 500)), args.get("retry_after")
            )
        elif action == "slow":
            self.slow_next(int(args.get("count", 1)), float(args["seconds"]))
        elif action == "fail-aggregate":
            self.fail_aggregate(
                str(args["aggregate_id"]),
                int(args.get("status", 400)),
                args.get("count"),
                args.get("retry_after"),
            )
        elif action == "heal-aggregate":
            self.heal_aggregate(str(args["aggregate_id"]))
        elif action == "reset":
            self.reset()
        else:
            return 404, b'{"error": "unknown control action"}', {}
        return 200, b'{"ok": true}', {}

    async def _event(
        self, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        arrived = time.monotonic()
        key = headers.get("idempotency-key", "")
        if self.secrets and not verify(
            headers.get("concord-signature"), body, self.secrets, tolerance_s=self.tolerance_s
        ):
            self._record(Call(key, "", 0, 401, False, arrived))
            return 401, b'{"error": "missing, forged or expired Concord-Signature"}', {}
        try:
            envelope = orjson.loads(body)
            aggregate_id = str(envelope["aggregate_id"])
            version = int(envelope["version"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self._record(Call(key, "", 0, 400, False, arrived))
            return 400, b'{"error": "body must be a Concord event envelope"}', {}
        if self._slow:
            count, seconds = self._slow[0]
            self._slow[0] = (count - 1, seconds)
            if count <= 1:
                self._slow.pop(0)
            await asyncio.sleep(seconds)
        if self._failures:
            failure = self._failures[0]
            failure.count -= 1
            if failure.count <= 0:
                self._failures.pop(0)
            self._record(Call(key, aggregate_id, version, failure.status, False, arrived))
            extra = (
                {} if failure.retry_after is None else {"Retry-After": _num(failure.retry_after)}
            )
            return failure.status, b'{"error": "injected failure"}', extra
        bad = self._bad_aggregates.get(aggregate_id)
        if bad is not None:
            if bad.count > 0:
                bad.count -= 1
                if bad.count == 0:
                    del self._bad_aggregates[aggregate_id]
            self._record(Call(key, aggregate_id, version, bad.status, False, arrived))
            extra = {} if bad.retry_after is None else {"Retry-After": _num(bad.retry_after)}
            return bad.status, b'{"error": "this record is refused"}', extra
        if not key:
            self._record(Call(key, aggregate_id, version, 400, False, arrived))
            return 400, b'{"error": "Idempotency-Key header is required"}', {}
        existing = self.effects.get(key)
        if existing is not None:
            self._record(Call(key, aggregate_id, version, existing.status, True, arrived))
            return existing.status, existing.body, {"Idempotent-Replayed": "true"}
        applied = self.applied_versions.get(aggregate_id, 0)
        if version <= applied:
            # Like a real system guarding on a record version: an older change arriving
            # after a newer one is acknowledged but not applied
            # (tests/integration/test_subscriber_connector.py checks it).
            self._record(Call(key, aggregate_id, version, 200, False, arrived))
            return 200, orjson.dumps({"superseded_by": applied, "version": version}), {}
        self.applied_versions[aggregate_id] = version
        seq = len(self.effects) + 1
        reply = orjson.dumps(
            {"effect": seq, "key": key, "aggregate_id": aggregate_id, "version": version}
        )
        self.effects[key] = Effect(
            seq,
            key,
            str(envelope.get("aggregate", "")),
            aggregate_id,
            version,
            str(envelope.get("type", "")),
            201,
            reply,
        )
        self._record(Call(key, aggregate_id, version, 201, False, arrived))
        return 201, reply, {}

    def _record(self, call: Call) -> None:
        self.calls.append(call)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _public(effect: Effect) -> dict[str, Any]:
    data = asdict(effect)
    data.pop("body")
    return data


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return method, path.split("?", 1)[0], headers


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, extra: dict[str, str]
) -> None:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


@contextlib.contextmanager
def serve_in_thread(
    name: str = "target", port: int = 0, secrets: Sequence[str] = ()
) -> Iterator[TargetSystem]:
    """Run a target on its own event loop in a daemon thread (for sync tests / processes)."""
    target = TargetSystem(name, secrets=secrets)
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(target.start(port=port))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name=f"sandbox-{name}", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("sandbox target did not start")
    try:
        yield target
    finally:
        asyncio.run_coroutine_threadsafe(target.stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def main() -> None:  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description="Run a sandbox target system.")
    parser.add_argument("--name", default="target")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument(
        "--secret", action="append", default=[], help="verify Concord-Signature (repeatable)"
    )
    args = parser.parse_args()

    async def run() -> None:
        target = TargetSystem(args.name, secrets=args.secret)
        await target.start(port=args.port)
        print(f"sandbox target {args.name!r} listening: POST events to {target.url}")
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":  # pragma: no cover
    main()
