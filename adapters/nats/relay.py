"""The outbox relay: every committed event onto JetStream, exactly once, in store order.

The per-aggregate event tables *are* the outbox. The relay follows each store's notification
log (woken by the NOTIFY every insert transaction sends, with a slow poll as a safety net) and
publishes each event with ``Nats-Msg-Id`` = its event id.

Exactly once without trusting the stream's contents: after each acknowledgement the relay
writes, per stream and store, the last event it published (position, event id, stream
sequence) to ``concord_relay_published`` in PostgreSQL. On start, and after any doubt, it
confirms that record against the stream (the message at that sequence must carry that event
id), then walks the store's later messages and matches each, by ``Nats-Msg-Id`` and content,
against the next events it would publish: those are its own publishes acknowledged just
before a crash, before the PostgreSQL write. Anything else is a message the relay did not
publish: it is reported (error log and the ``concord.relay.foreign`` counter) and never moves
a position, whatever its headers claim. So neither a crash at any point nor a forged message
loses or repeats an event, however long the relay was down (the server's duplicate window is
only a second line of defence).

Every message also carries ``Nats-Expected-Last-Sequence`` and the id of the message before
it (``Nats-Expected-Last-Msg-Id``): the relay knows what each message must follow. Many
publishes are in flight at once, yet if one is lost — or a foreign message slips in between
— the ones after it are refused rather than stored out of order, and the relay re-reads the
stream and carries on.

Only one relay publishes at a time: it holds a PostgreSQL advisory lock; others wait as
warm standbys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import metrics, trace
from opentelemetry.metrics import Observation
from opentelemetry.propagate import inject
from psycopg import sql

from adapters.bootstrap import Connections
from adapters.nats.acks import Ack, AckedPublisher, PublishRefused
from adapters.nats.subjects import MSG_ID, Subjects, headers_for, stream_config
from adapters.postgres.schema import create_schema
from adapters.postgres.stores import store_class
from adapters.settings import Settings
from hub.application.views import envelope
from hub.domain.catalog import AGGREGATES

log = logging.getLogger("concord.relay")
_tracer = trace.get_tracer("concord.relay")
_meter = metrics.get_meter("concord.relay")
_published = _meter.create_counter(
    "concord.relay.published", unit="{event}", description="events published, per store"
)
_foreign = _meter.create_counter(
    "concord.relay.foreign",
    unit="{message}",
    description="messages found in the stream that the relay did not publish, per store",
)
_LIVE: weakref.WeakSet[Relay] = weakref.WeakSet()


def _observe_stuck(_: Any) -> list[Observation]:
    return [
        Observation(1 if store in relay.stuck else 0, {"store": store, "stream": relay.stream})
        for relay in list(_LIVE)
        for store in relay.stats.positions
    ]


_meter.create_observable_gauge(
    "concord.relay.stuck",
    [_observe_stuck],
    unit="{store}",
    description="1 while a store cannot publish its next event (see the relay's error log)",
)


def _observe_lag(_: Any) -> list[Observation]:
    return [
        Observation(n, {"store": store, "stream": relay.stream})
        for relay in list(_LIVE)
        for store, n in relay.stats.lag.items()
    ]


_meter.create_observable_gauge(
    "concord.relay.lag",
    [_observe_lag],
    unit="{event}",
    description="events committed but not yet published, per store",
)

WRONG_LAST_SEQUENCE = 10071
WRONG_LAST_MSG_ID = 10070
ACK_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 1.0
#: What NATS adds around the headers' names and values (status line, separators, traceparent
#: and the expected-sequence headers added after the size check).
_HEADERS_BOUND = 512


@dataclass(frozen=True)
class Feed:
    """One store's notification log as the relay sees it."""

    store: str  # "orders"
    entity: str  # "order"

    @property
    def table(self) -> str:
        return f"{self.store}_events"


def feeds() -> list[Feed]:
    return [Feed(store_class(cls).name, cls.entity) for cls in AGGREGATES]


