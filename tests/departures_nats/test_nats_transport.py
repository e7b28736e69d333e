"""The NATS JetStream transport: de-duplicated publication, explicit acks, dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import orjson
import pytest
from sqlalchemy import text

from immigrationos.core.errors import ValidationFailed
from immigrationos.departures import nats_transport
from immigrationos.departures.nats_transport import consume, consume_sync, message_id, publish_sync
from immigrationos.departures.service import Processor
from immigrationos.runtime import Runtime, open_runtime

from .conftest import NATS_URL, Names, store_settings, synthetic_events

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
