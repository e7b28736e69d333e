"""Exactly once under crashes: consumers killed with SIGKILL at random moments of a stream of
100,000 departure events, restarted, and finally run until the stream is drained.

Each consumer is a separate process forked from this (warm) one, so a restart costs about a
second instead of the ~10 s a fresh interpreter spends loading the name tables; the kill is
a real SIGKILL of that process, wherever it is: starting, fetching, inside a batch's database
transaction, between the commit and the acks. Afterwards every event of the stream has
exactly one inbox entry, one departure and one source record, and every case step the
departures caused happened once.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.core.clock import utcnow
from immigrationos.departures.events import Malformed, read_event
from immigrationos.departures.nats_transport import consume_sync, message_id, publish_sync
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.load import load_cases
from immigrationos.resolution import service as resolution
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world

from .conftest import NATS_URL, Names, store_settings, synthetic_events

EVENTS = 100_000
KILLS = 24
ACK_WAIT = 6.0
"""Short, so a killed consumer's batch comes back within the run (production: 30 s)."""
WORLD_PERSONS = 300

pytestmark = pytest.mark.slow


@pytest.fixture
def kill_store(tmp_path: Path) -> Iterator[Runtime]:
    """A small resolved world with cases, its departure stream held back (matched events
    come from it and from the persons with open cases)."""
    folder = tmp_path / "store"
    generate_world(WorldConfig(persons=WORLD_PERSONS, seed=3, noise=NoiseConfig()), folder)
    runtime = open_runtime(store_settings(folder))
    ctx = system_context(Purpose.DATA_INTEGRATION, "kill test")
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        for definition in shipped_definitions():
            register(session, definition, ctx)
    for definition in shipped_definitions():
        if definition.id != "departures":
            with unit_of_work(runtime.sessions, ctx) as gw:
                ingest_file(
                    gw.session, gw, definition.id, folder / "sources" / str(definition.file)
                )
    with unit_of_work(runtime.sessions, system_context(Purpose.IDENTITY_RESOLUTION, "t")) as gw:
        resolution.run(gw)
    load_cases(runtime, showcase_pdf=False)
    try:
        yield runtime
    finally:
        runtime.close()


def _rows(runtime: Runtime, sql: str) -> list[Any]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(text(sql)).all())


def _matching_events(runtime: Runtime) -> list[bytes]:
    """The world's own departures, a later departure of each, and one now of every person
    with an open case (by passport when the person has one, else by name and birth date)."""
    stream = runtime.settings.data_dir / "sources" / "departures.jsonl"
    world = [orjson.loads(line) for line in stream.read_bytes().splitlines() if line.strip()]
    later = [
        e | {"event_id": f"{e['event_id']}-L", "occurred_at": _later(e["occurred_at"])}
        for e in world
        if e["channel"] != "self_report"
    ]
    now = utcnow().isoformat()
    persons = _rows(
        runtime,
        "SELECT p.id, p.given_name, p.family_name, p.birth_date, min(i.value), "
        "min(i.issuing_country) FROM cases c JOIN persons p ON p.id = c.person_id "
        "LEFT JOIN identifiers i ON i.person_id = p.id AND i.kind = 'passport' "
        "WHERE c.closed_at IS NULL GROUP BY p.id",
    )
    leaving = [
        {"event_id": f"CASE-{pid}", "channel": "land_exit", "occurred_at": now,
         "given_name": given, "family_name": family, "birth_date": birth,
         "document_type": "passport" if doc else None, "document_no": doc,
         "document_country": country, "port": "San Ysidro"}
        for pid, given, family, birth, doc, country in persons
    ]  # fmt: skip
    return [orjson.dumps(e) for e in [*world, *later, *leaving]]


def _later(occurred: str) -> str:
    return (datetime.fromisoformat(occurred) + timedelta(days=400)).isoformat()


def _consumer(folder: Path, names: Names, progress: Path) -> None:
    """A forked consumer process: its own database connections, its own NATS connection;
    writes its running report after every batch (the parent reads the last one)."""
    runtime = open_runtime(store_settings(folder), upgrade=False)
    with progress.open("ab", buffering=0) as out:

        def on_batch(report: Any) -> None:
            out.write(orjson.dumps(report.to_json()) + b"\n")

        consume_sync(runtime, NATS_URL, durable=names.durable, ack_wait=ACK_WAIT,
                     on_batch=on_batch, **names.routing)  # fmt: skip


def _last(progress: Path) -> dict[str, Any]:
    lines = [line for line in progress.read_bytes().splitlines() if line.endswith(b"}")]
    return orjson.loads(lines[-1]) if lines else {}


