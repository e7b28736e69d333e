"""Redress: a correction propagates end to end, a rejection lifts the exclusion, bad input
loses nothing, and only the privacy officer triages and decides.

The end-to-end tests run on a loaded demo world (SQLite; see ``redress_world.py``): file over
the public API → link → dispute (the explanation shows the features unavailable, naming the
request; incremental linking and the departure matcher send the disputed record to review; a
full resolution run keeps it apart) → decide (records split, re-scored, documents re-issued
as new versions, a letter as PDF, the status page with the code shows the decision). Filing,
status and roles also run on PostgreSQL with a hand-made store; the pure parts (clustering
with held records, corrected golden records, unknown features, value blanking, the letter's
outcomes) are tested directly.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.oversight import redress_world as rw
from tests.oversight.redress_world import World, count, pick_subject, world_settings

from immigrationos.accounts import sessions
from immigrationos.accounts.models import User
from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.api.app import create_app
from immigrationos.audit.chain import verify
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused, ValidationFailed
from immigrationos.departures.events import Manifest
from immigrationos.departures.matcher import Matcher
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import Document
from immigrationos.oversight import disputes, letters, redress, redress_filing, redress_triage
from immigrationos.oversight.models import DisputedFact, RedressRequest
from immigrationos.persons import views as person_views
from immigrationos.persons.models import Person, RecordLink
from immigrationos.priority import features
from immigrationos.priority import views as priority_views
from immigrationos.resolution import records
from immigrationos.resolution import service as resolution
from immigrationos.resolution.cluster import cluster
from immigrationos.resolution.golden import corrected
from immigrationos.resolution.models import MatchReview
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.models import SourceRecord
from immigrationos.store.engine import transaction

world = rw.world  # the fixture, for this module

PRIORITIZING = Purpose.ENFORCEMENT_PRIORITIZATION
CODE = "X-Immos-Tracking-Code"
NEW_BIRTH = "1970-02-03"


def _filing(**over: Any) -> dict[str, Any]:
    body = {
        "requester_name": "Dana Counsel",
        "requester_contact": "12 Harbor Road, Miami",
        "authority": "attorney",
        "family_name": "Example",
        "birth_date": "1980-01-01",
        "items": [
            {"kind": "identity", "evidence": "fingerprint comparison"},
            {"kind": "conviction", "evidence": "court certificate of another person"},
            {"kind": "birth_date", "claimed_value": NEW_BIRTH, "evidence": "birth certificate"},
        ],
        "statement": "These records describe someone else; the birth date is wrong.",
    }
    return {**body, **over}


def _headers(token: str, purpose: str | None = "redress") -> dict[str, str]:
    out = {"Authorization": f"Bearer {token}"}
    return {**out, "X-Immos-Purpose": purpose} if purpose else out


def _person_of(world: World, record_id: str) -> str | None:
    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        rows = gw.rows(
            select(RecordLink.person_id).where(
                RecordLink.source_record_id == record_id, RecordLink.unlinked_at.is_(None)
            ),
            RecordLink,
            params={"test": "where is the record"},
        )
    return rows[0][0] if rows else None


def _features(world: World, person_id: str) -> dict[str, Any]:
    with world.acting("analyst", PRIORITIZING) as gw:
        snapshot = features.read(gw, [person_id])
        return dict(features.compute(snapshot, date.today()).to_pylist()[0])


def _event(world: World, record_id: str) -> Manifest:
    """A departure whose traveller is exactly the person of record ``record_id``."""
    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        raw = records.raw_of(gw, gw.get(SourceRecord, record_id))
    assert raw["passport_no"], raw
    return Manifest(
        event_id="evt-redress-test-0001", channel="manifest", carrier="ZZ", flight="ZZ100",
        port="MIA", occurred_at=datetime.now(UTC) - timedelta(hours=1),
        family_name=raw["family_name"], given_name=raw["given_name"],
        birth_date=date.fromisoformat(raw["birth_date"]) if raw["birth_date"] else None,
        document_type="passport", document_no=raw["passport_no"],
        document_country=raw["passport_country"], citizenship=raw["nationality"],
    )  # fmt: skip


def _match(world: World, event: Manifest) -> Any:
    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        return Matcher.build(gw).match(event, "rec-redress-test-departure")


def _audit(world: World, action: str, after: int = 0) -> list[AuditEntry]:
    """Entries of ``action`` after ``after`` (the demo's own samples come before a test's)."""
    with transaction(world.runtime.sessions) as session:
        stmt = select(AuditEntry).where(AuditEntry.action == action, AuditEntry.seq > after)
        rows = session.scalars(stmt.order_by(AuditEntry.seq)).all()
        session.expunge_all()
        return list(rows)


# -- end to end ------------------------------------------------------------------------------


def _head(world: World) -> int:
    with transaction(world.runtime.sessions) as session:
        return session.scalar(select(func.max(AuditEntry.seq))) or 0


def test_a_correction_propagates_end_to_end(world: World) -> None:
    start = _head(world)
    subject = pick_subject(world)
    pid = subject.person_id
    client, tokens = world.client(), world.tokens()
    po = _headers(tokens["privacy"])
    before = _features(world, pid)
    assert _match(world, _event(world, subject.passport_record)).band == "verified"

    # a representative files (no account) and can follow the request
    filed = client.post("/api/redress", json=_filing())
    assert filed.status_code == 201, filed.text
    ref, code = filed.json()["reference"], filed.json()["tracking_code"]
    status = client.get("/api/redress/status", params={"reference": ref}, headers={CODE: code})
    assert status.status_code == 200 and status.json()["status"] == "filed"
    assert status.json()["decision"] is None

    # the privacy officer links it and marks the facts
    linked = client.post(f"/api/redress/requests/{ref}/link", json={"person_id": pid}, headers=po)
    assert linked.status_code == 200 and linked.json()["status"] == "in_review"
    facts = client.get(f"/api/redress/requests/{ref}/facts", headers=po).json()
    assert {r["row_id"] for r in facts["record_link"]} >= {subject.conviction_record}
    marks = [
        {"kind": "record_link", "row_id": subject.conviction_record, "item": 0},
        *({"kind": "record_link", "row_id": r, "item": 0} for r in subject.passport_records),
        {"kind": "attribute", "field": "birth_date", "item": 2},
    ]
    disputed = client.post(f"/api/redress/requests/{ref}/disputes", json={"marks": marks},
                           headers=po)  # fmt: skip
    assert disputed.status_code == 201, disputed.text
    assert disputed.json()["rescored"]["run_id"]

    # the person page marks them
    with world.acting("privacy", Purpose.REDRESS) as gw:
        shown = person_views.person_page(gw, pid)
    marked = {link["record_id"]: link["disputed"] for link in shown["links"]}
    assert marked[subject.conviction_record] == f"disputed under {ref}"
    (request_shown,) = [r for r in shown["redress"] if r["id"] == ref]
    assert any("birth_date" in m and m.endswith("disputed") for m in request_shown["disputed"])
    assert _audit(world, "redress.facts_disputed", start)[0].details["person_id"] == pid

    # while disputed: the features the facts feed are unavailable, with the request named
    with world.acting("analyst", PRIORITIZING) as gw:
        explained = priority_views.explain(gw, pid)
    why = f"disputed under redress request {ref}"
    for name in ("conviction_count", "felony", "age_years"):
        assert explained["unavailable"][name] == why
    assert _features(world, pid)["conviction_count"] is None
    # ... and a departure found through the disputed record goes to a person, not verified
    held = _match(world, _event(world, subject.passport_record))
    assert held.band == "review" and held.explanation["held_record"] in subject.passport_records
    assert why in held.explanation["reason"]

    # the plan first: nothing changes
    body = {"reasons": "The fingerprints and the birth certificate show another person.",
            "all": "accept"}  # fmt: skip
    plan = client.post(f"/api/redress/requests/{ref}/decision/plan", json=body, headers=po)
    assert plan.status_code == 200, plan.text
    assert plan.json()["decision"] == "accepted" and plan.json()["reresolve"] == [pid]
    assert len(plan.json()["cannot_links"]) >= 2
    mine = DisputedFact.request_id == ref  # the demo's sample requests have theirs
    assert count(world, DisputedFact, mine, DisputedFact.status == "disputed") == len(
        disputed.json()["facts"]
    )

    # decide: the correction propagates
    docs_before = _documents(world, pid)
    decided = client.post(f"/api/redress/requests/{ref}/decision", json=body, headers=po)
    assert decided.status_code == 200, decided.text
    applied = decided.json()["applied"]
    # re-resolved: the records left the person, whose id stays; non-match decisions bind
    assert _person_of(world, subject.conviction_record) not in (pid, None)
    travel = {_person_of(world, r) for r in subject.passport_records}
    assert pid not in travel and None not in travel
    moved = _match(world, _event(world, subject.passport_record))  # rebuilt: a new index
    assert moved.band == "verified" and moved.person_id in travel
    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        person = gw.get(Person, pid)
        _, cannot = resolution.decided_pairs(gw)
    assert person.status == "active" and applied["resolution_run"]["created"]
    assert {tuple(sorted(p)) for p in decided.json()["plan"]["cannot_links"]} <= {
        tuple(sorted(p)) for p in cannot
    }
    # corrected with provenance: the request
    assert person.golden["birth_date"]["value"] == NEW_BIRTH
    assert person.golden["birth_date"]["source_id"] == "redress"
    assert person.golden["birth_date"]["record_id"] == ref
    assert str(person.birth_date) == NEW_BIRTH
    # re-scored: a new run, and the struck facts no longer count
    assert applied["priority"]["run_id"] not in (None, disputed.json()["rescored"]["run_id"])
    after = _features(world, pid)
    assert after["conviction_count"] < before["conviction_count"]
    assert after["age_years"] is not None
    with world.acting("analyst", PRIORITIZING) as gw:
        explained = priority_views.explain(gw, pid)
        stored = priority_views.current_score(gw, pid, explained["policy"]["id"])
    assert not [v for v in explained["unavailable"].values() if "disputed under" in v]
    assert stored.run_id == applied["priority"]["run_id"]
    # documents showing the birth date were re-issued as new versions
    regenerated = applied["documents"]["regenerated"]
    assert regenerated and not applied["documents"]["refused"]
    docs_after = _documents(world, pid)
    for new in regenerated:
        old = docs_before[new["supersedes"]]
        fresh = docs_after[new["id"]]
        assert fresh.version == old.version + 1 and fresh.supersedes_id == old.id
        assert fresh.kind == old.kind and fresh.case_id == old.case_id
        if "Date of birth" in fresh.html:
            assert NEW_BIRTH in fresh.html and "redress record" in fresh.html
            assert NEW_BIRTH not in old.html
    assert any(NEW_BIRTH in docs_after[n["id"]].html for n in regenerated)
    assert len(docs_after) == len(docs_before) + len(regenerated)

    # the letter, to the privacy officer and to the requester with the code
    letter = client.get(f"/api/redress/requests/{ref}/letter", headers=po)
    assert letter.status_code == 200 and letter.content.startswith(b"%PDF")
    mine = client.get("/api/redress/status/letter", params={"reference": ref},
                      headers={CODE: code})  # fmt: skip
    assert mine.status_code == 200 and mine.content.startswith(b"%PDF")
    html = client.get("/api/redress/status/letter", params={"reference": ref, "format": "html"},
                      headers={CODE: code}).text  # fmt: skip
    assert "accepted" in html and NEW_BIRTH in html and ref in html
    assert pid not in html and subject.conviction_record not in html

    # the status page shows the decision, and nothing of the person beyond the filing
    view = client.get("/api/redress/status", params={"reference": ref}, headers={CODE: code})
    assert view.json()["decision"] == "accepted"
    assert view.json()["reasons"] == body["reasons"]
    assert pid not in view.text and subject.passport_record not in view.text
    wrong = client.get("/api/redress/status", params={"reference": ref},
                       headers={CODE: "AAAA-BBBB-CCCC-DDDD-EEEE"})  # fmt: skip
    assert wrong.status_code == 403 and "wrong tracking code" in wrong.json()["detail"]
    assert _audit(world, "redress.status_refused", start)

    # audited: the filing without an actor, the decision with its plan and no values
    (filing_entry,) = _audit(world, "redress.filed", start)
    assert filing_entry.actor_id is None and "Dana" not in json.dumps(filing_entry.details)
    (decision_entry,) = _audit(world, "redress.decided", start)
    assert decision_entry.actor_name == "privacy"
    assert decision_entry.details["plan"]["reresolve"] == [pid]
    assert NEW_BIRTH not in json.dumps(decision_entry.details)
    with transaction(world.runtime.sessions) as session:
        assert verify(session).ok


def _documents(world: World, person_id: str) -> dict[str, Document]:
    with world.acting("system", Purpose.CASE_PROCESSING) as gw:
        rows = gw.select(select(Document).where(Document.person_id == person_id), Document,
                         params={"test": "documents"})  # fmt: skip
        gw.session.expunge_all()
    return {d.id: d for d in rows}


def test_a_rejected_dispute_lifts_the_exclusion(world: World) -> None:
    subject = pick_subject(world)
    pid = subject.person_id
    client, tokens = world.client(), world.tokens()
    po = _headers(tokens["privacy"])
    ref = client.post("/api/redress", json=_filing()).json()["reference"]
    client.post(f"/api/redress/requests/{ref}/link", json={"person_id": pid}, headers=po)
    marks = [{"kind": "record_link", "row_id": subject.conviction_record, "item": 0}]
    marked = client.post(f"/api/redress/requests/{ref}/disputes", json={"marks": marks},
                         headers=po)  # fmt: skip
    assert marked.status_code == 201, marked.text

    # a full resolution run while disputed keeps the record apart and asks a person
    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        resolution.run(gw)
    apart = _person_of(world, subject.conviction_record)
    assert apart not in (pid, None)
    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        queued = gw.rows(
            select(MatchReview.id).where(
                MatchReview.status == "open",
                (MatchReview.record_l == subject.conviction_record)
                | (MatchReview.record_r == subject.conviction_record),
            ),
            MatchReview,
            params={"test": "queued"},
        )
    assert queued, "the held record's pairs go to review"
    assert _features(world, pid)["conviction_count"] is None

    # rejected: the exclusion lifts and the record goes back to the person
    body = {"reasons": "The conviction record names this person's own state id.", "all": "reject"}
    decided = client.post(f"/api/redress/requests/{ref}/decision", json=body, headers=po)
    assert decided.status_code == 200, decided.text
    assert decided.json()["plan"]["decision"] == "rejected"
    assert sorted(decided.json()["plan"]["reresolve"]) == sorted({pid, apart})
    assert _person_of(world, subject.conviction_record) == pid
    assert _features(world, pid)["conviction_count"] is not None
    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        held = disputes.exclusions(gw).held  # the demo's request in review holds its own
        assert subject.conviction_record not in held
        assert not any(ref in why for why in held.values())
    with world.acting("analyst", PRIORITIZING) as gw:
        explained = priority_views.explain(gw, pid)
    assert not [v for v in explained["unavailable"].values() if "disputed under" in v]
    assert _match(world, _event(world, subject.passport_record)).band == "verified"
    letter = client.get(f"/api/redress/requests/{ref}/letter", params={"format": "html"},
                        headers=po).text  # fmt: skip
    assert "rejected" in letter and "Not accepted" in letter


def test_triage_refuses_what_names_nothing_of_the_person(world: World) -> None:
    subject = pick_subject(world)
    with world.acting("system", Purpose.DATA_INTEGRATION) as gw:
        ref = redress_filing.file_request(
            gw, redress_filing.Filing.model_validate(_filing()), "test"
        ).reference
    with (
        world.acting("privacy", Purpose.REDRESS) as gw,
        pytest.raises(ValidationFailed, match="not linked to a person yet"),
    ):
        redress_triage.dispute(gw, ref, [redress_triage.Mark(kind="conviction", row_id="x")])
    with world.acting("privacy", Purpose.REDRESS) as gw:
        redress_triage.link(gw, ref, subject.person_id)
    bad = [
        (redress_triage.Mark(kind="conviction", row_id="not-theirs"), "not one of this person's"),
        (redress_triage.Mark(kind="rumour", row_id="x"), "unknown kind"),
        (redress_triage.Mark(kind="attribute", field="religion"), "an attribute is one of"),
        (redress_triage.Mark(kind="identifier"), "name the row"),
    ]
    for mark, message in bad:
        with (
            world.acting("privacy", Purpose.REDRESS) as gw,
            pytest.raises(ValidationFailed, match=message),
        ):
            redress_triage.dispute(gw, ref, [mark])
    assert count(world, DisputedFact, DisputedFact.request_id == ref) == 0
    with world.acting("privacy", Purpose.REDRESS) as gw:
        redress_triage.dispute(gw, ref, [redress_triage.Mark(kind="record_link",
                                               row_id=subject.conviction_record)])  # fmt: skip
        with pytest.raises(ValidationFailed, match="already disputed"):
            redress_triage.dispute(gw, ref, [redress_triage.Mark(kind="record_link",
                                                   row_id=subject.conviction_record)])  # fmt: skip
    with world.acting("privacy", Purpose.REDRESS) as gw:
        fact = redress_triage.facts_of(gw, ref)[0]
        with pytest.raises(ValidationFailed, match="reasons"):
            redress.plan_decision(gw, ref, [redress.Verdict(fact_id=fact.id, verdict="accept")], "")
        with pytest.raises(ValidationFailed, match="decide every marked fact"):
            redress.plan_decision(gw, ref, [], "no verdicts were given here")
    with (
        world.acting("officer.miami", Purpose.CASE_PROCESSING) as gw,
        pytest.raises(AccessRefused, match="does not handle redress"),
    ):
        redress.plan_decision(gw, ref, [], "an officer tries to decide")


# -- filing, status and roles on both backends --------------------------------------------------


@pytest.fixture
def app_on(runtime: Runtime) -> tuple[TestClient, dict[str, str]]:
    """An application on a bare store with the demo accounts, and their API tokens."""
    tokens = {}
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        for username in ("officer.miami", "privacy", "admin", "auditor"):
            user = session.scalar(select(User).where(User.username == username))
            assert user is not None
            tokens[username], _ = sessions.create_token(session, user, "redress test", 1)
    return TestClient(create_app(runtime), raise_server_exceptions=False), tokens


def test_filing_and_status_on_each_backend(
    runtime: Runtime, app_on: tuple[TestClient, dict[str, str]]
) -> None:
    client, tokens = app_on
    filed = client.post("/api/redress", json=_filing(a_number="a 12345678", family_name=None,
                                                     birth_date=None))  # fmt: skip
    assert filed.status_code == 201, filed.text
    ref, code = filed.json()["reference"], filed.json()["tracking_code"]
    with unit_of_work(runtime.sessions, system_context(Purpose.OVERSIGHT_AUDIT)) as gw:
        (stored,) = gw.rows(
            select(RedressRequest.tracking_hash, RedressRequest.subject, RedressRequest.status),
            RedressRequest,
            params={"test": "stored"},
        )
    assert stored.tracking_hash == redress_filing.code_hash(ref, code) and code not in str(stored)
    assert stored.subject == {"a_number": "A012345678"} and stored.status == "filed"
    typed = code.lower().replace("-", " ")  # the code is read as typed, case and spaces aside
    seen = client.get("/api/redress/status", params={"reference": ref}, headers={CODE: typed})
    assert seen.status_code == 200 and seen.json()["status_words"].startswith("received")
    assert set(seen.json()) == {"reference", "filed_at", "status", "status_words", "subject",
                                "items", "decision", "decision_words", "decided_at", "reasons",
                                "letter"}  # fmt: skip
    for reference, sent in ((ref, "WRONG-CODE-0000"), ("rdr-none", code)):
        refused = client.get("/api/redress/status", params={"reference": reference},
                             headers={CODE: sent})  # fmt: skip
        assert refused.status_code == 403 and refused.json()["detail"] == redress_wrong()
    letter = client.get("/api/redress/status/letter", params={"reference": ref},
                        headers={CODE: code})  # fmt: skip
    assert letter.status_code == 404
    # the privacy officer sees it in the queue; the letter comes only with a decision
    po = _headers(tokens["privacy"])
    queue = client.get("/api/redress/requests", headers=po)
    assert queue.status_code == 200 and [r["id"] for r in queue.json()] == [ref]
    decided = client.post(f"/api/redress/requests/{ref}/decision",
                          json={"reasons": "No person in the index has this A-number."},
                          headers=po)  # fmt: skip
    assert decided.status_code == 200, decided.text
    assert decided.json()["plan"]["decision"] == "rejected"
    again = client.get("/api/redress/status/letter", params={"reference": ref},
                       headers={CODE: code})  # fmt: skip
    assert again.status_code == 200 and again.content.startswith(b"%PDF")
    with transaction(runtime.sessions) as session:
        assert verify(session).ok


def redress_wrong() -> str:
    from immigrationos.api.redress_routes import WRONG_CODE

    return WRONG_CODE


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"family_name": None}, "identify the person"),
        ({"a_number": "B123"}, "A followed by 8 or 9 digits"),
        ({"items": []}, "at least 1 item"),
        ({"items": [{"kind": "horoscope"}]}, "identity"),
        ({"statement": "short"}, "at least 10 characters"),
        ({"requester_name": ""}, "at least 2 characters"),
        ({"religion": "any"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_filings_are_refused_and_lose_nothing(
    runtime: Runtime, app_on: tuple[TestClient, dict[str, str]], change: dict[str, Any],
    problem: str,
) -> None:  # fmt: skip
    client, _ = app_on
    answer = client.post("/api/redress", json=_filing(**change))
    assert answer.status_code == 422 and problem in answer.text
    with transaction(runtime.sessions) as session:
        assert session.scalar(select(AuditEntry.id).where(AuditEntry.action == "redress.filed")) \
            is None  # fmt: skip


def test_only_the_privacy_officer_triages_and_decides(
    app_on: tuple[TestClient, dict[str, str]],
) -> None:
    client, tokens = app_on
    ref = client.post("/api/redress", json=_filing()).json()["reference"]
    paths = [("GET", "/api/redress/requests", None),
             ("GET", f"/api/redress/requests/{ref}", None),
             ("POST", f"/api/redress/requests/{ref}/decision",
              {"reasons": "an attempt to decide", "all": "reject"})]  # fmt: skip
    refused = {
        "officer.miami": ["redress", "case-processing"],  # may not work under it; nor the route
        "admin": ["system-administration"],
        "auditor": ["oversight-audit"],
        "privacy": ["data-integration"],  # the privacy officer, but not under redress
    }
    for username, purposes in refused.items():
        for purpose in purposes:
            for method, path, body in paths:
                answer = client.request(method, path, json=body,
                                        headers=_headers(tokens[username], purpose))  # fmt: skip
                assert answer.status_code == 403, (username, purpose, path, answer.text)
    allowed = client.get(f"/api/redress/requests/{ref}", headers=_headers(tokens["privacy"]))
    assert allowed.status_code == 200 and allowed.json()["status"] == "filed"


def test_filings_are_throttled_per_client(tmp_path: Path) -> None:
    runtime = open_runtime(world_settings(tmp_path, redress_filings_per_hour=2,
                                          redress_status_checks_per_minute=2))  # fmt: skip
    try:
        client = TestClient(create_app(runtime), raise_server_exceptions=False)
        answers = [client.post("/api/redress", json=_filing()).status_code for _ in range(3)]
        assert answers == [201, 201, 429]
        checks = [
            client.get("/api/redress/status", params={"reference": "rdr-x"},
                       headers={CODE: "AAAA-BBBB"}).status_code
            for _ in range(3)
        ]  # fmt: skip
        assert checks == [403, 403, 429]
        with transaction(runtime.sessions) as session:
            throttled = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "access.refused")
            ).all()
            assert {e.details["operation"] for e in throttled} == {"redress filing",
                                                                   "redress status"}  # fmt: skip
    finally:
        runtime.engine.dispose()


# -- the pure parts -------------------------------------------------------------------------------


def test_held_records_join_only_by_a_persons_decision() -> None:
    edges = [("a", "b", 12.0), ("b", "c", 11.0), ("c", "d", 10.0)]
    free = cluster("abcd", edges, 6.0)
    assert len(set(free.cluster_of.values())) == 1
    held = cluster("abcd", edges, 6.0, held=["c"])
    assert held.cluster_of["c"] not in {held.cluster_of[x] for x in "abd"}
    assert held.cluster_of["a"] == held.cluster_of["b"] and held.held == frozenset("c")
    decided = cluster("abcd", edges, 6.0, must_link=[("c", "d")], held=["c"])
    assert decided.cluster_of["c"] == decided.cluster_of["d"] != decided.cluster_of["a"]


def test_a_correction_overrides_the_surviving_value_and_keeps_it_visible() -> None:
    golden = {"birth_date": {"value": "1980-01-05", "record_id": "r1", "source_id": "arrivals",
                             "support": 2, "conflicts": [{"value": "1980-05-01"}]}}  # fmt: skip
    fixed = corrected(golden, [{"attribute": "birth_date", "value": "1980-05-01",
                                "request_id": "rdr-1", "fact_id": "dsp-1",
                                "decided_on": "2026-11-23"}])  # fmt: skip
    entry = fixed["birth_date"]
    assert (entry["value"], entry["source_id"], entry["record_id"]) == ("1980-05-01", "redress",
                                                                        "rdr-1")  # fmt: skip
    assert entry["conflicts"][0]["value"] == "1980-01-05" and "conflicts" not in entry[
        "conflicts"][0]  # fmt: skip
    assert entry["correction"] == {"request_id": "rdr-1", "fact_id": "dsp-1",
                                   "replaces": "1980-01-05"}  # fmt: skip
    assert golden["birth_date"]["value"] == "1980-01-05"  # the input is not changed


def _fact(**over: Any) -> disputes.FactRow:
    values: dict[str, Any] = {
        "id": "dsp-1", "request_id": "rdr-1", "person_id": "per-1", "kind": "record_link",
        "table_name": "source_records", "row_id": "rec-1", "record_id": "rec-1",
        "source_id": "convictions", "field": None, "disputed_value": None,
        "corrected_value": None, "status": "disputed",
    }  # fmt: skip
    return disputes.FactRow(**{**values, **over})


def test_disputed_facts_make_the_features_they_feed_unknown() -> None:
    facts = [
        _fact(),
        _fact(id="dsp-2", kind="attribute", field="birth_date", source_id="arrivals"),
        _fact(id="dsp-3", kind="identifier", field="a_number", source_id="encounters"),
        _fact(id="dsp-4", person_id="per-2", kind="admission", source_id="arrivals"),
    ]
    unknown = features.unknown(facts)
    assert set(unknown["per-1"]) == {*features.fed_by("convictions"), "age_years"}
    assert "felony" in unknown["per-1"] and "overstay_days" not in unknown["per-1"]
    assert "overstay_days" in unknown["per-2"] and "felony" not in unknown["per-2"]
    assert unknown["per-1"]["felony"] == "disputed under redress request rdr-1"
    assert features.unknown(facts, ["per-2"]).keys() == {"per-2"}
    table = pa.table({"person_id": ["per-1", "per-3"], "felony": [True, True],
                      "ev_felony": ["x", "y"], "blocks": ["[]", "[]"]})  # fmt: skip
    withheld = features.withhold(table, unknown)
    assert withheld.column("felony").to_pylist() == [None, True]
    assert withheld.column("ev_felony").to_pylist() == [None, "y"]
    assert withheld.column("blocks").to_pylist() == ["[]", "[]"]  # a protection never lifts


def test_exclusions_blank_values_hold_records_and_carry_corrections() -> None:
    raw = pa.table({
        "unique_id": ["rec-1", "rec-2", "rec-3"],
        "birth_date": ["1980-01-05", "1980-01-05", "1990-02-02"],
        "a_number": ["A1", "A1", None],
        "other_ids": [["state_id:S1"], [], []],
    })  # fmt: skip
    decided = datetime(2026, 11, 23, tzinfo=UTC)
    excluded = disputes.Exclusions((
        _fact(id="d1", row_id="rec-9", record_id="rec-9"),
        _fact(id="d2", kind="attribute", field="birth_date", row_id="rec-1", record_id="rec-1",
              status="accepted", corrected_value="1980-05-01", decided_at=decided),
        _fact(id="d3", kind="identifier", field="a_number", row_id="rec-2/id", record_id="rec-2"),
        _fact(id="d4", kind="identifier", field="state_id", disputed_value="S1",
              row_id="rec-1/id", record_id="rec-1"),
        _fact(id="d5", kind="conviction", table_name="convictions", row_id="rec-4/c",
              status="accepted"),
    ))  # fmt: skip
    assert excluded.held == {"rec-9": "disputed under redress request rdr-1"}
    matching = excluded.for_matching(raw)
    assert matching.column("birth_date").to_pylist() == [None, "1980-01-05", "1990-02-02"]
    assert matching.column("a_number").to_pylist() == ["A1", None, None]
    assert matching.column("other_ids").to_pylist() == [[], [], []]
    golden = excluded.for_golden(raw)  # only what an accepted decision struck
    assert golden.column("birth_date").to_pylist() == [None, "1980-01-05", "1990-02-02"]
    assert golden.column("a_number").to_pylist() == ["A1", "A1", None]
    assert excluded.corrections(["rec-1", "rec-2"]) == [
        {"attribute": "birth_date", "value": "1980-05-01", "request_id": "rdr-1",
         "fact_id": "d2", "decided_on": "2026-11-23"}
    ]  # fmt: skip
    assert excluded.corrections(["rec-3"]) == []
    assert excluded.struck() == {"convictions": {"rec-4/c"}}
    assert excluded.key != disputes.Exclusions(excluded.facts[:-1]).key


def test_the_letter_reports_each_item_once() -> None:
    request = RedressRequest(
        id="rdr-1", requester_name="Dana", requester_contact="Miami", claim="x" * 20,
        disputed=[{"kind": "birth_date", "claimed_value": NEW_BIRTH}, {"kind": "name"}],
        subject={}, status="decided", decision="partially_accepted",
        filed_at=datetime(2026, 11, 1, tzinfo=UTC), decided_at=datetime(2026, 11, 23, tzinfo=UTC),
        decision_reasons="The certificate is genuine; the name is as recorded.",
    )  # fmt: skip
    facts = [
        DisputedFact(id=f"d{i}", kind="attribute", field="birth_date", item=0,
                     status="accepted", corrected_value=NEW_BIRTH) for i in range(3)
    ] + [DisputedFact(id="d9", kind="attribute", field="family_name", item=1,
                      status="rejected")]  # fmt: skip
    out = letters.outcomes(request, facts)
    assert out[0]["results"] == [{"accepted": True, "records": 3,
                                  "words": f"corrected to {NEW_BIRTH}, as you asked"}]  # fmt: skip
    assert out[1]["results"] == [{"accepted": False, "records": 1,
                                  "words": letters.REJECTED_WORDS}]  # fmt: skip
    html = letters.render_html(letters.LetterInput(request, out, 1, datetime.now(UTC)))
    assert "partially accepted" in html and "(on 3 records)" in html
    assert "The certificate is genuine" in html


def test_an_incremental_link_to_a_held_record_becomes_a_review() -> None:
    from immigrationos.resolution.incremental import LinkDecision

    def decision() -> LinkDecision:
        return LinkDecision("linked", "per-1", 12.0, 0.99, {"partner_record_id": "rec-1",
                                                              "reason": "one person"})  # fmt: skip

    held = resolution.unless_held(decision(), {"rec-1": "disputed under redress request r"})
    assert held.band == "review" and held.explanation["reason"].endswith("request r")
    assert resolution.unless_held(decision(), {"rec-2": "x"}).band == "linked"


def test_tracking_codes_are_random_and_kept_only_as_a_hash() -> None:
    codes = {redress_filing.tracking_code() for _ in range(50)}
    assert len(codes) == 50 and all(len(c) == 24 and c.count("-") == 4 for c in codes)
    code = codes.pop()
    assert redress_filing.code_hash("rdr-1", code) == redress_filing.code_hash(
        "rdr-1", code.lower()
    )
    assert redress_filing.code_hash("rdr-1", code) != redress_filing.code_hash("rdr-2", code)
    assert code not in redress_filing.code_hash("rdr-1", code)


def test_the_cli_files_and_the_privacy_officer_decides(env_settings: Path) -> None:
    from typer.testing import CliRunner

    from immigrationos.cli.main import app

    runner = CliRunner()
    runtime = open_runtime()
    try:
        with transaction(runtime.sessions) as session:
            ensure_demo_accounts(session)
    finally:
        runtime.engine.dispose()
    filed = runner.invoke(app, ["redress", "file", "--requester", "Dana Counsel", "--contact",
                                "12 Harbor Rd", "--authority", "attorney", "--a-number",
                                "A12345678", "--item", f"birth_date={NEW_BIRTH}", "--statement",
                                "The birth date on file is wrong.", "--json"])  # fmt: skip
    assert filed.exit_code == 0, filed.output
    out = json.loads(filed.output)
    bad = runner.invoke(app, ["redress", "file", "--requester", "Dana", "--contact", "x",
                              "--authority", "attorney"])  # fmt: skip
    assert bad.exit_code == 1 and "requester_contact" in bad.output and "items" in bad.output
    seen = runner.invoke(app, ["redress", "status", out["reference"], "--code",
                               out["tracking_code"], "--json"])  # fmt: skip
    assert seen.exit_code == 0 and json.loads(seen.output)["status"] == "filed"
    password = ["--password", "demo-privacy-pass"]
    listed = runner.invoke(app, ["redress", "list", "--json", *password])
    assert [r["id"] for r in json.loads(listed.output)] == [out["reference"]]
    shown = runner.invoke(app, ["redress", "show", out["reference"], *password])
    assert shown.exit_code == 0 and "Dana Counsel" in shown.output
    reasons = "No person in the index has this A-number."
    decided = runner.invoke(app, ["redress", "decide", out["reference"], "--reasons", reasons,
                                  *password])  # fmt: skip
    assert decided.exit_code == 0 and "rejected" in decided.output, decided.output
    letter = runner.invoke(app, ["redress", "letter", out["reference"], "--out",
                                 str(env_settings / "letter.pdf"), *password])  # fmt: skip
    assert letter.exit_code == 0 and (env_settings / "letter.pdf").read_bytes()[:4] == b"%PDF"
    officer = runner.invoke(app, ["redress", "list", "--as", "officer.miami", "--password",
                                  "demo-officer-pass"])  # fmt: skip
    assert officer.exit_code == 1 and "may not work under" in officer.output


def test_the_demo_files_one_request_in_review_and_one_decided(world: World) -> None:
    sample = redress.load_demo(world.runtime)
    with world.acting("privacy", Purpose.REDRESS) as gw:
        review = redress_triage.detail(gw, sample.in_review.reference)
        done = redress_triage.detail(gw, sample.decided.reference)
    assert review["status"] == "in_review" and [f["status"] for f in review["facts"]] == [
        "disputed"
    ]
    assert done["decision"] == "accepted" and done["letters"]
    client = world.client()
    seen = client.get("/api/redress/status", params={"reference": sample.decided.reference},
                      headers={CODE: sample.decided.tracking_code})  # fmt: skip
    assert seen.json()["decision"] == "accepted" and seen.json()["letter"]["version"] == 1
