"""The NATS JetStream transport: de-duplicated publication, explicit acks, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import nats
import orjson
import pytest
from sqlalchemy import text

from immigrationos.core.errors import ValidationFailed
from immigrationos.departures import nats_transport
from immigrationos.departures.nats_transport import consume, consume_sync, message_id, publish_sync
from immigrationos.departures.service import Processor
from immigrationos.runtime import Runtime, open_runtime

from .conftest import NATS_URL, Names, register_departures, store_settings, synthetic_events

VALID = 300
TWICE = 5


def _rows(runtime: Runtime, sql: str) -> list[Any]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def _drain(runtime: Runtime, names: Names, **kwargs: Any) -> nats_transport.ConsumeReport:
    return consume_sync(
        runtime, NATS_URL, durable=names.durable, drain=True, max_wait=0.5, **names.routing,
        **kwargs,
    )  # fmt: skip


def test_each_event_applied_once_duplicates_dropped_malformed_dead_lettered(
    departures_store: Runtime, nats_names: Names
) -> None:
    events = synthetic_events(VALID, "NT")
    unreadable = b"{this is not JSON"
    invalid = orjson.dumps({"event_id": "NT-invalid", "channel": "manifest"})
    published = publish_sync(
        NATS_URL, [*events, *events[:TWICE], unreadable, invalid], **nats_names.routing
    )
    assert (published.published, published.duplicates) == (VALID + 2, TWICE)
    assert published.without_id == 1  # the unreadable one: no Nats-Msg-Id

    report = _drain(departures_store, nats_names)

    assert report.stopped == "drained"
    assert (report.applied, report.duplicates, report.dead_letters) == (VALID, 0, 2)
    assert report.failed == report.redelivered == 0
    valid_ids = {orjson.loads(e)["event_id"] for e in events}
    inbox = _rows(departures_store, "SELECT event_id, transport, lag_ms FROM departure_inbox")
    assert {r[0] for r in inbox} == valid_ids and len(inbox) == VALID
    assert {r[1] for r in inbox} == {"nats"} and all(r[2] >= 0 for r in inbox)
    assert _rows(departures_store, "SELECT count(*) FROM departures") == [(VALID,)]
    letters = _rows(departures_store, "SELECT event_id, transport, raw FROM departure_dead_letters")
    assert sorted(letters, key=str) == sorted(
        [(None, "nats", unreadable.decode()), ("NT-invalid", "nats", invalid.decode())], key=str
    )


def test_a_republication_the_window_misses_changes_nothing(
    departures_store: Runtime, nats_names: Names
) -> None:
    """A stream recreated (its de-duplication memory gone) and published again: the server
    stores every event anew, and the inbox makes each a duplicate."""
    events = synthetic_events(50, "RP")
    publish_sync(NATS_URL, events, **nats_names.routing)
    assert _drain(departures_store, nats_names).applied == 50

    asyncio.run(_delete(nats_names.stream))
    again = publish_sync(NATS_URL, events, **nats_names.routing)
    assert (again.published, again.duplicates) == (50, 0)
    report = _drain(departures_store, nats_names)

    assert (report.applied, report.duplicates) == (0, 50)
    assert _rows(departures_store, "SELECT count(*) FROM departure_inbox") == [(50,)]
    assert _rows(departures_store, "SELECT count(*) FROM departures") == [(50,)]


async def _delete(stream: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


def test_consumers_on_one_durable_share_the_work(
    departures_store: Runtime, nats_names: Names
) -> None:
    publish_sync(NATS_URL, synthetic_events(2000, "SH"), **nats_names.routing)

    async def both() -> list[nats_transport.ConsumeReport]:
        one = {"batch_size": 64, "max_wait": 0.5, "drain": True, **nats_names.routing}
        runs = [consume(departures_store, NATS_URL, nats_names.durable, **one) for _ in "ab"]
        return list(await asyncio.gather(*runs))

    reports = asyncio.run(both())

    assert all(r.applied > 0 for r in reports), [r.to_json() for r in reports]
    assert sum(r.applied + r.duplicates for r in reports) >= 2000
    assert sum(r.applied for r in reports) == 2000
    assert _rows(departures_store, "SELECT count(DISTINCT event_id) FROM departures") == [(2000,)]


def test_worker_processes_share_the_work_and_report_together(
    runtime: Runtime, nats_names: Names
) -> None:
    """On SQLite and on PostgreSQL: the store's connections do not cross the fork."""
    register_departures(runtime)
    publish_sync(NATS_URL, synthetic_events(2000, "WK"), **nats_names.routing)

    report = _drain(runtime, nats_names, batch_size=16, workers=2)

    assert report.stopped == "drained" and report.last_error is None, report.to_json()
    assert len(report.workers) == 2 and all(n > 0 for n in report.workers), report.workers
    assert sum(report.workers) == report.events == 2000
    assert (report.applied, report.duplicates, report.failed) == (2000, 0, 0)
    assert len(report.lags_ms) == 2000 and report.startup_seconds < report.seconds
    assert _rows(runtime, "SELECT count(DISTINCT event_id) FROM departures") == [(2000,)]
    assert _rows(runtime, "SELECT count(*) FROM departure_inbox") == [(2000,)]


