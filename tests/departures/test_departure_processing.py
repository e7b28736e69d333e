"""The stream processed against a resolved world with cases: accuracy against the ground
truth, exactly-once effects, dead letters, self-report confirmation, review decisions."""

from __future__ import annotations

import gc
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from tests.departures.conftest import World

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of
from immigrationos.audit.chain import verify
from immigrationos.core.errors import ValidationFailed
from immigrationos.core.heap import YOUNG_OBJECTS
from immigrationos.departures import service as service_module
from immigrationos.departures.accuracy import score, stands_for, truth_of
from immigrationos.departures.models import DeadLetter, Departure, InboxEntry
from immigrationos.departures.replay import replay
from immigrationos.departures.service import (
    Outcome,
    Processor,
    build_matcher,
    decide_review,
    received,
)
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase
from immigrationos.persons.models import RecordLink
from immigrationos.runtime import Runtime
from immigrationos.sources.models import SourceRecord

DEPARTURE_STEPS = ("removal_verified", "voluntary_departure_verified", "closed_as_departed")


def _count(rt: Runtime, model: Any, *where: Any) -> int:
    with rt.engine.connect() as conn:
        stmt = select(func.count()).select_from(model.__table__)
        for w in where:
            stmt = stmt.where(w)
        return int(conn.scalar(stmt) or 0)


def _run_all(processor: Processor, world: World) -> list[Outcome]:
    outcomes: list[Outcome] = []
    lines = world.lines()
    for i in range(0, len(lines), 300):
        outcomes += processor.process([received(line) for line in lines[i : i + 300]])
    return outcomes


@pytest.mark.slow
def test_matching_meets_the_accuracy_targets_against_the_ground_truth(
    processor: Processor, departure_world: World, world_store: Runtime
) -> None:
    outcomes = _run_all(processor, departure_world)
    events, records = truth_of(departure_world.folder)
    with world_store.engine.connect() as conn:
        link, rec = RecordLink.__table__, SourceRecord.__table__
        links = conn.execute(
            select(link.c.person_id, rec.c.source_id, rec.c.record_key)
            .join(rec, rec.c.id == link.c.source_record_id)
            .where(link.c.unlinked_at.is_(None), rec.c.source_id != "departures")
        ).all()
    person_truth, present = stands_for([tuple(r) for r in links], records)
    applied = [(o.event_id, o.band, o.person_id) for o in outcomes if o.status == "applied"]
    accuracy = score([(str(e), b, p) for e, b, p in applied], events, person_truth, present)
    print(accuracy.to_json())
    assert accuracy.events > 500
    assert accuracy.verified > 0.9 * accuracy.events
    assert accuracy.precision_verified >= 0.999, accuracy.to_json()
    assert accuracy.recall >= 0.99, accuracy.to_json()


def test_every_event_is_applied_once_and_a_second_delivery_changes_nothing(
    processor: Processor, departure_world: World, world_store: Runtime
) -> None:
    outcomes = _run_all(processor, departure_world)
    statuses = Counter(o.status for o in outcomes)
    valid = statuses["applied"]
    assert valid + statuses["dead-letter"] == len(departure_world.lines())
    assert _count(world_store, InboxEntry) == valid == _count(world_store, Departure)
    steps_before = _count(world_store, CaseEvent, CaseEvent.action.in_(DEPARTURE_STEPS))
    assert steps_before > 0, "no case moved: the world should have departures of open cases"

    again = _run_all(processor, departure_world)
    assert Counter(o.status for o in again) == Counter(
        {"duplicate": valid, "dead-letter": statuses["dead-letter"]}
    )
    assert _count(world_store, InboxEntry) == valid == _count(world_store, Departure)
    assert _count(world_store, CaseEvent, CaseEvent.action.in_(DEPARTURE_STEPS)) == steps_before
    assert _count(world_store, DeadLetter) == statuses["dead-letter"]  # stored once each
    with world_store.sessions() as session:
        assert verify(session).ok


