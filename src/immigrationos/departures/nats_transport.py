"""Departure events over NATS JetStream, into the same :class:`~.service.Processor` as the
embedded transports.

Exactly once, end to end:

- **Publishing** sends each event with its ``event_id`` as ``Nats-Msg-Id``. Inside the
  stream's de-duplication window JetStream stores a re-publication of the same id only once
  and says so in the acknowledgement (``PubAck.duplicate``); a publication that timed out is
  simply sent again, since the id makes that safe.
- **Consuming** is a durable pull consumer with explicit acks. A batch is acknowledged only
  after :meth:`~.service.Processor.process` committed it, so a consumer that dies before the
  commit leaves the batch unacknowledged and JetStream redelivers it after ``ack_wait``. One
  that dies after the commit, before its acks reached the server, gets the batch again too,
  and the inbox (keyed by event id, committed with the effects) turns each such event into a
  ``duplicate`` that changes nothing. Nothing is lost (unacknowledged means redelivered) and
  nothing is applied twice (the inbox).
- What cannot be read is dead-lettered by the processor and acknowledged: redelivering bytes
  that will never parse helps no one. A batch that fails for any other reason is retried
  event by event; an event that still fails is nak'ed with a delay (redelivered later), never
  acknowledged nor terminated.

The server is ``IMMOS_NATS_URL`` (default ``nats://127.0.0.1:4222``). Stream, subject and
durable default to the constants below; tests and demos pass their own to stay apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import NotFoundError

from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ValidationFailed
from immigrationos.core.settings import Settings
from immigrationos.departures.events import read_event
from immigrationos.departures.service import BATCH, SOURCE, Outcome, Processor, Received
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources.registry import agreement_in_force

log = logging.getLogger(__name__)
T = TypeVar("T")

STREAM = "IMMOS_DEPARTURES"
SUBJECT = "immos.departures.events"
DURABLE = "immos-departures"
TRANSPORT = "nats"

#: How late a re-publication of an event is still dropped by its ``Nats-Msg-Id`` (seconds).
#: Ten minutes covers a publisher's retries after a timeout (seconds) and a publication
#: restarted after a crash or a network partition (minutes). The server holds every id of the
#: window in memory, so a longer window costs memory in proportion to the publication rate
#: (a full-speed replay of millions of synthetic events keeps them all). A re-publication
#: after the window is stored again, and the consumer's inbox makes it a reported duplicate
#: that changes nothing: the window saves work, the inbox guarantees the result.
DUPLICATE_WINDOW = 600.0
#: Seconds a delivered, unacknowledged message waits before redelivery. Batches take well
#: under a second; a slower one sends in-progress acks (``+WPI``) so it is not redelivered
#: while still being processed.
ACK_WAIT = 30.0
#: Messages delivered and not yet acknowledged, across every consumer of the durable.
MAX_ACK_PENDING = 4096
#: Seconds before an event whose processing failed is delivered again.
NAK_DELAY = 5.0
#: Publications awaiting their acknowledgement at once.
PUBLISH_WINDOW = 1000
#: Seconds to wait for a window of publish acknowledgements before publishing again.
PUBLISH_TIMEOUT = 10.0
PUBLISH_ATTEMPTS = 3
#: Lags kept for the report's percentiles (the most recent ones).
LAGS_KEPT = 10_000
#: The event id's own pattern (``events.EventId``): only such an id becomes a header value,
#: so bytes from an event can never inject a header line.
_MSG_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
#: One batch at a time per process, whatever the number of consumers in it: threads would
#: not process faster (the GIL), and on SQLite they would only queue on the write lock.
#: Scale out with processes.
_PROCESSING = threading.Lock()


def nats_url() -> str:
    """The NATS server: ``IMMOS_NATS_URL``, or the settings' default. Read from the
    environment alone, so a publisher or a test needs no complete configuration; a consumer
    uses its runtime's settings."""
    return os.environ.get("IMMOS_NATS_URL", "") or str(Settings.model_fields["nats_url"].default)


# -- the stream ---------------------------------------------------------------------------


