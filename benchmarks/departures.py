"""Benchmark of departure matching: the in-process matcher, NATS end to end, and Splink's
real-time comparison as the baseline, side by side on the same events and index.

Input: a synthetic world of 1,000,000 persons (quick: 20,000; ``--sizes`` for others) with
the default noise. The index holds every person-bearing record that is not a departure
(``world_records``), each in the person the truth gives it, as the resolution-link benchmark
does: the benchmark is about matching, not clustering. The events are the world's departure
stream (``sources/departures.jsonl``, about 0.47 events per person), a seeded sample of at
most 100,000 lines kept in stream order; each is read with ``read_event``, and the lines it
refuses are counted (the in-process run skips them; over NATS they are published and the
processor dead-letters them). The model is trained on the index's own features
(``linking.train``, which samples 300k records).

Ours, in process: ``Matcher.match`` of each event, one thread, one at a time, on an index
built with ``LinkIndex.build`` and materialised as the service does (feature computation in
the latency; the first call, which builds the document lookup and loads the name tables, is
a warm-up outside it). The matcher here does not ``add`` what it verified, so every event
meets the same index. Accuracy against the truth: ``departures.accuracy.score``.

Ours, NATS end to end: a SQLite store in a temporary file (migrated, the shipped departures
source registered, the index's persons inserted as ``persons`` rows so that the departures'
and links' foreign keys hold), a JetStream stream of its own (deleted at the end), the events
published with ``Nats-Msg-Id`` by ``nats_transport.publish`` in a child process (a producer is
another process), and consumed here from a durable pull consumer in batches of up to
``BATCH`` (1,024) by a ``Processor`` sharing the in-memory matcher, each batch committed and
then acknowledged.
Each run on a fresh copy of the store and its own slice of the sample (:class:`Budget`):
*flat out* (50,000 events published as fast as the server acknowledges; events/s from the
first publication to the last commit; its latency is mostly queueing behind the backlog) and
*paced* at the target's 5,000 events/s (10,000 events; latency from publication, the server's
timestamp, to commit). When the flat-out rate is under the target, a third run is paced at
80% of it, so the latency at a load the consumer sustains is known too.

Peer: Splink 5's ``linker.inference.predict_between`` (event record, index) on DuckDB with two
threads and the index's term-frequency tables, given the event's feature row ready-made; its
pairs are banded per person as ours, with the matcher's fuzzy rule (verified only at the
link weight plus the margin; Splink has no exact-document path). Each call takes seconds at
1M persons, so the peer takes the first 100 events: events/s = 1 / mean latency.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import nats
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from immigrationos.bench import BenchReport, Target, peak_rss_mib
from immigrationos.core.clock import utcnow
from immigrationos.core.heap import settle_heap
from immigrationos.core.settings import Settings
from immigrationos.departures import nats_transport
from immigrationos.departures.accuracy import score
from immigrationos.departures.events import Malformed, read_event
from immigrationos.departures.matcher import Event, Matcher, MatchResult, raw_record
from immigrationos.departures.service import BATCH, SOURCE, Outcome, Processor, Received
from immigrationos.gateway.context import system_context
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Person
from immigrationos.resolution.evaluate import Truth
from immigrationos.resolution.incremental import LinkIndex, band_of
from immigrationos.resolution.linking import train
from immigrationos.resolution.model import ModelDoc
from immigrationos.resolution.records import FEATURE_SCHEMA, feature_row
from immigrationos.runtime import open_runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.registry import register
from immigrationos.store import bulk
from immigrationos.store.engine import transaction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The world, its features and the Splink peer's set-up are the resolution-link benchmark's.
from benchmarks.resolution_link import _features, _peer_ranked, _peer_setup, _world

TARGET_PERSONS = 1_000_000
QUICK_PERSONS = 20_000
TARGET_MATCHER_RATE = 20_000.0
TARGET_NATS_RATE = 5_000.0
TARGET_NATS_P99_MS = 100.0
TARGET_PEER_RATIO = 100.0
SUSTAINABLE = 0.8
WORKERS = 2
"""Consumer processes of the runs with several (``immos departures consume --workers``): one
per core of the machines the figures come from."""
SEED = 7


@dataclass(frozen=True)
class Budget:
    """How many events each system gets, all from the same sample.

    The NATS runs take disjoint slices of it (one consumer flat out, then each of its paced
    runs, then the same with :data:`WORKERS` consumer processes), so that, as in the
    service, no event meets an index that already holds its own record: the processor adds
    each verified departure to the shared matcher.
    """

    events: int = 100_000
    """Sampled from the stream; all of them matched in process."""
    nats: int = 30_000
    """Published flat out through NATS, to each configuration (at most a quarter of the
    sample)."""
    paced: int = 10_000
    """Published at each paced rate (at most an eighth of the sample each)."""
    peer: int = 100
    """Splink calls (seconds each at 1M persons), on the first events."""

    def split(self, sampled: int) -> tuple[int, int]:
        """Events of a flat-out run and of each paced run, for a sample of ``sampled``."""
        return min(self.nats, sampled // 4), min(self.paced, sampled // 8)


def _log(message: str) -> None:
    print(f"[bench departures] {message}", file=sys.stderr, flush=True)


# -- input ----------------------------------------------------------------------------------------


@dataclass
class Input:
    """The index (features, truth, model), the events, and what preparing them took."""

    persons: int
    index: pa.Table
    truth: Truth
    doc: ModelDoc
    lines: list[bytes]
    """The sampled raw events, in stream order (malformed ones included)."""
    events: list[Event]
    malformed: int
    stream_events: int
    world_s: float
    features_s: float
    train_s: float

    @property
    def index_persons(self) -> list[str]:
        return sorted({self.truth.entity_of[u] for u in self.index.column("unique_id").to_pylist()})


def _sample(lines: list[bytes], count: int, seed: int = SEED) -> list[bytes]:
    """At most ``count`` lines, drawn at random and kept in stream order."""
    if len(lines) <= count:
        return lines
    return [lines[i] for i in sorted(random.Random(seed).sample(range(len(lines)), count))]


def _read(lines: Iterable[bytes]) -> tuple[list[Event], int]:
    """The events ``read_event`` accepts, and how many lines it refused."""
    events: list[Event] = []
    refused = 0
    for line in lines:
        try:
            events.append(read_event(line))
        except Malformed:
            refused += 1
    return events, refused


def prepare(persons: int, folder: Path, max_events: int = Budget.events) -> Input:
    """World, index features (departures left out), model and the sampled events, timed."""
    started = time.perf_counter()
    raw, truth = _world(persons, folder)
    world_s = time.perf_counter() - started
    stream = folder / "sources" / "departures.jsonl"
    lines = [line for line in stream.read_bytes().splitlines() if line.strip()]
    sampled = _sample(lines, max_events)
    events, malformed = _read(sampled)
    started = time.perf_counter()
    index = _features(raw.filter(pc.not_equal(raw.column("source_id"), SOURCE)))
    features_s = time.perf_counter() - started
    del raw
    doc = train(index, max_records=300_000)
    return Input(persons, index, truth, doc, sampled, events, malformed, len(lines), world_s,
                 features_s, float(doc.training.get("seconds") or 0.0))  # fmt: skip


# -- measurement ----------------------------------------------------------------------------------


def latency(ms: Sequence[float], digits: int = 3) -> dict[str, float]:
    """Percentiles of latencies in milliseconds."""
    a = np.asarray(ms, dtype=float)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), digits),
        "p95_ms": round(float(np.percentile(a, 95)), digits),
        "p99_ms": round(float(np.percentile(a, 99)), digits),
        "max_ms": round(float(a.max()), digits),
    }


def _accuracy(
    decisions: Iterable[tuple[str, str | None, str | None]], truth: Truth, present: set[str]
) -> dict[str, Any]:
    """Precision of verified and recall of verified + review; index persons are true persons."""
    events = {
        k.split(":", 1)[1]: p for k, p in truth.entity_of.items() if k.startswith("departures:")
    }
    result = score(decisions, events, {p: p for p in present}, present).to_json()
    return {
        "precision_verified": result["precision_verified"],
        "recall": result["recall_verified_or_review"],
        "verified": result["verified"],
        "review": result["review"],
        "unmatched": result["unmatched"],
    }


def build_matcher(p: Input) -> tuple[Matcher, float]:
    """The matcher over the index, materialised and warm; seconds it took."""
    started = time.perf_counter()
    index = LinkIndex.build(p.index, p.truth.entity_of, p.doc)
    index.materialize()
    matcher = Matcher(index=index, index_version="benchmark", built_at=utcnow())
    if p.events:  # builds the document lookup and loads the name tables
        matcher.match(p.events[0], "departures:warm-up")
    build_s = time.perf_counter() - started
    settle_heap()  # as a service does with its index (frozen; the young generation larger)
    return matcher, build_s


def in_process(
    matcher: Matcher, events: list[Event]
) -> tuple[list[float], list[Any], float, float]:
    """Match each event once, one at a time; milliseconds and the results, the CPU seconds
    the whole loop took (the machine is shared: wall time includes waiting for it), and the
    seconds spent matching."""
    ms, results = [], []
    cpu = time.process_time()
    for event in events:
        uid = f"departures:{event.event_id}"
        started = time.perf_counter()
        result = matcher.match(event, uid)
        ms.append((time.perf_counter() - started) * 1e3)
        results.append(result)
        if len(results) % BATCH == 0:
            gc.freeze()  # see in_batches
    return ms, results, time.process_time() - cpu, sum(ms) / 1e3


def in_batches(
    matcher: Matcher, events: list[Event], size: int = BATCH
) -> tuple[list[float], list[Kept], float, float]:
    """:func:`in_process` with the events matched ``size`` at a time
    (:meth:`Matcher.match_many`, as the service's consumers do): each event's latency is
    its batch's time (it waits for the whole batch); the CPU seconds are those of the
    matching calls.

    A service stores each batch's results and drops them; this keeps, between batches and
    outside the time, what the accuracy count and the comparison with one event at a time
    need (:class:`Kept`: the explanation as text), and frozen out of the garbage
    collector's scans, or its walks over the growing list would be counted as matching.
    Keeping the results themselves (every explanation's dicts) made each batch's own
    objects land in fresh memory, where a service reuses what the batch before freed: at
    1M persons, after the pass one event at a time, 79,528 page faults and 0.77 s of system
    time in the batched pass (18,155 events/s), none this way (20,871 events/s)."""
    ms: list[float] = []
    kept: list[Kept] = []
    busy = cpu = 0.0
    for start in range(0, len(events), size):
        chunk = [(e, f"departures:{e.event_id}") for e in events[start : start + size]]
        began, started = time.process_time(), time.perf_counter()
        found = matcher.match_many(chunk)
        took = time.perf_counter() - started
        cpu += time.process_time() - began
        kept += [Kept(r.band, r.person_id, _decided(r)) for r in found]
        del found
        gc.freeze()
        busy += took
        ms += [took * 1e3] * len(chunk)
    return ms, kept, cpu, busy


@dataclass(frozen=True)
class Kept:
    """What the benchmark keeps of a result matched in a batch."""

    band: str
    person_id: str | None
    decided: tuple[Any, ...]
    """:func:`_decided`."""


def _decided(result: Any) -> tuple[Any, ...]:
    """A result's band, person, weight and explanation (as sorted JSON, timings aside)."""
    shared = ("micros", "timing_ms", "batch")
    explanation = {k: v for k, v in result.explanation.items() if k not in shared}
    text = json.dumps(explanation, sort_keys=True, default=str)
    return result.band, result.person_id, result.match_weight, text


def _feature_ms(events: list[Event]) -> float:
    """Mean milliseconds of the event's feature row alone (names cached, as in the service)."""
    started = time.perf_counter()
    for event in events:
        feature_row(raw_record(event, f"departures:{event.event_id}"))
    return (time.perf_counter() - started) * 1e3 / max(len(events), 1)


def _ours(p: Input, present: set[str]) -> tuple[list[dict[str, Any]], Matcher, dict[str, Any]]:
    """The matcher one event at a time and in batches of :data:`BATCH`, on the same events
    (the name caches warmed by the feature rows timed beforehand, as in a running service)."""
    matcher, build_s = build_matcher(p)
    _log(f"{p.persons:,}: matcher built in {build_s:.1f} s; matching {len(p.events):,} events")
    feature_ms = _feature_ms(p.events)
    rows: list[dict[str, Any]] = []
    results: dict[str, list[Any]] = {}
    for name, measure_ in (("Matcher.match", in_process), ("Matcher.match_many", in_batches)):
        ms, found, cpu_s, busy_s = measure_(matcher, p.events)
        results[name] = found
        pairs = zip(p.events, found, strict=True)
        decisions = [(e.event_id, r.band, r.person_id) for e, r in pairs]
        way = "one event at a time" if name == "Matcher.match" else f"batches of {BATCH}"
        rows.append({
            "system": f"ours: {name}, in process, {way}, 1 thread",
            "events": len(ms),
            "events_per_s": round(len(ms) / busy_s, 1),
            "cpu_ms_per_event": round(cpu_s * 1e3 / len(ms), 3),
            **latency(ms),
            **_accuracy(decisions, p.truth, present),
            "dead_letters": p.malformed,
            "setup_s": round(build_s, 2),
        })  # fmt: skip
    single: list[MatchResult] = results["Matcher.match"]
    batched: list[Kept] = results["Matcher.match_many"]
    differ = sum(_decided(a) != b.decided for a, b in zip(single, batched, strict=True))
    detail = {**_where([float(r.micros) / 1e3 for r in single], single),
              "feature_ms": feature_ms, "batch_differ": differ}  # fmt: skip
    return rows, matcher, detail


def _path(explanation: dict[str, Any]) -> str:
    """The matcher's path, the document path split into its agreement shortcut (no scoring)
    and the full comparison."""
    path = str(explanation.get("path"))
    return f"{path} (agreement)" if "agreed" in explanation else path


def _where(ms: list[float], results: list[Any]) -> dict[str, Any]:
    """Latency per path, and the fuzzy path's candidate pairs and stages (its explanation's
    own ``candidates`` and ``timing_ms``)."""
    paths = Counter(_path(r.explanation) for r in results)
    by_path = {
        path: latency([m for m, r in zip(ms, results, strict=True) if _path(r.explanation) == path])
        for path in paths
    }
    fuzzy = [r.explanation for r in results if r.explanation.get("path") == "fuzzy"]
    stages: Counter[str] = Counter()
    for explanation in fuzzy:
        stages.update(explanation.get("timing_ms") or {})
    pairs = [int(e.get("candidates") or 0) for e in fuzzy] or [0]
    return {
        "paths": dict(paths),
        "by_path": by_path,
        "fuzzy_pairs": (float(np.mean(pairs)), float(np.percentile(pairs, 99))),
        "fuzzy_stages_ms": {k: v / max(len(fuzzy), 1) for k, v in stages.items()},
    }


# -- NATS end to end ------------------------------------------------------------------------------

_PUBLISH = """
import json, sys, time
from pathlib import Path
from immigrationos.departures.nats_transport import publish_sync
url, stream, subject, path, rate = sys.argv[1:6]
lines = Path(path).read_bytes().splitlines()
cpu = time.process_time()
report = publish_sync(url, lines, rate=float(rate) or None, stream=stream, subject=subject)
print(json.dumps({**report.to_json(), "cpu_s": time.process_time() - cpu}))
"""


def _settings(folder: Path, db: Path) -> Settings:
    return Settings(mode="demo", data_dir=folder, database_url=f"sqlite:///{db}",
                    documents_pdf=False)  # fmt: skip


def template_store(folder: Path, persons: list[str]) -> Path:
    """A migrated SQLite store with the departures source registered and ``persons`` as
    minimal ``persons`` rows (setup, straight to the store: not a measured or audited path)."""
    db = folder / "template.db"
    rt = open_runtime(_settings(folder, db))
    try:
        ctx = system_context(Purpose.DATA_INTEGRATION, "benchmark: departures source")
        with transaction(rt.sessions) as session:
            for definition in shipped_definitions():
                if definition.id == SOURCE:
                    register(session, definition, ctx)
        now, n = utcnow(), len(persons)
        columns = {"id": persons, "status": ["active"] * n, "golden": [{}] * n,
                   "citizenship_status": ["unknown"] * n, "created_at": [now] * n,
                   "updated_at": [now] * n}  # fmt: skip
        with rt.engine.begin() as conn:
            bulk.insert_columns(conn, Person.__table__, columns)  # type: ignore[arg-type]
    finally:
        rt.close()  # the last connection closed checkpoints the write-ahead log into the file
    return db


def _copy_store(template: Path, db: Path) -> None:
    for suffix in ("", "-wal"):
        if Path(f"{template}{suffix}").exists():
            shutil.copyfile(f"{template}{suffix}", f"{db}{suffix}")


@dataclass
class _Run:
    """What one pass through NATS measured."""

    outcomes: list[Outcome]
    lags_ms: list[float]
    seconds: float
    published: dict[str, Any]
    publisher_cpu_s: float = 0.0
    """The publishing child's CPU seconds, from its first publication to its last (not its
    start, which imports the package before anything is published)."""
    server_cpu_s: float | None = None
    """The NATS server's CPU seconds over the run, where it runs on this machine."""


def _server_cpu() -> float | None:
    """CPU seconds the local ``nats-server`` process has used, if there is one to read."""
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(") ")
        if name.endswith("(nats-server"):
            fields = rest.split()
            return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return None


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


async def _publisher(url: str, stream: str, subject: str, path: Path, rate: float) -> Any:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _PUBLISH, url, stream, subject, str(path), str(rate),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def _run_name(rate: float, workers: int) -> str:
    """A NATS run's name (its files, stream and details key): ``flat``, ``paced5000``, with
    ``_x2`` for two consumer processes."""
    return (f"paced{int(rate)}" if rate else "flat") + (f"_x{workers}" if workers > 1 else "")


def _run_input(name: str, lines: list[bytes], folder: Path) -> tuple[str, str, str, Path]:
    """The server, a stream and subject of the run's own, and its events in a file for the
    publisher."""
    path = folder / f"{name}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    stream = f"IMMOS_BENCH_DEPARTURES_{os.getpid()}_{name.upper()}"
    return nats_transport.nats_url(), stream, f"immos.bench.departures.{os.getpid()}.{name}", path


async def _open_stream(url: str, stream: str, subject: str) -> None:
    """The run's stream and its durable (``bench``), as the transport configures them."""
    nc = await nats.connect(url, name="immos-bench-departures")
    try:
        js = nc.jetstream()
        await nats_transport.ensure_stream(js, stream, subject)
        config = nats_transport.consumer_config("bench", subject)
        await nats_transport.ensure_consumer(js, stream, config)
    finally:
        await nc.close()


async def _delete_stream(url: str, stream: str) -> None:
    nc = await nats.connect(url, name="immos-bench-departures")
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def _bound(url: str, stream: str) -> tuple[Any, Any]:
    """A connection and its pull subscription bound to the run's durable."""
    nc = await nats.connect(url, name="immos-bench-departures")
    sub = await nc.jetstream().pull_subscribe_bind("bench", stream=stream)
    nats_transport.queued_first(sub)
    return nc, sub


async def through_nats(
    processor: Processor, lines: list[bytes], rate: float, folder: Path, name: str
) -> _Run:
    """Publish ``lines`` from a child process (paced at ``rate`` events/s; 0: flat out) to a
    stream of its own, consume them with ``processor``, delete the stream.

    The consuming loop is written here with nats-py, around ``Processor.process``, because
    ``nats_transport.consume`` builds its processor (and so its matcher) from the store's
    person index, which this benchmark does not load: its index is the truth, in memory. It
    uses the transport's own stream and consumer configuration, batch size, fetch
    (:func:`nats_transport.queued_first`) and order (process and commit, then acknowledge).
    """
    url, stream, subject, path = _run_input(name, lines, folder)
    child = None
    await _open_stream(url, stream, subject)
    nc, sub = await _bound(url, stream)
    try:
        server = _server_cpu()
        child = await _publisher(url, stream, subject, path, rate)
        done = asyncio.ensure_future(child.communicate())
        outcomes, lags, first, last = await _consume(
            nc, sub, processor, lambda n: done.done() and n >= _stored(done)
        )
        published = json.loads((await done)[0])
        seconds = (last - first).total_seconds() if first else 0.0
        return _Run(outcomes, lags, seconds, published, published.pop("cpu_s"),
                    _spent(server, _server_cpu()))  # fmt: skip
    finally:
        if child is not None and child.returncode is None:
            child.kill()
            await child.wait()
        await nc.close()
        await _delete_stream(url, stream)


async def _consume(
    nc: Any,
    sub: Any,
    processor: Processor,
    finished: Callable[[int], bool],
    settled: Callable[[int], None] | None = None,
) -> tuple[list[Outcome], list[float], datetime | None, datetime]:
    """Fetch, process, commit and acknowledge until ``finished`` (given the events this
    consumer settled) says so; ``settled`` is told each batch's size. Returns the outcomes,
    each event's lag (publication to its batch's commit), the first publication seen and
    the last commit."""
    outcomes: list[Outcome] = []
    lags: list[float] = []
    first: datetime | None = None
    last = utcnow()
    while not finished(len(outcomes)):
        try:
            msgs = await sub.fetch(BATCH, timeout=0.5)
        except TimeoutError:  # nats-py raises its own subclass, or asyncio's (the builtin)
            continue
        items = [Received(m.data, utcnow(), m.metadata.timestamp) for m in msgs]
        out = await asyncio.to_thread(processor.process, items)
        last = utcnow()
        for msg in msgs:
            await msg.ack()
        await nc.flush()
        for msg in msgs:
            sent = msg.metadata.timestamp
            first = sent if first is None or sent < first else first
            lags.append((last - sent).total_seconds() * 1e3)
        outcomes.extend(out)
        if settled:
            settled(len(msgs))
    return outcomes, lags, first, last


def through_workers(
    matcher: Matcher, lines: list[bytes], rate: float, folder: Path, db: Path, name: str,
    workers: int,
) -> tuple[_Run, float]:  # fmt: skip
    """:func:`through_nats` with ``workers`` consumer processes on the durable, forked from
    this one after the matcher was built, as ``immos departures consume --workers`` forks
    them: each with its own connections to the same store and its own copy of the matcher
    (shared memory until written). Returns the run and the workers' CPU seconds."""
    url, stream, subject, path = _run_input(name, lines, folder)
    asyncio.run(_open_stream(url, stream, subject))
    # Everything alive is frozen before the fork, as consume_in_processes has it: a worker's
    # collections then never finalise this process's objects (its closed stores, say).
    settle_heap()
    context = multiprocessing.get_context("fork")
    settled, expected = context.Value("q", 0), context.Value("q", 0)
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    children = [
        context.Process(target=_worker, args=(matcher, folder, db, url, stream, settled,
                                              expected, sender))
        for _, sender in pipes
    ]  # fmt: skip
    try:
        for child, (_, sender) in zip(children, pipes, strict=True):
            child.start()
            sender.close()
        for receiver, _ in pipes:  # each bound to the durable
            _received(receiver, 120)
        server = _server_cpu()
        done = subprocess.run(
            [sys.executable, "-c", _PUBLISH, url, stream, subject, str(path), str(rate)],
            capture_output=True, check=False,
        )  # fmt: skip
        if not done.stdout.strip():
            raise RuntimeError(f"the publisher failed: {done.stderr.decode(errors='replace')}")
        published = json.loads(done.stdout)
        publisher_cpu = published.pop("cpu_s")
        expected.value = int(published["published"])
        results = [_received(receiver, 1800) for receiver, _ in pipes]
        server_cpu = _spent(server, _server_cpu())
        for child in children:
            child.join()
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
        asyncio.run(_delete_stream(url, stream))
    firsts = [r["first"] for r in results if r["first"]]
    seconds = (max(r["last"] for r in results) - min(firsts)).total_seconds() if firsts else 0.0
    run = _Run([o for r in results for o in r["outcomes"]],
               [lag for r in results for lag in r["lags"]], seconds, published,
               publisher_cpu, server_cpu)  # fmt: skip
    return run, sum(r["cpu_s"] for r in results)


def _received(receiver: Any, seconds: float) -> Any:
    """What a worker sent, or an error if it sent nothing in ``seconds`` (or died)."""
    if not receiver.poll(seconds):
        raise RuntimeError(f"a consumer worker sent nothing in {seconds:.0f} s")
    return receiver.recv()


def _worker(
    matcher: Matcher, folder: Path, db: Path, url: str, stream: str, settled: Any,
    expected: Any, sender: Any,
) -> None:  # fmt: skip
    """One consumer process of :func:`through_workers`: consumes until the events the
    workers settled together reach what the stream stored, then sends what it measured."""
    rt = open_runtime(_settings(folder, db), upgrade=False)
    try:
        processor = _processor(rt, matcher)
        cpu = time.process_time()

        def finished(_mine: int) -> bool:
            return bool(expected.value) and settled.value >= expected.value

        def count(n: int) -> None:
            with settled.get_lock():
                settled.value += n

        async def consume() -> tuple[list[Outcome], list[float], datetime | None, datetime]:
            nc, sub = await _bound(url, stream)
            try:
                sender.send("bound")
                return await _consume(nc, sub, processor, finished, count)
            finally:
                await nc.close()

        outcomes, lags, first, last = asyncio.run(consume())
        sender.send({"outcomes": outcomes, "lags": lags, "first": first, "last": last,
                     "cpu_s": time.process_time() - cpu})  # fmt: skip
    finally:
        rt.close()


def _processor(rt: Any, matcher: Matcher) -> Processor:
    """A consumer's processor over the benchmark's matcher, as a service runs one."""
    processor = Processor(rt, "nats", matcher)
    # The index is the truth, in memory; the store holds no person index to refresh it
    # from, and its check would find it "stale" (no resolution run) and rebuild it empty.
    processor.checked = math.inf
    # As a service's processor: what the matcher adds is moved out of the garbage
    # collector as it accumulates (the index itself was frozen when built).
    processor.long_lived = True
    # As a service's store: SQLite's log checkpointed by a thread, not inside commits.
    rt.checkpoint_in_background()
    return processor


def _stored(done: asyncio.Future[tuple[bytes, bytes]]) -> int:
    """Messages the stream stored, from the publisher's report (it must have succeeded)."""
    stdout, stderr = done.result()
    if not stdout.strip():
        raise RuntimeError(f"the publisher failed: {stderr.decode(errors='replace')[-2000:]}")
    return int(json.loads(stdout)["published"])


def _inbox_lags(db: Path) -> list[float]:
    """The inbox's own lag per event (receipt, here publication, to the inbox write, which
    comes just before the commit): a cross-check of the lags measured by the consumer."""
    with sqlite3.connect(db) as con:
        return [lag for (lag,) in con.execute("SELECT lag_ms FROM departure_inbox")]


def nats_row(
    template: Path, folder: Path, matcher: Matcher, lines: list[bytes], rate: float,
    workers: int = 1,
) -> tuple[dict[str, Any], _Run, float]:  # fmt: skip
    """One pass of ``lines`` through NATS on a fresh copy of the store, flat out (``rate``
    0) or paced at ``rate`` events/s, by one consumer (this process) or ``workers``
    processes: the row's measures, the run, and the consumers' CPU seconds (the publisher
    and the server are other processes)."""
    name = _run_name(rate, workers)
    db = folder / f"{name}.db"
    _copy_store(template, db)
    if workers > 1:
        run, cpu_s = through_workers(matcher, lines, rate, folder, db, name, workers)
    else:
        rt = open_runtime(_settings(folder, db), upgrade=False)
        cpu = time.process_time()
        try:
            processor = _processor(rt, matcher)
            run = asyncio.run(through_nats(processor, lines, rate, folder, name))
        finally:
            rt.close()
        cpu_s = time.process_time() - cpu
    detail = {
        "offered_rate": rate,
        "workers": workers,
        "published": run.published,
        "duplicates": sum(o.status == "duplicate" for o in run.outcomes),
        "inbox_lag": latency(_inbox_lags(db), 1),
        "cpu_ms_per_event": {
            "consumers": cpu_s * 1e3 / max(len(run.outcomes), 1),
            "publisher": run.publisher_cpu_s * 1e3 / max(len(lines), 1),
            "server": None
            if run.server_cpu_s is None
            else run.server_cpu_s * 1e3 / max(len(lines), 1),
        },
    }
    db.unlink()
    return detail, run, cpu_s


def _nats(
    template: Path, folder: Path, matcher: Matcher, p: Input, present: set[str], lines: list[bytes],
    rate: float, workers: int = 1,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    detail, run, cpu_s = nats_row(template, folder, matcher, lines, rate, workers)
    applied = [o for o in run.outcomes if o.status == "applied"]
    row = {
        "system": "ours: NATS end to end, "
        + (f"{workers} consumer processes, " if workers > 1 else "")
        + (f"paced at {rate:,.0f}/s" if rate else "published flat out"),
        "events": len(run.outcomes),
        "events_per_s": round(len(run.outcomes) / run.seconds, 1) if run.seconds else None,
        "cpu_ms_per_event": round(cpu_s * 1e3 / max(len(run.outcomes), 1), 3),
        **latency(run.lags_ms, 1),
        **_accuracy([(str(o.event_id), o.band, o.person_id) for o in applied], p.truth, present),
        "dead_letters": sum(o.status == "dead-letter" for o in run.outcomes),
        "setup_s": None,
    }
    _log(f"{p.persons:,}: {row['system']}: {row['events_per_s']} events/s, p99 {row['p99_ms']} ms")
    return row, detail


def _nats_runs(
    template: Path, folder: Path, matcher: Matcher, p: Input, present: set[str],
    lines: list[bytes], paced_n: int, workers: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """One configuration's runs on ``lines``: flat out, paced at the target rate and, if
    flat out fell short of it, paced at :data:`SUSTAINABLE` of what it reached."""
    flat_n = len(lines) - 2 * paced_n
    details: dict[str, Any] = {}
    flat, details[_run_name(0, workers)] = _nats(template, folder, matcher, p, present,
                                                 lines[:flat_n], 0, workers)  # fmt: skip
    rows = [flat]
    rates = [TARGET_NATS_RATE]
    if flat["events_per_s"] and flat["events_per_s"] < TARGET_NATS_RATE:
        rates.append(round(SUSTAINABLE * flat["events_per_s"], -1))
    for number, rate in enumerate(rates):
        part = lines[flat_n + number * paced_n : flat_n + (number + 1) * paced_n]
        paced, details[_run_name(rate, workers)] = _nats(template, folder, matcher, p,
                                                         present, part, rate, workers)  # fmt: skip
        rows.append(paced)
    return rows, details


# -- the peer -------------------------------------------------------------------------------------


def peer_decision(
    pairs: pa.Table, person_of: dict[str, str] | Any, doc: ModelDoc, verify_weight: float
) -> tuple[str, str | None]:
    """Splink's pairs banded per person as ours, then the matcher's fuzzy rule."""
    ranked = _peer_ranked(pairs, person_of)
    band, _ = band_of(ranked, doc)
    if band == "new" or not ranked:
        return "unmatched", None
    top = ranked[0]
    verified = band == "linked" and top.score.match_weight >= verify_weight
    return ("verified" if verified else "review"), top.person_id


def peer_row(p: Input, present: set[str], verify_weight: float, calls: int) -> dict[str, Any]:
    """Splink's ``predict_between`` of each of the first ``calls`` events."""
    api, linker, index_df, setup_s = _peer_setup(p.index, p.doc)
    ms, decisions = [], []
    cpu_s = 0.0
    for number, event in enumerate(p.events[:calls]):
        row = feature_row(raw_record(event, f"departures:{event.event_id}"))
        cpu, started = time.process_time(), time.perf_counter()
        new = api.register(
            pa.Table.from_pylist([row], schema=FEATURE_SCHEMA), table_name=f"event_{number}"
        )
        pairs = linker.inference.predict_between(new, index_df, warning_mode="never")
        table = pairs.as_pyarrow_table()
        pairs.drop_table_from_database_and_remove_from_cache()
        new.drop_table_from_database_and_remove_from_cache(force_non_splink_table=True)
        band, person = peer_decision(table, p.truth.entity_of, p.doc, verify_weight)
        ms.append((time.perf_counter() - started) * 1e3)
        cpu_s += time.process_time() - cpu
        decisions.append((event.event_id, band, person))
    return {
        "system": "peer: Splink predict_between",
        "events": len(ms),
        "events_per_s": round(len(ms) / (sum(ms) / 1e3), 2),
        "cpu_ms_per_event": round(cpu_s * 1e3 / len(ms), 1),
        **latency(ms, 1),
        **_accuracy(decisions, p.truth, present),
        "dead_letters": None,
        "setup_s": round(setup_s, 2),
    }


# -- one size -------------------------------------------------------------------------------------


def measure(persons: int, budget: Budget) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every system on one world of ``persons``: the rows and the details for the notes."""
    load = os.getloadavg()[0]
    with TemporaryDirectory(prefix="immos-bench-departures-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        p = prepare(persons, folder / "world", budget.events)
        _log(f"{persons:,}: world, {p.index.num_rows:,} index features and model in "
             f"{time.perf_counter() - started:.0f} s; {len(p.lines):,} events sampled")  # fmt: skip
        shutil.rmtree(folder / "world")
        present = set(p.index_persons)
        ours, matcher, detail = _ours(p, present)
        for row in ours:
            _log(f"{persons:,}: {row['system']}: {row['events_per_s']:,} events/s, "
                 f"p99 {row['p99_ms']} ms")  # fmt: skip
        started = time.perf_counter()
        template = template_store(folder, sorted(present))
        detail["store_s"] = time.perf_counter() - started
        flat_n, paced_n = budget.split(len(p.lines))
        rows = list(ours)
        share = flat_n + 2 * paced_n  # one configuration's events
        for number, workers in enumerate((1, WORKERS)):
            lines = p.lines[number * share : (number + 1) * share]
            runs, runs_detail = _nats_runs(template, folder, matcher, p, present, lines,
                                           paced_n, workers)  # fmt: skip
            rows += runs
            detail.update(runs_detail)
        peer = peer_row(p, present, matcher.verify_weight, budget.peer)
        _log(f"{persons:,}: peer {peer['events_per_s']} events/s, p50 {peer['p50_ms']} ms")
    rows.append(peer)
    for row in rows:
        row["persons_indexed"] = persons
        row["records_indexed"] = p.index.num_rows
        row["vs_peer"] = (
            round(row["events_per_s"] / peer["events_per_s"], 1) if row["events_per_s"] else None
        )
    detail.update(
        stream_events=p.stream_events, sampled=len(p.lines), malformed=p.malformed,
        world_s=p.world_s, features_s=p.features_s, train_s=p.train_s,
        link_weight=p.doc.link_weight, verify_weight=matcher.verify_weight,
        peak_rss_mib=peak_rss_mib(), load=(load, os.getloadavg()[0]),
    )  # fmt: skip
    return rows, detail


# -- report ---------------------------------------------------------------------------------------

COLUMNS = [
    "system", "persons_indexed", "records_indexed", "events", "events_per_s", "vs_peer",
    "cpu_ms_per_event", "p50_ms", "p95_ms", "p99_ms", "max_ms", "precision_verified", "recall",
    "verified", "review", "unmatched", "dead_letters", "setup_s",
]  # fmt: skip


def _sizes(quick: bool, sizes: list[int] | None) -> list[int]:
    env = os.environ.get("IMMOS_BENCH_SIZES", "").strip()
    if sizes is None and env:
        sizes = [int(s.replace("_", "")) for s in env.split(",") if s.strip()]
    return sizes or [QUICK_PERSONS if quick else TARGET_PERSONS]


def run(
    quick: bool = False, sizes: list[int] | None = None, budget: Budget | None = None
) -> BenchReport:
    """Departure events matched against an index of 1M persons (quick: 20k): in process, NATS
    end to end, and Splink's real-time comparison."""
    rows: list[dict[str, Any]] = []
    details: dict[int, dict[str, Any]] = {}
    for persons in _sizes(quick, sizes):
        measured, details[persons] = measure(persons, budget or Budget())
        rows += measured
    return BenchReport(
        title="Departure matching: events/s and latency, in process and through NATS, vs Splink",
        columns=COLUMNS,
        rows=[{c: row.get(c) for c in COLUMNS} for row in rows],
        targets=targets(rows),
        notes=NOTES + [n for persons, d in details.items() for n in _notes(persons, d)],
    )


def _of(rows: list[dict[str, Any]], persons: int, prefix: str) -> dict[str, Any] | None:
    found = [r for r in rows if r["persons_indexed"] == persons and r["system"].startswith(prefix)]
    return found[0] if found else None


def targets(rows: list[dict[str, Any]]) -> list[Target]:
    """The issue's three targets, judged at the largest size run (met only at 1M persons)."""
    persons = max(r["persons_indexed"] for r in rows)
    at_size = persons >= TARGET_PERSONS
    size = f" at {persons:,} persons" + ("" if at_size else " (not the target size)")
    ours = _of(rows, persons, "ours: Matcher.match_many")
    single = _of(rows, persons, "ours: Matcher.match,")
    peer = _of(rows, persons, "peer:")
    configs = []  # (flat out, paced at the target rate, consumer processes)
    for workers in (1, WORKERS):
        prefix = "ours: NATS end to end, " + (f"{workers} consumer processes, " * (workers > 1))
        flat = _of(rows, persons, prefix + "published")
        paced = _of(rows, persons, f"{prefix}paced at {TARGET_NATS_RATE:,.0f}")
        if flat and paced:
            configs.append((flat, paced, workers))
    assert ours and single and configs and peer

    def nats_met(flat: dict[str, Any], paced: dict[str, Any]) -> bool:
        rate = min(flat["events_per_s"] or 0.0, paced["events_per_s"] or 0.0)
        return rate >= TARGET_NATS_RATE * 0.98 and paced["p99_ms"] <= TARGET_NATS_P99_MS

    met = [c for c in configs if nats_met(c[0], c[1])]
    observed = "; ".join(
        f"{w} consumer process{'es' if w > 1 else ''}: flat out {f['events_per_s']:,.0f} "
        f"events/s, paced at {TARGET_NATS_RATE:,.0f}/s {pc['events_per_s']:,.0f} events/s "
        f"committed, p99 {pc['p99_ms']} ms"
        for f, pc, w in configs
    )
    flat = configs[0][0]
    return [
        Target(
            f"matcher ≥ {TARGET_MATCHER_RATE:,.0f} events/s on one core at 1M persons",
            at_size and ours["events_per_s"] >= TARGET_MATCHER_RATE,
            f"{ours['events_per_s']:,.0f} events/s in batches of {BATCH} (p99 "
            f"{ours['p99_ms']} ms, the batch's time); one event at a time "
            f"{single['events_per_s']:,.0f} events/s (p99 {single['p99_ms']} ms){size}",
        ),
        Target(
            f"≥ {TARGET_NATS_RATE:,.0f} events/s end to end through NATS with p99 ≤ "
            f"{TARGET_NATS_P99_MS:.0f} ms at 1M persons",
            at_size and bool(met),
            observed + size,
        ),
        Target(
            f"matcher ≥ {TARGET_PEER_RATIO:.0f}× the baseline's (Splink real time) throughput",
            at_size and (ours["vs_peer"] or 0) >= TARGET_PEER_RATIO,
            f"matcher {ours['vs_peer']:,.0f}×, NATS flat out {flat['vs_peer']:,.0f}× "
            f"(peer {peer['events_per_s']} events/s){size}",
        ),
    ]


NOTES = [
    "events_per_s: in process and peer, events / the time spent matching (one thread; one "
    f"event at a time, or Matcher.match_many on batches of {BATCH:,}, the most the consumers "
    "fetch, decisions equal to one at a time); NATS, events committed / (last commit − first "
    "publication)",
    "latency: in process, Matcher.match (the event's feature row included), in batches the "
    "batch's time (every event of a batch waits for all of it); NATS, from the "
    f"server's publication timestamp to the batch's commit (batches of up to {BATCH:,}, "
    "acknowledged after "
    "the commit); flat-out latency is mostly the wait behind the backlog, the paced runs give "
    "the latency at a given load; peer, one predict_between call given the feature row",
    "vs_peer: events_per_s / the peer's; accuracy against the world's truth "
    "(departures.accuracy.score): precision of verified, recall of verified + review among "
    "events whose person is in the index; the peer on its sample of events only",
    "NATS runs: SQLite store in a temporary file; the publisher is a child process "
    "(nats_transport.publish, Nats-Msg-Id = event id); the consumer is this process, sharing "
    "the in-memory matcher (verified events are added to it, as the service does), or "
    f"{WORKERS} processes forked from it on one durable (immos departures consume --workers "
    f"{WORKERS}), each with its copy of the matcher and its own connections to the store, "
    "their CPU time added up; each run on a fresh copy of the store and its own slice of the "
    "sample; dead_letters are the malformed lines of the sample",
]


def _notes(persons: int, d: dict[str, Any]) -> list[str]:
    at = f"{persons:,} persons"
    paths = ", ".join(
        f"{path} {count:,} (p50 {d['by_path'][path]['p50_ms']} ms, p99 "
        f"{d['by_path'][path]['p99_ms']} ms)"
        for path, count in sorted(d["paths"].items())
    )
    notes = [
        f"{at}: {d['stream_events']:,} events in the world's stream, {d['sampled']:,} sampled, "
        f"{d['malformed']:,} refused by read_event; link weight {d['link_weight']:.2f}, "
        f"verify weight {d['verify_weight']:.2f}",
        f"{at}: in-process paths: {paths}; the event's feature row alone takes "
        f"{d['feature_ms'] * 1e3:.0f} µs on average; the fuzzy path scores "
        f"{d['fuzzy_pairs'][0]:.0f} candidate pairs on average (p99 {d['fuzzy_pairs'][1]:.0f}), "
        "its stages (ms, mean): "
        + ", ".join(f"{k} {v:.3f}" for k, v in d["fuzzy_stages_ms"].items()),
        f"{at}: Matcher.match_many in batches of {BATCH} decided {d['batch_differ']:,} events "
        "differently from Matcher.match one at a time (band, person, weight, explanation; "
        "timings aside)",
        f"{at}: world generation {d['world_s']:.0f} s, index features {d['features_s']:.0f} s, "
        f"training {d['train_s']:.0f} s, store with the persons {d['store_s']:.0f} s (none "
        f"counted); setup_s: ours = LinkIndex.build, materialise and warm-up; peer = index "
        f"registered and its TF tables; peak RSS {d['peak_rss_mib']:,.0f} MiB; load average "
        f"{d['load'][0]:.1f} at the start, {d['load'][1]:.1f} at the end (2 cores, shared)",
    ]
    for key in [k for k in d if k.startswith(("flat", "paced"))]:
        run = d[key]
        notes.append(
            f"{at}: NATS {key} ({run['workers']} consumer process"
            f"{'es' if run['workers'] > 1 else ''}): {run['published']['published']:,} stored "
            "by the stream "
            f"({run['published']['duplicates']:,} dropped as duplicates, published at "
            f"{run['published']['rate']:,.0f}/s), {run['duplicates']:,} inbox duplicates; the "
            f"inbox's own lag_ms (to the inbox write, before the commit): p50 "
            f"{run['inbox_lag']['p50_ms']} ms, p99 {run['inbox_lag']['p99_ms']} ms; CPU ms "
            "per event: "
            + ", ".join(
                f"{who} {ms:.3f}" for who, ms in run["cpu_ms_per_event"].items() if ms is not None
            )
        )
    return notes