def outgoing(
    feed: Feed, row: Sequence[Any]
) -> tuple[dict[str, Any], dict[str, Any], bytes, dict[str, str], int]:
    """One stored event as the relay publishes it: (stored state, envelope, payload,
    headers, size NATS counts against ``max_payload``).

    Shared with the health check (``adapters.health``), which tells a stuck store from
    PostgreSQL alone by sizing the store's next unpublished event exactly as the relay does.
    """
    position, originator_id, version, topic, state = row
    stored = orjson.loads(state)
    env = envelope(feed.entity, topic, originator_id, version, stored)
    payload = orjson.dumps(env)
    headers = headers_for(env, feed.store, position)
    size = len(payload) + _HEADERS_BOUND + sum(len(k) + len(v) for k, v in headers.items())
    return stored, env, payload, headers, size


def events_after(schema: str, feed: Feed) -> sql.Composed:
    """A store's events after a position (``%s``), oldest first, at most ``%s``: the rows
    :func:`outgoing` takes."""
    return sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state "
        "FROM {}.{} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
    ).format(sql.Identifier(schema), sql.Identifier(feed.table))


def stuck_reason(event_id: str, position: int, size: int, limit: int) -> str:
    """Why a store cannot publish its next event (the relay's log, ``concord relay``,
    ``GET /v1/health``)."""
    return (
        f"event {event_id} (position {position}) is {size} bytes with headers, above "
        f"the NATS max_payload of {limit}"
    )


def relay_lock_key(settings: Settings) -> str:
    """The advisory lock the publishing relay holds (one per schema and stream): held
    means some process relays now (how ``GET /v1/health`` tells, from any process)."""
    return f"concord-relay:{settings.schema_name}:{settings.nats_stream}"


@dataclass
class _Batch:
    """Messages sent but not yet acknowledged."""

    feed: Feed
    positions: list[int]
    event_ids: list[str]
    futures: list[asyncio.Future[Ack]]


@dataclass(frozen=True)
class Published:
    """The last event the relay knows it published from one store (PostgreSQL's record)."""

    position: int = 0
    event_id: str = ""
    stream_seq: int = 0


class RelayBusy(Exception):
    """Another relay holds the lead for this stream."""


class RelayInterrupted(Exception):
    """The stream refused or lost a publish; positions must be re-read from the stream."""


@dataclass
class RelayStats:
    published: int = 0
    reconciliations: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    """Per store: events committed but not yet in the stream (as of the last round)."""
    foreign: dict[int, str] = field(default_factory=dict)
    """Stream sequence -> subject of each message found that the relay did not publish."""