_WORKERS_UNTIL_STOPPED = """
import faulthandler, json, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the workers inherit it: see _report
from pathlib import Path
from immigrationos.departures.nats_transport import consume_sync
from immigrationos.runtime import open_runtime
from tests.departures_nats.conftest import store_settings
folder, url, durable, stream, subject, idle, ack_wait = sys.argv[1:8]
runtime = open_runtime(store_settings(Path(folder)), upgrade=False)
report = consume_sync(runtime, url, durable=durable, workers=2, max_wait=0.2, stream=stream,
                      subject=subject, idle_exit=float(idle) or None, ack_wait=float(ack_wait))
runtime.close()
print(json.dumps(report.to_json()))
"""


def _workers(
    store: Runtime, names: Names, folder: Path, events: int, idle_exit: float = 0.0,
    ack_wait: float = 30.0,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """``consume_sync(workers=2)`` in a process of its own, once it applied ``events``."""
    args = [str(folder), NATS_URL, names.durable, names.stream, names.subject, str(idle_exit),
            str(ack_wait)]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", _WORKERS_UNTIL_STOPPED, *args],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while _rows(store, "SELECT count(*) FROM departure_inbox") != [(events,)]:
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise AssertionError(child.communicate()[1].decode()[-2000:] or "no events applied")
        time.sleep(0.2)
    return child


def _children(pid: int) -> list[int]:
    return [int(n) for n in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _report(child: subprocess.Popen[bytes]) -> dict[str, Any]:
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        # Where each process stands (their stacks, on stderr), then the failure.
        for pid in [child.pid, *_children(child.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        time.sleep(1)
        for pid in _children(child.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.kill()
        stacks = child.communicate()[1].decode()
        raise AssertionError(f"still running after 60 s:\n{stacks}") from None
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err.decode()[-2000:]
    report: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return report


def test_sigterm_stops_every_worker_after_its_batch(
    departures_store: Runtime, nats_names: Names, tmp_path: Path
) -> None:
    publish_sync(NATS_URL, synthetic_events(300, "ST"), **nats_names.routing)
    child = _workers(departures_store, nats_names, tmp_path, 300)

    child.send_signal(signal.SIGTERM)
    report = _report(child)

    # Both workers stopped on the signal and sent their reports: none was killed or orphaned.
    assert report["stopped"] == "stop" and len(report["workers"]) == 2, report
    assert report["applied"] == 300 and report["failed"] == 0


def test_a_killed_worker_is_named_and_the_other_goes_on(
    departures_store: Runtime, nats_names: Names, tmp_path: Path
) -> None:
    publish_sync(NATS_URL, synthetic_events(100, "KW"), **nats_names.routing)
    child = _workers(departures_store, nats_names, tmp_path, 100, idle_exit=6.0, ack_wait=2.0)
    workers = _children(child.pid)
    assert len(workers) == 2

    os.kill(workers[0], signal.SIGKILL)
    publish_sync(NATS_URL, synthetic_events(100, "KX"), **nats_names.routing)
    # The other worker applies the rest, what the dead one had fetched included (redelivered
    # after ack_wait), then stops when idle.
    report = _report(child)

    assert report["stopped"] == "1 of 2 workers ended without a report", report
    assert "immos-departures-worker-" in report["last_error"] and len(report["workers"]) == 1
    assert _rows(departures_store, "SELECT count(*) FROM departure_inbox") == [(200,)]
    assert _rows(departures_store, "SELECT count(DISTINCT event_id) FROM departures") == [(200,)]


def test_a_consumer_gives_back_the_signal_handlers_it_found(
    departures_store: Runtime, nats_names: Names
) -> None:
    """A worker's own handler is back once its consumer returns, so a second SIGTERM then
    does not end it before it sends its report."""
    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        report = _drain(departures_store, nats_names)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between two of this thread's instructions
    finally:
        signal.signal(signal.SIGTERM, before)

    assert report.stopped == "drained" and seen == [signal.SIGTERM]


def test_a_worker_forked_before_it_set_its_handler_stops_itself(
    departures_store: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor's handler, inherited by a worker for the moment before the worker sets
    its own, stops that worker and signals no one."""
    team = nats_transport._Workers(departures_store, cast(Any, None), NATS_URL, {})
    team.supervisor += 1  # as a forked worker sees it
    monkeypatch.setattr(nats_transport, "_stopping", nats_transport.threading.Event())
    killed: list[int] = []
    monkeypatch.setattr(nats_transport.os, "kill", lambda pid, _sig: killed.append(pid))

    team.forward(signal.SIGTERM, None)

    assert nats_transport._stopping.is_set() and not team.stopping.is_set() and killed == []


def test_a_failing_event_is_nakked_and_comes_back(
    departures_store: Runtime, nats_names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = synthetic_events(20, "NK")
    publish_sync(NATS_URL, events, **nats_names.routing)
    monkeypatch.setattr(nats_transport, "NAK_DELAY", 0.2)
    real = Processor.process
    failures = {"NK-000007": 2}  # fails twice (in its batch, then alone), then succeeds

    def flaky(self: Processor, batch: list[Any]) -> list[Any]:
        for item in batch:
            event_id = orjson.loads(item.raw)["event_id"]
            if failures.get(event_id):
                failures[event_id] -= 1
                raise RuntimeError(f"database hiccup on {event_id}")
        return real(self, batch)

    monkeypatch.setattr(Processor, "process", flaky)
    report = _drain(departures_store, nats_names)

    assert report.failed == 1 and report.redelivered == 1
    assert report.last_error == "RuntimeError: database hiccup on NK-000007"
    assert report.applied == 20 and report.duplicates == 0
    assert _rows(departures_store, "SELECT count(*) FROM departure_inbox") == [(20,)]


def test_a_store_without_the_departures_source_is_refused_before_connecting(tmp_path: Any) -> None:
    runtime = open_runtime(store_settings(tmp_path))
    try:
        with pytest.raises(ValidationFailed, match="departures source is not registered"):
            consume_sync(runtime, "nats://127.0.0.1:1", drain=True)
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"event_id": "DEP-1:a.b_c", "channel": "manifest"}', "DEP-1:a.b_c"),
        (b'{"event_id": "x\\r\\nNats-Expected-Stream: other"}', None),  # no header injection
        (b'{"event_id": 12}', None),
        (b'["event_id"]', None),
        (b"not json", None),
        (b'{"event_id": "' + b"a" * 65 + b'"}', None),
    ],
)
def test_only_a_well_formed_event_id_becomes_the_message_id(raw: bytes, expected: str) -> None:
    assert message_id(raw) == expected


def test_a_fetch_takes_queued_messages_at_once_in_order_and_still_waits_when_none(
    nats_names: Names,
) -> None:
    """The consumer's fetch (nats-py's, with queued messages taken without a round of the
    event loop each) returns every published message once, in stream order, in batches of
    the size asked; with nothing left it waits for the timeout as before."""
    events = synthetic_events(50, "QF")
    publish_sync(NATS_URL, events, **nats_names.routing)

    async def fetch_all() -> tuple[list[bytes], list[int], float]:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            config = nats_transport.consumer_config(
                nats_names.durable, nats_names.subject, 30.0, 1000
            )
            await nats_transport.ensure_consumer(js, nats_names.stream, config)
            sub = await js.pull_subscribe_bind(nats_names.durable, stream=nats_names.stream)
            waiting = sub._sub.next_msg
            nats_transport.queued_first(sub)
            assert sub._sub.next_msg is not waiting
            got, sizes = [], []
            while len(got) < len(events):
                msgs = await sub.fetch(16, timeout=2.0)
                sizes.append(len(msgs))
                for msg in msgs:
                    got.append(msg.data)
                    await msg.ack()
            assert sub._sub.pending_msgs == 0 and sub._sub.pending_bytes == 0
            started = asyncio.get_running_loop().time()
            with pytest.raises(nats.errors.TimeoutError):
                await sub.fetch(16, timeout=0.3)
            return got, sizes, asyncio.get_running_loop().time() - started
        finally:
            await nc.close()

    got, sizes, waited = asyncio.run(fetch_all())
    assert got == [e.strip() for e in events]
    assert sizes == [16, 16, 16, 2]
    assert waited >= 0.25