def test_case_effects_name_the_departure_and_close_the_case(
    processor: Processor, departure_world: World, world_store: Runtime
) -> None:
    outcomes = _run_all(processor, departure_world)
    applied = [(o, e) for o in outcomes for e in o.effects if e.get("applied")]
    assert applied
    ev, cases = CaseEvent.__table__, EnforcementCase.__table__
    with world_store.engine.connect() as conn:
        for outcome, effect in applied:
            rows = conn.execute(
                select(ev.c.action, ev.c.params).where(
                    ev.c.case_id == effect["case"], ev.c.action == effect["step"]
                )
            ).all()
            assert len(rows) == 1
            assert rows[0].params["departure_id"] == outcome.departure_id
            closed = conn.scalar(select(cases.c.closed_at).where(cases.c.id == effect["case"]))
            assert closed is not None
    skipped = [e for o in outcomes for e in o.effects if "case" in e and not e.get("applied")]
    assert all(e["reason"] for e in skipped)


def test_unreadable_events_go_to_the_dead_letter_store_with_the_reason(
    processor: Processor, world_store: Runtime
) -> None:
    raw = b'{"event_id": "BAD1", "channel": "manifest", "occurred_at": "soon"}'
    [outcome] = processor.process([received(raw)])
    assert outcome.status == "dead-letter" and "occurred_at" in str(outcome.reason)
    processor.process([received(raw)])  # the same bytes again: stored once
    with world_store.engine.connect() as conn:
        rows = conn.execute(select(DeadLetter.__table__)).all()
    assert len(rows) == 1
    assert rows[0].raw == raw.decode() and rows[0].event_id == "BAD1"


def test_a_repeated_event_in_one_batch_is_applied_once(processor: Processor) -> None:
    line = {"event_id": "DEPX1", "channel": "land_exit", "occurred_at": "2026-09-01T10:00:00Z",
            "family_name": "Nobody", "given_name": "Known", "port": "SYS"}  # fmt: skip
    out = processor.process([received(line), received(line)])
    assert [o.status for o in out] == ["applied", "duplicate"]
    assert out[0].band == "unmatched" and out[0].person_id is None


def test_self_reports_are_confirmed_by_a_later_manifest_or_exit(
    processor: Processor, departure_world: World, world_store: Runtime
) -> None:
    _run_all(processor, departure_world)
    dep = Departure.__table__
    with world_store.engine.connect() as conn:
        reports = conn.execute(
            select(dep.c.id, dep.c.reported_at).where(
                dep.c.channel == "self_report", dep.c.match_band == "verified"
            )
        ).all()
        confirming = conn.execute(
            select(dep.c.confirms_id, dep.c.reported_at, dep.c.channel).where(
                dep.c.confirms_id.is_not(None)
            )
        ).all()
    assert reports and confirming
    report_time = {r.id: r.reported_at for r in reports}
    for c in confirming:
        assert c.channel != "self_report"
        assert c.reported_at == report_time[c.confirms_id]
    assert len({c.confirms_id for c in confirming}) == len(confirming)


def _record_of(rt: Runtime, departure_id: str) -> str:
    with rt.engine.connect() as conn:
        dep = Departure.__table__
        return str(conn.scalar(select(dep.c.source_record_id).where(dep.c.id == departure_id)))


def _reviewer(rt: Runtime, username: str = "analyst") -> AccessContext:
    with rt.sessions() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return AccessContext(actor_of(user), Purpose.DEPARTURE_VERIFICATION, "review test")