class Relay:
    """Publishes the stores' events to JetStream; see the module docstring for guarantees."""

    def __init__(
        self,
        settings: Settings,
        *,
        connections: Connections | None = None,
        crash_hook: Callable[[str, int], None] | None = None,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        """``connections``: the composition root's (``Connections(settings)`` if not given)."""
        if not settings.database_url or not settings.nats_url:
            raise ValueError("the relay needs CONCORD_DATABASE_URL and CONCORD_NATS_URL")
        self.settings = settings
        self.connections = connections or Connections(settings)
        self.subjects = Subjects(settings.nats_subject_prefix)
        self.stream = settings.nats_stream
        self.feeds = feeds()
        self.schema_name = settings.schema_name
        self.schema = sql.Identifier(settings.schema_name)
        self.stats = RelayStats()
        self.crash_hook = crash_hook or crash_hook_from_env()
        self.ack_timeout_s = ack_timeout_s
        self.poll_interval_s = POLL_INTERVAL_S
        self._next_seq = 0  # the stream sequence the next message must follow
        self._last_sent: str | None = None  # the event id the next message must follow
        self._published: dict[str, Published] = {}
        self._tables_ready = False
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._publisher: AckedPublisher | None = None
        self._db: psycopg.AsyncConnection[Any] | None = None
        self._listen: psycopg.AsyncConnection[Any] | None = None
        self.ready = asyncio.Event()
        self.stuck: dict[str, str] = {}
        """Store -> why its next event cannot be published (e.g. larger than NATS's
        ``max_payload``). The other stores keep flowing; this one waits for the fix."""
        _LIVE.add(self)

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set.

        Whatever goes wrong — NATS or PostgreSQL restarting, a lost acknowledgement, a moved
        sequence, an event that cannot be published — the relay drops its connections,
        waits (backing off to 1 s), reconnects, takes the lead again and re-reads the
        stream before publishing anything. It never skips an event: one that keeps failing
        stops the line, and the log says which and why."""
        delay = 0.2
        while not stop.is_set():
            try:
                await self._connect()
                if not await self._lead(stop):
                    return
                await self.ensure_stream()
                await self.reconcile()
                self.ready.set()
                delay = 0.2
                while not stop.is_set():
                    if await self.pump() == 0:
                        await self._wait_for_commits(stop)
            except asyncio.CancelledError:
                raise
            except Exception as why:
                log.warning(
                    "relay: %s (%s); reconnecting in %.1f s and re-reading the stream",
                    why,
                    type(why).__name__,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                # Capped at 1 s: NATS or PostgreSQL back means publishing again within
                # about a second (a lost connection fails the pending acks at once).
                delay = min(delay * 2, 1.0)
            finally:
                self.ready.clear()
                await self._close()

    async def catch_up(self, attempts: int = 20) -> int:
        """Publish everything committed so far, then return how many were published.

        Refuses to run beside a live relay (it would only contend for the stream)."""
        await self._connect()
        try:
            if not await self._lead(None):
                raise RelayBusy(
                    "another relay is publishing this stream (e.g. inside `concord serve`); "
                    "it publishes everything already"
                )
            await self.ensure_stream()
            await self.reconcile()
            total = 0
            for _ in range(attempts):
                try:
                    published = await self.pump()
                except RelayInterrupted as why:
                    log.warning("relay: %s; re-reading positions from the stream", why)
                    await asyncio.sleep(0.2)
                    await self.reconcile()
                    continue
                if published == 0:
                    return total
                total += published
            raise RelayInterrupted(f"gave up after {attempts} interrupted rounds")
        finally:
            await self._close()

    async def _connect(self) -> None:
        assert self.settings.database_url and self.settings.nats_url

        async def disconnected() -> None:
            if self._publisher is not None:
                self._publisher.fail_all("NATS connection lost")

        self._nc = await self.connections.nats("relay", disconnected_cb=disconnected)
        self._js = self._nc.jetstream()
        self._publisher = AckedPublisher(self._nc)
        await self._publisher.start()
        self._db = await self.connections.postgres_async("relay")
        self._listen = await self.connections.postgres_async("relay")
        for feed in self.feeds:
            await self._listen.execute(sql.SQL("LISTEN {}").format(sql.Identifier(feed.table)))
        if not self._tables_ready:  # the relay may run alone (`concord relay`)
            await asyncio.to_thread(_create_tables, self.connections, self.schema_name)
            self._tables_ready = True

    async def _close(self) -> None:
        for conn in (self._listen, self._db):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
        if self._nc is not None:
            # close, not drain: whatever is unacknowledged is re-read from the stream on the
            # next start, and drain can wait its full 30 s on a connection NATS dropped.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 5)
        self._nc = self._js = self._db = self._listen = self._publisher = None

    async def _lead(self, stop: asyncio.Event | None) -> bool:
        """Take the advisory lock (one publisher per stream): wait for it until ``stop``,
        or with ``stop=None`` try once. The lock lives on the LISTEN connection, so losing
        that connection loses the lead too, and the relay reconnects and asks again."""
        assert self._listen is not None
        key = relay_lock_key(self.settings)
        while True:
            row = await (
                await self._listen.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,))
            ).fetchone()
            if row and row[0]:
                return True
            if stop is None:
                return False
            log.info("relay: another relay is publishing; standing by")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            if stop.is_set():
                return False

    async def _wait_for_commits(self, stop: asyncio.Event) -> None:
        """Sleep until a store NOTIFYs, ``stop`` is set, or the poll interval passes.

        A broken LISTEN connection raises here (instead of spinning), so ``run`` reconnects.
        """
        assert self._listen is not None
        gen = self._listen.notifies(timeout=self.poll_interval_s, stop_after=1)
        waiter = asyncio.ensure_future(_drain(gen))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
            if not waiter.done():
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await waiter
        if waiter.done() and not waiter.cancelled() and waiter.exception() is not None:
            raise RelayInterrupted(f"LISTEN connection failed: {waiter.exception()}")

    # -- stream -------------------------------------------------------------------------

    async def ensure_stream(self) -> None:
        """Create the stream, or update it to the configured definition."""
        assert self._js is not None
        config = stream_config(
            self.stream,
            self.subjects,
            self.settings.nats_replicas,
            self.settings.nats_duplicate_window_s,
        )
        try:
            await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(config)
        else:
            with contextlib.suppress(BadRequestError):  # e.g. replicas cannot change here
                await self._js.update_stream(config)

    async def reconcile(self) -> dict[str, int]:
        """Positions = PostgreSQL's record of what was published, confirmed by the stream.

        Per store: the message at the recorded sequence must carry the recorded event id;
        the store's later messages are matched against the events that follow (publishes
        acknowledged before a crash let the relay write them down); any other message is
        foreign: reported, skipped, never trusted."""
        assert self._js is not None
        info = await self._js.stream_info(self.stream)
        self._next_seq = info.state.last_seq
        self._last_sent = None
        for feed in self.feeds:
            published = await self._load(feed)
            await self._confirm(feed, published)
            published = await self._walk(feed, published)
            self._published[feed.store] = published
            self.stats.positions[feed.store] = published.position
        self.stats.reconciliations += 1
        return dict(self.stats.positions)

    async def _load(self, feed: Feed) -> Published:
        assert self._db is not None
        cursor = await self._db.execute(
            sql.SQL(
                "SELECT position, event_id, stream_seq FROM {}.concord_relay_published "
                "WHERE stream = %s AND store = %s"
            ).format(self.schema),
            (self.stream, feed.store),
        )
        row = await cursor.fetchone()
        return Published(int(row[0]), str(row[1]), int(row[2])) if row else Published()

    async def _confirm(self, feed: Feed, published: Published) -> None:
        """The stream must still hold the message PostgreSQL says was published last."""
        assert self._js is not None
        if not published.stream_seq:
            return
        try:
            msg = await self._js.get_msg(self.stream, published.stream_seq)
        except NotFoundError:
            msg = None
        found = (msg.headers or {}).get(MSG_ID) if msg is not None else None
        if found != published.event_id:
            raise RelayInterrupted(
                f"stream {self.stream} does not hold event {published.event_id} of store "
                f"{feed.store} at sequence {published.stream_seq} (found {found!r}), yet "
                "PostgreSQL records it as published: the stream was replaced or altered. "
                f"Fix: restore the stream, or delete the rows of stream {self.stream!r} from "
                f"{self.schema_name}.concord_relay_published to publish the stores again"
            )

    async def _walk(self, feed: Feed, published: Published) -> Published:
        """Advance over the store's messages after ``published`` that are our own events."""
        assert self._js is not None
        subject = self.subjects.aggregate(feed.entity)
        expected: list[tuple[str, int, bytes]] = []
        seq = published.stream_seq + 1
        while True:
            try:
                msg = await self._js.get_msg(self.stream, seq, subject=subject, next=True)
            except NotFoundError:
                return published
            found_seq = int(msg.seq or seq)
            seq = found_seq + 1
            if not expected:
                expected = [
                    (env["event_id"], position, orjson.dumps(env))
                    for position, env in await self._envelopes(feed, published.position)
                ]
                expected.reverse()  # pop() takes the next one
            event_id = (msg.headers or {}).get(MSG_ID)
            if expected and expected[-1][0] == event_id and expected[-1][2] == msg.data:
                next_id, position, _ = expected.pop()
                published = Published(position, next_id, found_seq)
                await self._record(feed, published)
            else:
                self._report_foreign(feed, found_seq, str(msg.subject), event_id)

    def _report_foreign(self, feed: Feed, seq: int, subject: str, event_id: str | None) -> None:
        if seq in self.stats.foreign:
            return
        self.stats.foreign[seq] = subject
        _foreign.add(1, {"store": feed.store, "stream": self.stream})
        log.error(
            "relay: stream %s holds a message the relay did not publish: sequence %d, subject "
            "%s, Nats-Msg-Id %r. It is ignored (no position moves); subscribers may have "
            "received it. Fix: find who can publish on %s (only the relay's identity should).",
            self.stream,
            seq,
            subject,
            event_id,
            self.subjects.all,
        )

    async def _envelopes(self, feed: Feed, after: int) -> list[tuple[int, dict[str, Any]]]:
        return [
            (row[0], envelope(feed.entity, row[3], row[1], row[2], orjson.loads(row[4])))
            for row in await self._read(feed, after)
        ]

    # -- publishing ---------------------------------------------------------------------

    async def pump(self) -> int:
        """Publish until every store is drained (as of now); returns events published.

        Two batches are kept in flight: the next one is read, built and sent while the
        previous one's acknowledgements are still arriving. Their expected sequences chain,
        so if the first fails the second is refused too, never stored ahead of it.
        """
        total = 0
        sent = dict(self.stats.positions)
        in_flight: list[_Batch] = []
        try:
            progress = True
            while progress:
                progress = False
                for feed in self.feeds:
                    rows = await self._read(feed, sent.get(feed.store, 0))
                    if not rows:
                        self._unstick(feed)
                        continue
                    batch = await self._send(feed, rows)
                    if batch is None:  # its next event cannot be published: stuck
                        continue
                    progress = True
                    in_flight.append(batch)
                    sent[feed.store] = batch.positions[-1]
                    if len(in_flight) > 1:
                        total += await self._settle(in_flight.pop(0))
            while in_flight:
                total += await self._settle(in_flight.pop(0))
            await self._measure_lag()
        finally:
            # Publishes lost with a connection never resolve; cancelling them frees their
            # slots in the client's in-flight limit (else, after a few NATS restarts, the
            # next publish would wait forever).
            for batch in in_flight:
                for future in batch.futures:
                    future.cancel()
        return total

    async def _measure_lag(self) -> None:
        """Committed-but-unpublished events per store (for the ``concord.relay.lag`` gauge)."""
        assert self._db is not None
        for feed in self.feeds:
            try:
                cursor = await self._db.execute(
                    sql.SQL("SELECT max(notification_id) FROM {}.{}").format(
                        self.schema, sql.Identifier(feed.table)
                    )
                )
            except psycopg.errors.UndefinedTable:
                continue
            row = await cursor.fetchone()
            newest = int(row[0] or 0) if row else 0
            self.stats.lag[feed.store] = max(0, newest - self.stats.positions.get(feed.store, 0))

    async def _read(self, feed: Feed, after: int) -> list[tuple[Any, ...]]:
        assert self._db is not None
        try:
            cursor = await self._db.execute(
                events_after(self.schema_name, feed), (after, self.settings.relay_batch)
            )
        except psycopg.errors.UndefinedTable:
            return []  # no hub has created this store yet: nothing to publish from it
        return await cursor.fetchall()

    async def _send(self, feed: Feed, rows: Sequence[tuple[Any, ...]]) -> _Batch | None:
        """Publish a batch without waiting: each message expects the one before it.

        Stops before an event NATS would refuse for its size (the store is then stuck, see
        :meth:`_stick`); None when that is the first one, i.e. nothing could be sent."""
        assert self._publisher is not None and self._nc is not None
        max_payload = self._nc.max_payload
        with _tracer.start_as_current_span("relay.publish") as span:
            span.set_attribute("concord.store", feed.store)
            span.set_attribute("concord.events", len(rows))
            futures: list[asyncio.Future[Ack]] = []
            event_ids: list[str] = []
            first_seq = self._next_seq
            try:
                for offset, row in enumerate(rows):
                    position = row[0]
                    stored, env, payload, headers, size = outgoing(feed, row)
                    if size > max_payload:
                        self._stick(feed, env["event_id"], position, size, max_payload)
                        break
                    self._unstick(feed)
                    headers["Nats-Expected-Last-Sequence"] = str(first_seq + offset)
                    if self._last_sent is not None:
                        # The sequence alone does not hold the chain: if a foreign message
                        # takes the place of a refused one, the next one's expected sequence
                        # matches again. The previous message's id does not.
                        headers["Nats-Expected-Last-Msg-Id"] = self._last_sent
                    self._last_sent = env["event_id"]
                    # Continue the trace of the request that made the event, else the relay's.
                    traceparent = stored.get("traceparent")
                    if traceparent:
                        headers["traceparent"] = traceparent
                    else:
                        inject(headers)
                    subject = self.subjects.event(feed.entity, env["type"], env["aggregate_id"])
                    event_ids.append(env["event_id"])
                    futures.append(await self._publisher.publish(subject, payload, headers))
            except BaseException:
                for future in futures:  # never leave lost publishes holding client slots
                    future.cancel()
                raise
            self._next_seq = first_seq + len(futures)
        if not futures:
            return None
        self._crash("after_publish_sent", len(futures))
        return _Batch(feed, [row[0] for row in rows[: len(futures)]], event_ids, futures)

    def _stick(self, feed: Feed, event_id: str, position: int, size: int, limit: int) -> None:
        """Report, once per event, a store whose next event NATS cannot take.

        Skipping it would break the store's order (and lose a committed fact), so the store
        waits; the commit-time size check normally makes this impossible, so it is loud."""
        reason = stuck_reason(event_id, position, size, limit)
        if self.stuck.get(feed.store) == reason:
            return
        self.stuck[feed.store] = reason
        log.error(
            "relay: store %s is STUCK: %s; its later events wait behind it, the other stores "
            "keep flowing. Fix: raise max_payload of the NATS servers above %d bytes "
            "(ops/nats/nats.conf, the embedded config) and restart them; the relay then "
            "publishes it and carries on by itself.",
            feed.store,
            reason,
            size,
        )

    def _unstick(self, feed: Feed) -> None:
        if self.stuck.pop(feed.store, None) is not None:
            log.warning("relay: store %s is flowing again", feed.store)

    async def _settle(self, batch: _Batch) -> int:
        """Wait for a batch's acknowledgements; advance positions over the stored prefix."""
        try:
            acks = await asyncio.wait_for(
                asyncio.gather(*batch.futures, return_exceptions=True), self.ack_timeout_s
            )
        except TimeoutError:
            raise RelayInterrupted(f"no acknowledgement within {self.ack_timeout_s:g} s") from None
        stored = 0
        last: Published | None = None
        failure: RelayInterrupted | None = None
        for position, event_id, ack in zip(batch.positions, batch.event_ids, acks, strict=True):
            if isinstance(ack, PublishRefused) and ack.err_code in (
                WRONG_LAST_SEQUENCE,
                WRONG_LAST_MSG_ID,
            ):
                failure = RelayInterrupted("the stream's last sequence moved")
            elif isinstance(ack, BaseException):
                failure = RelayInterrupted(f"publish failed: {ack!r}")
            elif ack.duplicate:
                # The relay never sends an event the stream holds (reconcile checked), so
                # someone else published this event id: the server would swallow the real
                # event. Stop here and retry until the server's duplicate window has passed.
                failure = RelayInterrupted(
                    f"the stream already had a message with event id {event_id} that the "
                    "relay did not publish (forged); retrying after the duplicate window"
                )
            if failure is not None or isinstance(ack, BaseException):
                break
            last = Published(position, event_id, int(ack.seq))
            self.stats.positions[batch.feed.store] = position
            stored += 1
        self.stats.published += stored
        _published.add(stored, {"store": batch.feed.store})
        if failure is None:
            self._crash("after_acks", stored)
        if last is not None:
            await self._record(batch.feed, last)
        if failure is not None:
            raise failure
        return stored

    async def _record(self, feed: Feed, published: Published) -> None:
        """Write down, after the stream acknowledged it, the last event published."""
        assert self._db is not None
        self._published[feed.store] = published
        await self._db.execute(
            sql.SQL(
                "INSERT INTO {}.concord_relay_published "
                "(stream, store, position, event_id, stream_seq) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (stream, store) DO UPDATE SET position = EXCLUDED.position, "
                "event_id = EXCLUDED.event_id, stream_seq = EXCLUDED.stream_seq, "
                "updated_at = now()"
            ).format(self.schema),
            (self.stream, feed.store, published.position, published.event_id, published.stream_seq),
        )

    def _crash(self, point: str, count: int) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point, count)


def _create_tables(connections: Connections, schema: str) -> None:
    with connections.postgres("relay-setup") as conn:
        create_schema(conn, schema)


async def _drain(gen: Any) -> None:
    async for _ in gen:
        return


def crash_hook_from_env() -> Callable[[str, int], None] | None:
    """Fault injection for crash tests: ``CONCORD_RELAY_CRASH_AT=<point>:<n>`` ends the
    process abruptly (like ``kill -9``) the n-th time the relay passes ``point``."""
    spec = os.environ.get("CONCORD_RELAY_CRASH_AT")
    if not spec:
        return None
    point, _, nth = spec.partition(":")
    remaining = [int(nth or 1)]

    def hook(at: str, count: int) -> None:
        if at == point:
            remaining[0] -= 1
            if remaining[0] <= 0:
                os._exit(137)

    return hook


def main() -> None:
    """``python -m adapters.nats.relay``: run the relay with ``CONCORD_*`` settings."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    relay = Relay(Settings())
    stop = asyncio.Event()

    async def run() -> None:
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await relay.run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