def stream_config(
    stream: str = STREAM, subject: str = SUBJECT, max_age: float | None = None
) -> StreamConfig:
    """File storage, kept by limits (the stream is the replayable record of what was
    published; trimming it, ``max_age``, is the operator's decision), de-duplicated."""
    return StreamConfig(
        name=stream,
        description="ImmigrationOS departure events (manifests, land exits, self-reports)",
        subjects=[subject],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
        max_age=max_age,
    )


async def ensure_stream(
    js: JetStreamContext,
    stream: str = STREAM,
    subject: str = SUBJECT,
    max_age: float | None = None,
) -> StreamInfo:
    """Create the stream, or bring an existing one to :func:`stream_config`."""
    config = stream_config(stream, subject, max_age)
    try:
        await js.stream_info(stream)
    except NotFoundError:
        return await js.add_stream(config)
    return await js.update_stream(config)


def consumer_config(
    durable: str = DURABLE,
    subject: str = SUBJECT,
    ack_wait: float = ACK_WAIT,
    max_ack_pending: int = MAX_ACK_PENDING,
) -> ConsumerConfig:
    """A durable pull consumer with explicit acks that never gives up on an event
    (``max_deliver`` unlimited: unreadable events are dead-lettered, not dropped)."""
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        description="ImmigrationOS departure processor",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
        filter_subject=subject,
    )


async def ensure_consumer(
    js: JetStreamContext, stream: str, config: ConsumerConfig
) -> ConsumerInfo:
    """Create the durable consumer, or update it to ``config`` (same name, same filter)."""
    return await js.add_consumer(stream, config)


# -- publishing ---------------------------------------------------------------------------


@dataclass
class PublishReport:
    """What a publication did."""

    published: int = 0
    """Events the stream stored."""
    duplicates: int = 0
    """Events the server dropped: their ``Nats-Msg-Id`` was seen inside the window."""
    without_id: int = 0
    """Events sent without ``Nats-Msg-Id`` (no readable event id; the consumer
    dead-letters them)."""
    retried: int = 0
    """Publications sent again after a timeout or an error (safe: same id)."""
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return self.published + self.duplicates

    @property
    def rate(self) -> float:
        """Events acknowledged per second."""
        return self.sent / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "published": self.published,
            "duplicates": self.duplicates,
            "without_id": self.without_id,
            "retried": self.retried,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
        }


def message_id(raw: bytes) -> str | None:
    """The event's id for ``Nats-Msg-Id``, or None when it has no well-formed one."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id if isinstance(event_id, str) and _MSG_ID.match(event_id) else None


_Pending = tuple[bytes, dict[str, str] | None, "asyncio.Future[PubAck]"]


@dataclass
class _Publisher:
    js: JetStreamContext
    stream: str
    subject: str
    report: PublishReport = field(default_factory=PublishReport)
    _pending: list[_Pending] = field(default_factory=list)

    async def send(self, raw: bytes) -> None:
        msg_id = message_id(raw)
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        self.report.without_id += msg_id is None
        future = await self.js.publish_async(self.subject, raw, stream=self.stream, headers=headers)
        self._pending.append((raw, headers, future))

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def settle(self) -> None:
        """Wait for the window's acknowledgements; publish again what got none."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        await asyncio.wait([f for _, _, f in pending], timeout=PUBLISH_TIMEOUT)
        for raw, headers, future in pending:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._count(future.result())
                continue
            future.cancel()
            self._count(await self._again(raw, headers))

    async def _again(self, raw: bytes, headers: dict[str, str] | None) -> PubAck:
        for attempt in range(1, PUBLISH_ATTEMPTS + 1):
            self.report.retried += 1
            try:
                return await self.js.publish(
                    self.subject, raw, timeout=PUBLISH_TIMEOUT, stream=self.stream,
                    headers=dict(headers) if headers else None,
                )  # fmt: skip
            except nats.errors.Error as exc:
                if attempt == PUBLISH_ATTEMPTS:
                    raise
                log.warning("publication failed (%s); again", exc)
                await asyncio.sleep(attempt)
        raise AssertionError("unreachable")

    def _count(self, ack: PubAck) -> None:
        if ack.duplicate:
            self.report.duplicates += 1
        else:
            self.report.published += 1