def _wait_for_a_batch(progress: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (progress.exists() and progress.stat().st_size):
        assert time.monotonic() < deadline, "the consumer processed no batch in a minute"
        time.sleep(0.02)


def _kill_repeatedly(folder: Path, names: Names, logs: Path, rng: random.Random) -> Counter[str]:
    """Start a consumer, kill it (SIGKILL) at a random moment, KILLS times; what the
    consumers reported before dying."""
    fork = multiprocessing.get_context("fork")
    seen: Counter[str] = Counter()
    for k in range(KILLS):
        progress = logs / f"consumer-{k:02d}.jsonl"
        process = fork.Process(target=_consumer, args=(folder, names, progress), daemon=True)
        process.start()
        if k % 6 == 5:
            time.sleep(rng.uniform(0.0, 1.0))  # anywhere in its start, or its first batch
        else:
            _wait_for_a_batch(progress)
            time.sleep(rng.uniform(0.0, 1.0))  # inside some batch, most likely
        assert process.pid is not None and process.is_alive(), f"consumer {k} ended by itself"
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        assert process.exitcode == -signal.SIGKILL
        last = _last(progress) if progress.exists() else {}
        seen.update(
            {key: int(last.get(key, 0)) for key in ("applied", "duplicates", "redelivered")}
        )
        seen["killed mid-run"] += bool(last)
    return seen


def test_killed_consumers_apply_every_event_exactly_once(
    nats_names: Names, kill_store: Runtime, tmp_path: Path
) -> None:
    started = time.perf_counter()
    matching = _matching_events(kill_store)
    events = synthetic_events(EVENTS - len(matching), "KILL", seed=5)
    rng = random.Random(20261001)
    for raw in matching:  # spread the matched ones through the stream
        events.insert(rng.randrange(len(events) + 1), raw)
    ids = {message_id(e) for e in events}
    assert len(events) == len(ids) == EVENTS and 250 <= len(matching) <= 1000

    published = publish_sync(NATS_URL, events, **nats_names.routing)
    assert (published.published, published.duplicates) == (EVENTS, 0)

    # No connection of this process may be inherited by a forked consumer (SQLite forbids it),
    # nor garbage for it to collect: a consumer's first collection (settle_heap) would then
    # finalise this process's objects (database handles, their threads) in a child that has
    # neither their threads nor their files; one such collection crashed a consumer.
    kill_store.engine.dispose()
    gc.collect()
    folder = kill_store.settings.data_dir
    seen = _kill_repeatedly(folder, nats_names, tmp_path, rng)
    final = consume_sync(kill_store, NATS_URL, durable=nats_names.durable, ack_wait=ACK_WAIT,
                         drain=True, **nats_names.routing)  # fmt: skip

    assert final.stopped == "drained"
    valid, unreadable = _readable(events)  # the world's stream carries some malformed events
    inbox = {r[0] for r in _rows(kill_store, "SELECT event_id FROM departure_inbox")}
    assert inbox == valid  # every event of the stream: none lost
    assert _rows(kill_store, "SELECT count(*) FROM departure_inbox") == [(len(valid),)]
    assert _rows(kill_store, "SELECT count(*), count(DISTINCT event_id) FROM departures") == [
        (len(valid), len(valid))
    ]  # none twice
    assert _rows(
        kill_store, "SELECT count(*) FROM source_records WHERE source_id = 'departures'"
    ) == [(len(valid),)]
    letters = _rows(kill_store, "SELECT event_id FROM departure_dead_letters")
    assert sorted((r[0] for r in letters), key=str) == sorted(unreadable, key=str)  # each once
    steps = _case_steps(kill_store)
    assert steps["caused"] == steps["recorded"] > 0  # each case effect once
    # The kills landed mid-batch: what a killed consumer held came back to another.
    assert seen["redelivered"] + final.redelivered > 0
    print(  # the numbers behind the claims, for the report (pytest -s)
        f"\n{EVENTS} events, {len(matching)} of a person, {KILLS} kills in "
        f"{time.perf_counter() - started:.0f}s; before dying the consumers reported {dict(seen)}; "
        f"the final one {final.to_json()}; case steps {steps}"
    )


def _readable(events: list[bytes]) -> tuple[set[str], list[str | None]]:
    """The ids of the events that validate, and of those that do not."""
    valid: set[str] = set()
    unreadable: list[str | None] = []
    for raw in events:
        try:
            valid.add(read_event(raw).event_id)
        except Malformed as problem:
            unreadable.append(problem.event_id)
    return valid, unreadable


def _case_steps(runtime: Runtime) -> dict[str, int]:
    """Case steps the inbox says departures applied, against case events that record a
    departure: equal when each effect happened exactly once."""
    caused = sum(
        1
        for (effects,) in _rows(
            runtime, "SELECT effects FROM departure_inbox WHERE effects != '[]'"
        )
        for effect in orjson.loads(effects)
        if effect.get("applied")
    )
    recorded = _rows(
        runtime,
        "SELECT count(*), count(DISTINCT json_extract(params, '$.departure_id') || case_id) "
        "FROM case_events WHERE json_extract(params, '$.departure_id') IS NOT NULL",
    )[0]
    assert recorded[0] == recorded[1], "a departure moved a case twice"
    return {"caused": caused, "recorded": recorded[0]}
