"""A subscriber: one durable JetStream pull consumer pushing events to one target system.

Guarantees, and how they are kept:

* **Ack after success.** A message is acknowledged only after its connector returned; a
  crash before that redelivers it, with the same event id as idempotency key, so the target
  applies it once.
* **Retries.** A transient failure naks the message with the spec's backoff (jittered, never
  below ``Retry-After``); ``nak(delay)`` because JetStream's ``BackOff`` ignores naks. The
  stream's delivery counter is the attempt number, so the budget survives restarts.
* **Dead letters.** A permanent failure, or a transient one on the last attempt, is written
  to ``concord_dead_letters`` and the message is terminated (``term()``).
* **Per-aggregate order.** While an event of aggregate X is being retried or sits in the
  dead letters, later events of X are *parked*: copied to ``concord_parked`` and acked, so
  the consumer moves on and other aggregates keep flowing. When the blocker is delivered
  (or an operator retries or discards its dead letter), the parked events are released in
  stream order. All of it is in PostgreSQL, so it survives restarts.
* **Erasure goes first.** A customer's erasure event is delivered at once even while the
  customer is held (it does not wait behind a dead letter): the target must forget the
  person now. What is parked behind the hold is released later with ``[erased]`` fields.
* **Personal data opened last.** Envelopes on the stream, in dead letters and parked hold
  personal fields sealed; they are opened with the customer's key only for the target call
  (``adapters.nats.personal``), so after an erasure a target receives ``[erased]``.

Aggregates are handled concurrently (up to ``concurrency`` at once) and each aggregate's
events serially, in stream order. Fetching does not wait for the previous batch to finish:
up to ``batch`` messages are under way at once, and a message whose aggregate is still busy
with an earlier one waits behind it (telling the server it is in progress). Waiting for the
whole batch made every deal wait for the slowest delivery fetched with it (a payment
waiting for its invoice, an order's three calls), which was most of the ERP's queueing.

One instance per subscriber runs at a time (the runner holds an advisory lock); that is
what makes the in-memory view of held aggregates authoritative.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError

from adapters.connectors.port import Connector, PermanentDeliveryError, TransientDeliveryError
from adapters.nats.holds import (
    DEAD_LETTER,
    DRAINING,
    RETRYING,
    DeadLetterTask,
    Hold,
    HoldStore,
    Key,
)
from adapters.nats.metrics import SubscriberMetrics
from adapters.nats.personal import EnvelopeOpener, OpeningConnector, erases_personal_data
from adapters.nats.retry import (
    EXHAUSTED,
    PERMANENT,
    backoff_delay,
    call_target,
    deliver_with_retries,
    describe,
)
from adapters.nats.spec import Delivery, MalformedEvent, SubscriberSpec, parse_delivery

__all__ = ["Subscriber", "consumer_config"]

log = logging.getLogger("concord.subscriber")

BUDGET_SPENT = (
    "delivery budget used up without an answer from the target "
    "(the subscriber stopped or missed its ack deadline during earlier attempts)"
)


def consumer_config(spec: SubscriberSpec) -> ConsumerConfig:
    """The durable consumer for ``spec``.

    ``max_deliver`` is left unlimited on the server: the subscriber enforces the budget
    itself and dead-letters, whereas a server-side limit would silently strand a message
    whose last delivery was lost to a crash. No server ``BackOff`` either: it would also
    shorten the redelivery of a message whose (slow) call is still running.
    """
    filters = list(spec.filter_subjects)
    return ConsumerConfig(
        durable_name=spec.name,
        description=spec.description or f"Concord subscriber {spec.name}",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait,
        max_deliver=-1,
        max_ack_pending=max(1000, spec.batch * 2),
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
        metadata=dict(spec.metadata) or None,
    )


class Subscriber:
    """Runs one spec against one stream; see the module docstring."""

    def __init__(
        self,
        spec: SubscriberSpec,
        js: JetStreamContext,
        store: HoldStore,
        stream: str,
        *,
        metrics: SubscriberMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.js = js
        self.store = store
        self.stream = stream
        self.metrics = metrics or SubscriberMetrics(spec.name)
        self.rng = rng or random.Random()
        self.ready = asyncio.Event()
        self._held: dict[Key, Hold] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._live: dict[Key, asyncio.Task[None]] = {}
        """The last live-message task of each busy aggregate (the next one waits for it)."""
        self._under_way = 0
        self._running = asyncio.Semaphore(max(1, spec.concurrency))
        self._failed_with: BaseException | None = None
        self._opener = EnvelopeOpener(store.pool, store.schema, withhold=not spec.personal_data)

    def _connector(self, event_type: str) -> Connector | None:
        """The target's connector for this event type, receiving opened personal fields."""
        connector = self.spec.handler_for(event_type)
        return None if connector is None else OpeningConnector(connector, self._opener)

    # -------------------------------------------------------------------- lifecycle

    async def ensure_consumer(self) -> None:
        """Create the durable consumer, or update it to the spec (filters, ack wait)."""
        try:
            await self.js.add_consumer(self.stream, consumer_config(self.spec))
        except BadRequestError as refused:
            # Some fields cannot change on an existing consumer; keep the existing one.
            log.warning("subscriber %s: consumer kept as it is: %s", self.spec.name, refused)

    async def run(
        self,
        stop: asyncio.Event,
        healthcheck: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Deliver until ``stop`` is set. Unexpected errors (PostgreSQL, NATS) propagate:
        nothing unconfirmed was acked, so the runner can simply start again."""
        await self.ensure_consumer()
        self._held = await self.store.load()
        await self._settle_in_doubt(stop)
        sub = await self.js.pull_subscribe_bind(durable=self.spec.name, stream=self.stream)
        control = asyncio.create_task(self._control_loop(stop, healthcheck))
        control.add_done_callback(self._on_control_done)
        for key in await self.store.draining():
            self._spawn(key, self._drain(key))
        self.ready.set()
        try:
            while not stop.is_set():
                room = self.spec.batch - self._under_way
                if room <= 0:
                    await asyncio.wait(
                        {control, *self._live.values()}, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    try:
                        msgs = await sub.fetch(room, timeout=self.spec.fetch_timeout)
                    except (nats.errors.TimeoutError, TimeoutError):
                        msgs = []
                    if msgs:
                        await self._dispatch(msgs)
                self._raise_failed()
                if control.done():
                    control.result()  # surfaces a failed health check or control query
                    return
            # A clean stop lets what was fetched finish.
            await asyncio.gather(*self._live.values(), return_exceptions=True)
            self._raise_failed()
        finally:
            pending = [control, *self._live.values(), *self._tasks.values(), *self._background]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._live.clear()
            self._under_way = 0
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _on_control_done(self, control: asyncio.Task[None]) -> None:
        """A failed health check means the advisory lock's session is gone, so a standby may
        take over: what is under way stops at once instead of finishing beside it."""
        if not control.cancelled() and control.exception() is not None:
            for task in list(self._live.values()):
                task.cancel()

    def _raise_failed(self) -> None:
        """An unexpected error (PostgreSQL, NATS) of a live delivery stops the run, as it
        did when batches were awaited whole: nothing unconfirmed was acked."""
        failed = self._failed_with
        if failed is not None:
            self._failed_with = None
            raise failed

    async def _settle_in_doubt(self, stop: asyncio.Event) -> None:
        """After an unclean stop, let the previous run's unacknowledged messages come due.

        A message that was being delivered when the process died is redelivered only when
        its ``ack_wait`` expires, while the *next* event of the same aggregate is new and
        would be fetched at once: it could reach the target first. Unacknowledged messages
        beyond the ones deliberately nak'ed (aggregates held as ``retrying``) show such an
        unclean stop; waiting one ``ack_wait`` makes them due, and JetStream hands out due
        redeliveries before new messages. A clean stop leaves none, so costs nothing.
        """
        info = await self.js.consumer_info(self.stream, self.spec.name)
        retrying = sum(1 for hold in self._held.values() if hold.state == RETRYING)
        in_doubt = (info.num_ack_pending or 0) - retrying
        if in_doubt <= 0:
            return
        wait = self.spec.ack_wait * 1.1 + 0.2
        log.warning(
            "subscriber %s: %d messages of a previous run unacknowledged; waiting "
            "%.1f s for their redelivery to keep per-aggregate order",
            self.spec.name,
            in_doubt,
            wait,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)

    # ------------------------------------------------------------------ live messages

    async def _dispatch(self, msgs: list[Msg]) -> None:
        """Start the fetched messages, each aggregate's after what it already has under way."""
        groups: dict[Key, list[tuple[Msg, Delivery]]] = {}
        for msg in msgs:
            seq = msg.metadata.sequence.stream
            try:
                delivery = parse_delivery(msg.subject, msg.data, seq)
            except MalformedEvent as bad:
                log.error("subscriber %s: %s", self.spec.name, bad)
                await self.store.dead_letter_malformed(msg.subject, seq, msg.data, str(bad))
                await msg.term()
                self.metrics.count("dead_lettered")
                continue
            groups.setdefault(delivery.key, []).append((msg, delivery))
        for key, group in groups.items():
            self._start(key, group)

    def _start(self, key: Key, group: list[tuple[Msg, Delivery]]) -> None:
        before = self._live.get(key)
        loop = asyncio.get_running_loop()
        interval = self.spec.ack_wait / 2

        async def run() -> None:
            handle: asyncio.TimerHandle | None = None

            def still_waiting() -> None:
                nonlocal handle
                for msg, _ in group:
                    self._detach(msg.in_progress())
                handle = loop.call_later(interval, still_waiting)

            handle = loop.call_later(interval, still_waiting)
            try:
                if before is not None:
                    await before  # an earlier message failed unexpectedly: so do these
                await self._running.acquire()
            finally:
                handle.cancel()
            try:
                await self._handle_group(group)
            finally:
                self._running.release()

        task = asyncio.create_task(run(), name=f"{self.spec.name}:live:{key[0]}:{key[1]}")
        self._live[key] = task
        self._under_way += len(group)

        def done(finished: asyncio.Task[None]) -> None:
            self._under_way -= len(group)
            if self._live.get(key) is finished:
                del self._live[key]
            if not finished.cancelled() and finished.exception() is not None:
                self._failed_with = finished.exception()

        task.add_done_callback(done)

    async def _handle_group(self, group: list[tuple[Msg, Delivery]]) -> None:
        # A redelivery can arrive in the same batch after a newer event of its aggregate.
        group.sort(key=lambda item: item[1].stream_seq)
        for msg, delivery in group:
            await self._handle(msg, delivery)

    async def _handle(self, msg: Msg, d: Delivery) -> None:
        hold = self._held.get(d.key)
        if hold is not None and not hold.admits(d.stream_seq):
            if hold.blocker_seq == d.stream_seq:
                # A copy of a blocker already settled (the process died before its ack/term).
                await (msg.term() if hold.state == DEAD_LETTER else msg.ack())
                return
            if erases_personal_data(d.event_type) and await self._deliver_past_hold(msg, d):
                return
            if await self._park(msg, d):
                return
            hold = None  # released while we waited for the aggregate's lock
        connector = self._connector(d.event_type)
        if connector is None:
            await msg.ack()
            self.metrics.count("skipped")
            return
        attempt = msg.metadata.num_delivered
        if attempt > self.spec.max_deliver:
            await self._dead_letter(msg, d, EXHAUSTED, BUDGET_SPENT, attempt - 1)
            return
        try:
            await self._call(msg, connector, d)
        except PermanentDeliveryError as refused:
            self.metrics.count("failed")
            await self._dead_letter(msg, d, PERMANENT, describe(refused), attempt)
            return
        except Exception as failed:  # transient, or a connector bug: retry, then give up
            self.metrics.count("failed")
            error = describe(failed)
            if attempt >= self.spec.max_deliver:
                await self._dead_letter(msg, d, EXHAUSTED, error, attempt)
                return
            self._held[d.key] = await self.store.hold_retrying(d, error, attempt)
            retry_after = failed.retry_after if isinstance(failed, TransientDeliveryError) else None
            await msg.nak(delay=backoff_delay(self.spec, attempt, retry_after, self.rng))
            return
        self.metrics.count("delivered")
        if hold is None:
            await msg.ack()
            return
        # It was the blocker: record that first, so a crash now still releases the others.
        self._held[d.key] = await self.store.blocker_delivered(d)
        await msg.ack()
        self._spawn(d.key, self._drain(d.key))

    async def _deliver_past_hold(self, msg: Msg, d: Delivery) -> bool:
        """Deliver an erasure without waiting behind the aggregate's hold. A failure is
        retried by redelivery; only when its budget is spent does it join the parked events
        (False: park it), so it is never lost."""
        connector = self._connector(d.event_type)
        if connector is None:
            await msg.ack()
            self.metrics.count("skipped")
            return True
        attempt = msg.metadata.num_delivered
        try:
            await self._call(msg, connector, d)
        except Exception as failed:
            self.metrics.count("failed")
            if attempt >= self.spec.max_deliver:
                log.warning(
                    "subscriber %s: erasure %s not delivered past the hold (%s); parked",
                    self.spec.name,
                    d.event_id,
                    describe(failed),
                )
                return False
            retry_after = failed.retry_after if isinstance(failed, TransientDeliveryError) else None
            await msg.nak(delay=backoff_delay(self.spec, attempt, retry_after, self.rng))
            return True
        self.metrics.count("delivered")
        await msg.ack()
        return True

    async def _call(self, msg: Msg, connector: Connector, d: Delivery) -> None:
        """Call the target, telling the server we are still working if it takes long."""
        loop = asyncio.get_running_loop()
        interval = self.spec.ack_wait / 2
        handle: asyncio.TimerHandle | None = None

        def still_working() -> None:
            nonlocal handle
            self._detach(msg.in_progress())
            handle = loop.call_later(interval, still_working)

        handle = loop.call_later(interval, still_working)
        try:
            await call_target(self.spec, connector, d.envelope, d.event_id)
        finally:
            handle.cancel()

    async def _park(self, msg: Msg, d: Delivery) -> bool:
        async with self._lock(d.key):
            if d.key not in self._held:
                return False
            await self.store.park(d)
        await msg.ack()
        self.metrics.count("parked")
        return True

    async def _dead_letter(
        self, msg: Msg, d: Delivery, reason: str, error: str, attempts: int
    ) -> None:
        await self.store.dead_letter(d, reason, error, attempts, was_parked=False)
        self._held[d.key] = Hold(DEAD_LETTER, d.stream_seq)
        await msg.term()
        self.metrics.count("dead_lettered")
        log.warning(
            "subscriber %s: dead letter %s %s v%s: %s",
            self.spec.name,
            d.aggregate,
            d.aggregate_id,
            d.version,
            error,
        )

    # ---------------------------------------------------------------- releasing / ops

    async def _drain(self, key: Key) -> None:
        """Deliver what is parked behind ``key`` in order, then lift the hold."""
        empty_twice = False
        while True:
            d = await self.store.next_parked(key)
            if d is None:
                async with self._lock(key):
                    if await self.store.release_if_empty(key):
                        self._held.pop(key, None)
                        self._locks.pop(key, None)
                        return
                if empty_twice:
                    async with self._lock(key):
                        if await self.store.hold_state(key) is None:
                            # Released meanwhile (a stale "draining" reading started this
                            # task): forget the hold in memory too, or the aggregate would
                            # park its events forever.
                            self._held.pop(key, None)
                            return
                    log.warning("subscriber %s: hold on %s is not releasable", self.spec.name, key)
                    return
                empty_twice = True
                continue
            empty_twice = False
            connector = self._connector(d.event_type)
            if connector is not None:
                outcome = await deliver_with_retries(
                    self.spec, connector, d.envelope, d.event_id, on_failure=self._failed
                )
                if not outcome.delivered:
                    await self.store.dead_letter(
                        d,
                        outcome.reason or EXHAUSTED,
                        outcome.error or "",
                        outcome.attempts,
                        was_parked=True,
                    )
                    self._held[key] = Hold(DEAD_LETTER, d.stream_seq)
                    self.metrics.count("dead_lettered")
                    return
                self.metrics.count("delivered")
            await self.store.unpark(key, d.stream_seq)
            self.metrics.count("released")

    async def _retry(self, task: DeadLetterTask) -> None:
        """An operator asked to retry a dead letter: deliver it, then release what waits.

        If the retry breaks off (e.g. PostgreSQL unreachable for a moment), it is requested
        again rather than left ``retrying`` until a restart."""
        try:
            await self._retry_once(task)
        except Exception:
            with contextlib.suppress(Exception):
                await self.store.retry_interrupted(task)
            raise

    async def _retry_once(self, task: DeadLetterTask) -> None:
        d = task.delivery
        connector = self._connector(d.event_type)
        attempts = 0
        if connector is not None:
            outcome = await deliver_with_retries(
                self.spec, connector, d.envelope, d.event_id, on_failure=self._failed
            )
            if not outcome.delivered:
                await self.store.retry_failed(
                    task, outcome.reason or EXHAUSTED, outcome.error or "", outcome.attempts
                )
                return
            attempts = outcome.attempts
            self.metrics.count("delivered")
        self._held[d.key] = await self.store.retry_delivered(task, attempts)
        await self._drain(d.key)

    async def _failed(self, attempt: int, error: str) -> None:
        self.metrics.count("failed")

    async def _control_loop(
        self, stop: asyncio.Event, healthcheck: Callable[[], Awaitable[None]] | None
    ) -> None:
        """Pick up operator requests and holds to release (e.g. after a discard)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.spec.control_interval)
            if stop.is_set():
                return
            if healthcheck is not None:
                await healthcheck()
            for task in await self.store.claim_retries():
                self._spawn(task.delivery.key, self._retry(task))
            for key in await self.store.draining():
                if key not in self._tasks:
                    held = self._held.get(key)
                    self._held[key] = Hold(DRAINING, held.blocker_seq if held else 0)
                    self._spawn(key, self._drain(key))

    # ---------------------------------------------------------------------- helpers

    def _lock(self, key: Key) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _spawn(self, key: Key, work: Coroutine[Any, Any, None]) -> None:
        """One release task per aggregate; new work for a busy aggregate runs after it."""
        previous = self._tasks.get(key)

        async def chained() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            await work

        task = asyncio.create_task(chained(), name=f"{self.spec.name}:{key[0]}:{key[1]}")
        self._tasks[key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._tasks.get(key) is finished:
                del self._tasks[key]
            if not finished.cancelled() and finished.exception() is not None:
                log.error(
                    "subscriber %s: releasing %s failed (retried on the next control round): %r",
                    self.spec.name,
                    key,
                    finished.exception(),
                )

        task.add_done_callback(done)

    def _detach(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