async def publish(
    url: str | None,
    events: Iterable[bytes],
    rate: float | None = None,
    progress: Callable[[PublishReport], None] | None = None,
    *,
    stream: str = STREAM,
    subject: str = SUBJECT,
    window: int = PUBLISH_WINDOW,
) -> PublishReport:
    """Publish raw events (blank lines skipped), each with ``Nats-Msg-Id`` = its event id.

    ``rate`` paces the publication (events per second; None: as fast as acknowledged);
    ``progress`` is called with the running report after every window of ``window`` events.
    """
    nc = await nats.connect(url or nats_url(), name="immos-departures-publisher")
    started = time.perf_counter()
    try:
        js = nc.jetstream(publish_async_max_pending=window)
        await ensure_stream(js, stream, subject)
        publisher = _Publisher(js, stream, subject)
        sent = 0
        for line in events:
            raw = line.strip()
            if not raw:
                continue
            if rate:
                await _pace(started, sent, rate)
            await publisher.send(raw)
            sent += 1
            if publisher.in_flight >= window:
                await publisher.settle()
                publisher.report.seconds = time.perf_counter() - started
                if progress:
                    progress(publisher.report)
        await publisher.settle()
        publisher.report.seconds = time.perf_counter() - started
        return publisher.report
    finally:
        await nc.close()


async def _pace(started: float, sent: int, rate: float) -> None:
    ahead = started + sent / rate - time.perf_counter()
    if ahead > 0.002:
        await asyncio.sleep(ahead)


# -- consuming ----------------------------------------------------------------------------


@dataclass
class ConsumeReport:
    """What a consumer did, and how far behind publication it ran."""

    events: int = 0
    """Messages settled (acknowledged or nak'ed)."""
    applied: int = 0
    duplicates: int = 0
    """Events the inbox had already applied (a redelivery, or a re-publication)."""
    dead_letters: int = 0
    failed: int = 0
    """Deliveries nak'ed after an unexpected error (they come back after a delay)."""
    redelivered: int = 0
    """Messages delivered more than once (a consumer died or failed before acking them)."""
    batches: int = 0
    bands: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    startup_seconds: float = 0.0
    """Of ``seconds``, the start: the processor's matcher built and warm, the consumer bound."""
    stopped: str = ""
    """Why the consumer returned: ``stop``, ``idle`` or ``drained``."""
    last_error: str | None = None
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LAGS_KEPT))
    """Publication to acknowledgement (after the commit), in milliseconds, of the most recent
    events applied; the inbox keeps each event's own lag to the commit."""
    max_lag_ms: float = 0.0
    workers: list[int] = field(default_factory=list)
    """With several worker processes (:func:`consume_in_processes`): the events each settled."""

    def lag(self) -> dict[str, float | None]:
        """The lag's median and 99th percentile (over the kept lags), and its maximum."""
        ordered = sorted(self.lags_ms)

        def at(q: float) -> float | None:
            return (
                round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None
            )

        return {"p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(self.max_lag_ms, 1)}

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events, "applied": self.applied, "duplicates": self.duplicates,
            "dead_letters": self.dead_letters, "failed": self.failed,
            "redelivered": self.redelivered, "batches": self.batches, "bands": dict(self.bands),
            "seconds": round(self.seconds, 3), "startup_seconds": round(self.startup_seconds, 3),
            "stopped": self.stopped, "last_error": self.last_error, "lag": self.lag(),
            "rate": round(self.rate, 1), "workers": self.workers,
        }  # fmt: skip

    @property
    def rate(self) -> float:
        """Events settled per second once started."""
        working = self.seconds - self.startup_seconds
        return self.events / working if working > 0 else 0.0

    def count(self, msgs: Sequence[Msg], outcomes: Sequence[Outcome | None]) -> None:
        now = utcnow()
        self.batches += 1
        for msg, outcome in zip(msgs, outcomes, strict=True):
            self.events += 1
            self.redelivered += msg.metadata.num_delivered > 1
            if outcome is None:
                self.failed += 1
            elif outcome.status == "applied":
                self.applied += 1
                self.bands[str(outcome.band)] += 1
                lag = (now - msg.metadata.timestamp).total_seconds() * 1e3
                self.lags_ms.append(lag)
                self.max_lag_ms = max(self.max_lag_ms, lag)
            elif outcome.status == "duplicate":
                self.duplicates += 1
            else:
                self.dead_letters += 1


