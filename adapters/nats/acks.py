"""JetStream publishes whose acknowledgements always arrive, or fail at once.

Why not nats-py's ``publish_async``: when the server refuses a publish (e.g. ``wrong last
sequence``, which the relay relies on to keep order), its reply handler raises inside the
subscription callback instead of failing the future, so the future never resolves and the
relay sat out its whole acknowledgement timeout; and publishes lost with a dropped connection
also just wait. Here every reply resolves its future, and :meth:`AckedPublisher.fail_all`
(called when the connection drops) fails the rest immediately, so the relay re-reads the
stream and carries on within moments of NATS being back.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

__all__ = ["Ack", "AckedPublisher", "ConnectionLost", "PublishRefused"]


@dataclass(frozen=True)
class Ack:
    """The stream stored the message at ``seq`` (``duplicate``: it already had that id)."""

    seq: int
    duplicate: bool


class PublishRefused(Exception):
    """The stream answered with an error (``err_code`` is JetStream's, e.g. 10071)."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (code {code}, err_code {err_code})")
        self.code = code
        self.err_code = err_code


class ConnectionLost(Exception):
    """The connection dropped before the acknowledgement came."""


class AckedPublisher:
    """Publishes with a reply subject of its own and resolves one future per publish."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix = ""
        self._tokens = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Ack]] = {}

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox()
        await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_reply)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Ack]:
        token = str(next(self._tokens))
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        future.add_done_callback(lambda _: self._pending.pop(token, None))
        try:
            await self._nc.publish(
                subject, payload, reply=f"{self._prefix}.{token}", headers=headers
            )
        except BaseException:
            future.cancel()
            raise
        return future

    def fail_all(self, why: str) -> None:
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(ConnectionLost(why))

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.get(msg.subject.rpartition(".")[2])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(PublishRefused(503, 0, "no stream for this subject"))
            return
        try:
            reply = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            future.set_exception(PublishRefused(0, 0, f"unreadable reply {msg.data[:80]!r}"))
            return
        error = reply.get("error")
        if error:
            future.set_exception(
                PublishRefused(
                    int(error.get("code", 0)),
                    int(error.get("err_code", 0)),
                    str(error.get("description", "")),
                )
            )
            return
        future.set_result(Ack(int(reply["seq"]), bool(reply.get("duplicate"))))