def test_a_review_decision_moves_the_cases_of_the_person_it_names(
    processor: Processor, world_store: Runtime
) -> None:
    """An event with a person's passport but another birth date and name: review; the
    reviewer's "same person" then verifies it and its effects apply (once)."""
    with world_store.engine.connect() as conn:
        rec, link = SourceRecord.__table__, RecordLink.__table__
        payload, person = conn.execute(
            select(rec.c.payload, link.c.person_id)
            .join(link, link.c.source_record_id == rec.c.id)
            .where(rec.c.source_id == "arrivals")
            .limit(1)
        ).one()
    event = {"event_id": "DEPREVIEW1", "channel": "manifest",
             "occurred_at": "2026-09-20T10:00:00Z", "family_name": "Quispe",
             "given_name": "Wilfredo", "birth_date": "1955-05-05",
             "document_no": payload["passport_no"],
             "document_country": payload["passport_country"], "carrier": "AA",
             "flight": "AA1", "port": "MIA"}  # fmt: skip
    [outcome] = processor.process([received(orjson.dumps(event))])
    assert outcome.band == "review" and outcome.person_id == person
    ctx = _reviewer(world_store)
    with (
        pytest.raises(ValidationFailed, match="reason"),
        unit_of_work(world_store.sessions, ctx) as gw,
    ):
        decide_review(gw, str(outcome.departure_id), True, "ok")
    with unit_of_work(world_store.sessions, ctx) as gw:
        out = decide_review(
            gw, str(outcome.departure_id), True, "Passport and photo match the arrival record."
        )
    assert out["departure"]["band"] == "verified"
    assert out["departure"]["reviewed_by"] == ctx.actor.user_id
    # the running processor picks the reviewed record up (at most a minute later)
    assert processor.keep_current() is None  # checked less than a minute ago
    assert processor.keep_current(now=time.monotonic() + 61) == "added 1"
    assert (
        outcome.departure_id
        and processor.matcher.index.person_of(_record_of(world_store, outcome.departure_id))
        == person
    )
    with (
        pytest.raises(ValidationFailed, match="not waiting for review"),
        unit_of_work(world_store.sessions, ctx) as gw,
    ):
        decide_review(gw, str(outcome.departure_id), False, "Changed my mind after all.")


def test_the_replay_paces_and_reports(processor: Processor, departure_world: World) -> None:
    lines = departure_world.lines()[:40]
    report = replay(processor, lines, rate=400.0, batch_size=16)
    assert report.events == 40
    assert sum(report.statuses.values()) == 40
    assert report.seconds >= 39 / 400


def test_a_long_lived_processor_keeps_its_index_out_of_the_collector(
    world_store: Runtime, departure_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service's processor (consumer, API) freezes its matcher's index out of the garbage
    collector's generations, so a full collection does not walk it, and what the matcher
    adds once there are :data:`SETTLE_AFTER` more records; a rebuild frees the old index
    (its objects unfrozen, collected) and freezes the new one."""

    def tracked(obj: object) -> bool:  # in a generation the collector scans
        return any(o is obj for o in gc.get_objects())

    plain = Processor(world_store, "replay", build_matcher(world_store))
    assert tracked(plain.matcher.index._persons)
    thresholds = gc.get_threshold()
    try:
        gc.set_threshold(700, *thresholds[1:])  # Python's default
        service = Processor(world_store, "http", build_matcher(world_store), long_lived=True)
        persons = service.matcher.index._persons
        assert gc.isenabled() and gc.get_freeze_count() > 0 and not tracked(persons)
        # A batch's objects are freed before a young collection would walk them.
        assert gc.get_threshold() == (YOUNG_OBJECTS, *thresholds[1:])
        monkeypatch.setattr(service_module, "SETTLE_AFTER", 1)
        before = len(service.matcher.index)
        service.process([received(line) for line in departure_world.lines()[:300]])
        added = service.matcher.index._added_rows
        assert len(service.matcher.index) > before and service.settled == before + len(added)
        assert added and not tracked(added[-1]) and not tracked(added[-1]["given_tokens"])
        service.checked = -1e9  # due for its check; the index version changed meanwhile
        service.matcher.index_version = "an earlier run"
        assert service.keep_current() == "rebuilt"
        assert service.matcher.index._persons is not persons
        assert not tracked(service.matcher.index._persons)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