@dataclass
class _Consumer:
    nc: Client
    js: JetStreamContext
    sub: JetStreamContext.PullSubscription
    processor: Processor
    stream: str
    durable: str
    ack_wait: float
    report: ConsumeReport = field(default_factory=ConsumeReport)

    async def handle(self, msgs: list[Msg]) -> None:
        """Process a batch, then settle every message: ack, or nak what failed."""
        outcomes = await self._process(msgs)
        for msg, outcome in zip(msgs, outcomes, strict=True):
            if outcome is None:
                await msg.nak(delay=NAK_DELAY)
            else:
                await msg.ack()
        # The acks are on their way before the next fetch (and before a report says so).
        await self.nc.flush()
        self.report.count(msgs, outcomes)

    async def _process(self, msgs: list[Msg]) -> list[Outcome | None]:
        try:
            return list(await self._run(msgs))
        except Exception as exc:
            self._failed(exc, len(msgs))
            if len(msgs) == 1:
                return [None]
        # One transaction per event, so one bad event does not hold back its batch.
        outcomes: list[Outcome | None] = []
        for msg in msgs:
            try:
                outcomes.extend(await self._run([msg]))
            except Exception as exc:
                self._failed(exc, 1)
                outcomes.append(None)
        return outcomes

    async def _run(self, msgs: list[Msg]) -> list[Outcome]:
        """The processor in a worker thread (its database work is synchronous), while this
        loop keeps the connection alive and tells the server the batch is in progress."""
        now = utcnow()
        items = [Received(m.data, now, m.metadata.timestamp) for m in msgs]
        work = asyncio.ensure_future(asyncio.to_thread(_locked, self.processor.process, items))
        while True:
            done, _ = await asyncio.wait({work}, timeout=self.ack_wait / 3)
            if done:
                return work.result()
            for msg in msgs:
                await msg.in_progress()

    def _failed(self, exc: Exception, events: int) -> None:
        self.report.last_error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("departure batch of %d failed: %s", events, self.report.last_error)

    async def fetch(self, batch_size: int, max_wait: float) -> list[Msg]:
        try:
            return await self.sub.fetch(batch_size, timeout=max_wait)
        except TimeoutError:  # nats' own TimeoutError is one too
            return []

    async def drained(self) -> bool:
        """Nothing left in the stream for the durable, and nothing delivered unacknowledged
        (to this consumer or to one that died: those come back after ``ack_wait``)."""
        info = await self.js.consumer_info(self.stream, self.durable)
        return not info.num_pending and not info.num_ack_pending


async def consume(
    runtime: Runtime,
    url: str | None = None,
    durable: str = DURABLE,
    batch_size: int = BATCH,
    max_wait: float = 1.0,
    stop: asyncio.Event | None = None,
    idle_exit: float | None = None,
    on_batch: Callable[[ConsumeReport], None] | None = None,
    *,
    stream: str = STREAM,
    subject: str = SUBJECT,
    ack_wait: float = ACK_WAIT,
    max_ack_pending: int = MAX_ACK_PENDING,
    drain: bool = False,
    processor: Processor | None = None,
) -> ConsumeReport:
    """Consume departure events from the durable pull consumer until told to stop.

    Returns when ``stop`` is set (after settling the batch in hand), after ``idle_exit``
    seconds without a message, or, with ``drain``, once the durable has nothing pending and
    nothing awaiting an ack. ``on_batch`` gets the running report after each batch settled.
    Several consumers on the same durable share the work (:func:`consume_in_processes`).
    ``processor``: one made ready already (:func:`ready_processor`), else one is built.
    """
    started = time.perf_counter()
    if processor is None:
        processor = await asyncio.to_thread(_locked, ready_processor, runtime)
    nc = await nats.connect(url or runtime.settings.nats_url, name=f"immos-departures-{durable}")
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream, subject)
        await ensure_consumer(
            js, stream, consumer_config(durable, subject, ack_wait, max_ack_pending)
        )
        sub = await js.pull_subscribe_bind(durable, stream=stream)
        queued_first(sub)
        consumer = _Consumer(nc, js, sub, processor, stream, durable, ack_wait)
        report = consumer.report
        report.startup_seconds = time.perf_counter() - started
        report.stopped = await _loop(consumer, batch_size, max_wait, stop, idle_exit, drain,
                                     on_batch, started)  # fmt: skip
        report.seconds = time.perf_counter() - started
        return report
    finally:
        await nc.close()


def queued_first(sub: JetStreamContext.PullSubscription) -> None:
    """Let ``sub.fetch`` take a message that has already arrived without waiting for it.

    nats-py (2.16) collects a fetched batch message by message with ``next_msg``, which makes
    a uuid and two tasks per message and goes round the event loop for each, even when the
    message sits in the subscription's queue already (a batch arrives in a few reads): 20-30
    µs of CPU a message, a tenth of the consumer's. A message already queued is now taken at
    once, as ``next_msg`` would return it; an empty queue still waits through ``next_msg``.
    A client without the attributes this relies on is left as it is.
    """
    inner = getattr(sub, "_sub", None)
    queue = getattr(inner, "_pending_queue", None)
    if inner is None or not isinstance(queue, asyncio.Queue) or not hasattr(inner, "_conn"):
        return
    waiting = inner.next_msg

    async def next_msg(timeout: float | None = 1.0) -> Msg:
        if queue.empty() or inner._conn.is_closed:
            return await waiting(timeout)
        msg: Msg = queue.get_nowait()
        inner._pending_size -= len(msg.data)
        queue.task_done()
        return msg

    inner.next_msg = next_msg


async def _loop(
    consumer: _Consumer,
    batch_size: int,
    max_wait: float,
    stop: asyncio.Event | None,
    idle_exit: float | None,
    drain: bool,
    on_batch: Callable[[ConsumeReport], None] | None,
    started: float,
) -> str:
    last_message = time.perf_counter()
    while not (stop and stop.is_set()):
        msgs = await consumer.fetch(batch_size, max_wait)
        if msgs:
            await consumer.handle(msgs)
            last_message = time.perf_counter()
            consumer.report.seconds = last_message - started
            if on_batch:
                on_batch(consumer.report)
        elif drain and await consumer.drained():
            return "drained"
        elif idle_exit is not None and time.perf_counter() - last_message >= idle_exit:
            return "idle"
    return "stop"


def _locked(fn: Callable[..., T], *args: Any) -> T:
    with _PROCESSING:
        return fn(*args)


def ready_processor(runtime: Runtime, *, serve: bool = True) -> Processor:
    """A processor whose source is registered and whose matcher is warm; with ``serve``,
    one that serves from now on (:meth:`Processor.serve`).

    Refusing here, before the first fetch, turns a store without the departures source into
    one clear error instead of every event nak'ed forever. The warm-up matches one made-up
    event: the first name analysis loads the name tables (seconds), which would otherwise
    be spent inside the first batch's ack window.
    """
    ctx = system_context(Purpose.DEPARTURE_VERIFICATION, "departure consumer (nats): start")
    with unit_of_work(runtime.sessions, ctx) as gw:
        if agreement_in_force(gw.session, SOURCE) is None:
            raise ValidationFailed(
                "the departures source is not registered: `immos sources register` its "
                "definition (with its agreement) before consuming departure events"
            )
    processor = Processor(runtime, TRANSPORT)
    sample = read_event(_WARM_UP)
    processor.matcher.match(sample, "warm-up")
    if serve:  # after the warm-up: the name tables it loaded live as long as the index
        processor.serve()
    return processor


_WARM_UP = {
    "event_id": "warm-up",
    "channel": "land_exit",
    "occurred_at": "2026-01-01T00:00:00Z",
    "family_name": "Warm",
    "given_name": "Up",
    "birth_date": "1990-01-01",
    "document_no": "WARMUP1",
    "document_country": "XXX",
    "port": "none",
}


# -- for the command line -----------------------------------------------------------------


def publish_sync(url: str | None, events: Iterable[bytes], **kwargs: Any) -> PublishReport:
    """:func:`publish` from synchronous code (the CLI)."""
    return asyncio.run(publish(url, events, **kwargs))


def consume_sync(
    runtime: Runtime, url: str | None = None, *, workers: int = 1, **kwargs: Any
) -> ConsumeReport:
    """:func:`consume` from synchronous code (the CLI): SIGINT or SIGTERM stops it after the
    batch in hand is settled, so a stop never leaves work to redeliver. ``workers`` above
    one: :func:`consume_in_processes`."""
    if workers > 1:
        return consume_in_processes(runtime, url, workers, **kwargs)

    async def main() -> ConsumeReport:
        stop = kwargs.pop("stop", None) or asyncio.Event()
        loop = asyncio.get_running_loop()
        before = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        if _stopping.is_set():  # a worker process told to stop while it started
            stop.set()
        try:
            return await consume(runtime, url, stop=stop, **kwargs)
        finally:
            for sig, handler in before.items():
                loop.remove_signal_handler(sig)
                # What was there before, not the default: that would end a worker before
                # it sent its report, on a second signal. (None: set outside Python.)
                if handler is not None:
                    signal.signal(sig, handler)

    return asyncio.run(main())


#: Set by SIGINT or SIGTERM in a worker process before its consumer runs (see
#: :func:`consume_in_processes`).
_stopping = threading.Event()


def consume_in_processes(
    runtime: Runtime, url: str | None = None, workers: int = 2, **kwargs: Any
) -> ConsumeReport:
    """``workers`` consumers of the durable, each in a process of its own: one process
    matches and writes on one core at a time (Python's lock), so a machine with more cores
    consumes faster with more processes.

    The matcher is built once, here, and the workers are forked from this process after
    it: they share the index's memory, which the operating system copies only where a
    worker writes (the index is read, and frozen out of the garbage collector's scans).
    Each keeps its matcher current as any consumer does (:meth:`Processor.keep_current`),
    but the departures a worker verifies without their document (a renewed passport) go
    into its own matcher only: another worker's next event with that passport is matched
    by name and birth date instead, until the index is next rebuilt. The durable hands
    each fetch its own messages, and the inbox keeps every event applied once whichever
    worker gets it (a redelivery to another worker is a duplicate).

    SIGINT or SIGTERM stops every worker after its batch in hand. Returns the workers'
    reports added up; a worker that ended without a report (killed) is named in
    ``stopped`` and ``last_error``, and what it held unacknowledged is redelivered.
    Needs ``fork`` (Linux, macOS).
    """
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        raise ValidationFailed("--workers above 1 needs a platform that can fork (Linux, macOS)")
    began = time.perf_counter()
    processor = ready_processor(runtime, serve=False)
    processor.settle()  # once, before the fork: the workers share the frozen heap
    runtime.engine.dispose()  # no database connection crosses the fork
    team = _Workers(runtime, processor, url, kwargs)
    previous = {sig: signal.signal(sig, team.forward) for sig in _STOP_SIGNALS}
    try:
        team.start(workers)
        got = team.reports()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    report = merged(got)
    built = time.perf_counter() - began - report.seconds
    report.startup_seconds += max(built, 0.0)
    report.seconds = time.perf_counter() - began
    lost = team.lost()
    if lost or len(got) < len(team.started):
        missing = len(team.started) - len(got)
        report.stopped = f"{missing} of {len(team.started)} workers ended without a report"
        report.last_error = f"workers that failed or were killed: {', '.join(lost)}"
    return report


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: How long a worker that sent its report may take to exit before it is killed (its work is
#: settled and reported by then: nothing is lost).
EXIT_GRACE = 30.0
#: How often the supervisor wakes while it waits, so that a signal it got is acted on even
#: if the system delivered it to another of its threads.
_TICK = 0.5


class _Workers:
    """The worker processes of :func:`consume_in_processes`, seen from the supervisor."""

    def __init__(
        self, runtime: Runtime, processor: Processor, url: str | None, kwargs: dict[str, Any]
    ) -> None:
        import multiprocessing

        self.context = multiprocessing.get_context("fork")
        self.args = (runtime, processor, url, kwargs)
        self.supervisor = os.getpid()
        self.stopping = threading.Event()
        self.started: list[Any] = []  # multiprocessing's Process objects
        self.receivers: list[Any] = []  # the supervisor's end of each one's report pipe
        self.killed: list[str] = []  # sent their report, then did not exit

    def start(self, workers: int) -> None:
        for n in range(workers):
            if self.stopping.is_set():  # a worker not started yet is not started
                return
            # Each pipe is made just before its worker, so no worker holds another's
            # sending end: a worker that dies is seen at once (end of file).
            receiver, sender = self.context.Pipe(duplex=False)
            child = self.context.Process(target=_worker, args=(*self.args, sender),
                                         name=f"immos-departures-worker-{n}")  # fmt: skip
            child.start()
            sender.close()
            self.started.append(child)
            self.receivers.append(receiver)

    def forward(self, _signum: int, _frame: Any) -> None:
        """SIGINT or SIGTERM: passed on to every worker. A worker forked a moment ago runs
        this (inherited) until it sets its own handler: it stops itself instead."""
        if os.getpid() != self.supervisor:
            _stopping.set()
            return
        self.stopping.set()
        for child in self.started:
            if child.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    def reports(self) -> list[ConsumeReport]:
        """Each worker's report as it comes (none from one that died); returns once every
        worker has ended."""
        from multiprocessing.connection import wait

        got: list[ConsumeReport] = []
        waiting = list(self.receivers)
        while waiting:
            ready: list[Any] = wait(waiting, timeout=_TICK)
            for receiver in ready:
                with contextlib.suppress(EOFError):  # a worker that died sent nothing
                    got.append(receiver.recv())
                waiting.remove(receiver)
        for child in self.started:
            child.join(EXIT_GRACE)
            if child.exitcode is None:
                log.warning("%s sent its report but did not exit: killed", child.name)
                child.kill()
                child.join()
                self.killed.append(child.name)
        return got

    def lost(self) -> list[str]:
        """Workers that failed or were killed before their report."""
        return [c.name for c in self.started if c.exitcode != 0 and c.name not in self.killed]


def _worker(
    runtime: Runtime, processor: Processor, url: str | None, kwargs: dict[str, Any], report: Any
) -> None:
    """One worker process of :func:`consume_in_processes`: its report goes to ``report``."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, lambda _signum, _frame: _stopping.set())
    runtime.engine.dispose(close=False)  # the connections are this process's own from here
    processor.serve(settled=True)
    report.send(consume_sync(runtime, url, processor=processor, **kwargs))
    report.close()


def merged(reports: Sequence[ConsumeReport]) -> ConsumeReport:
    """Several consumers' reports as one: counts added, the longest time, lags pooled."""
    total = ConsumeReport()
    for r in reports:
        total.events += r.events
        total.applied += r.applied
        total.duplicates += r.duplicates
        total.dead_letters += r.dead_letters
        total.failed += r.failed
        total.redelivered += r.redelivered
        total.batches += r.batches
        total.bands.update(r.bands)
        total.seconds = max(total.seconds, r.seconds)
        total.startup_seconds = max(total.startup_seconds, r.startup_seconds)
        total.lags_ms.extend(r.lags_ms)
        total.max_lag_ms = max(total.max_lag_ms, r.max_lag_ms)
        total.last_error = r.last_error or total.last_error
        total.workers.append(r.events)
    total.stopped = ", ".join(sorted({r.stopped for r in reports if r.stopped}))
    return total
