"""A resolution run end to end on a small world, on SQLite and PostgreSQL: the index, stable
ids on re-runs, human decisions binding later runs, merges with redirects, splits that hold
cases, golden records, fact owners, and the purpose rule that leaves tax addresses out."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of
from immigrationos.audit.chain import verify
from immigrationos.facts.models import Admission
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.persons.models import Person, RecordLink
from immigrationos.resolution import review, service
from immigrationos.resolution.evaluate import Truth, evaluate
from immigrationos.resolution.models import MatchReview, PersonEvent
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.IDENTITY_RESOLUTION, "test")


def _run(rt: Runtime) -> service.RunReport:
    with unit_of_work(rt.sessions, CTX) as gw:
        return service.run(gw)


def _analyst(rt: Runtime) -> AccessContext:
    with transaction(rt.sessions) as session:
        user = session.scalars(select(User).where(User.username == "analyst")).one()
        return AccessContext(actor_of(user), Purpose.IDENTITY_RESOLUTION, "test review")


def _links(rt: Runtime) -> dict[str, str]:
    with unit_of_work(rt.sessions, CTX) as gw:
        return {r[0]: r[3] for r in service.export_rows(gw) if r[3]}


def _truth(folder: Path, rt: Runtime) -> tuple[dict[str, str], Truth]:
    with unit_of_work(rt.sessions, CTX) as gw:
        rows = service.export_rows(gw)
    records = pq.read_table(folder / "truth" / "records.parquet").to_pylist()
    entity = {(r["source"], r["record_key"]): r["person_id"] for r in records}
    predicted = {rid: person for rid, _s, _k, person in rows if person}
    keys = [rid for rid, s, k, person in rows if person]
    return predicted, Truth.from_columns(keys, [entity[(s, k)] for _r, s, k, p in rows if p])


def _add_review(rt: Runtime, a: str, b: str) -> str:
    with unit_of_work(rt.sessions, CTX) as gw:
        review_id = f"rev-test-{a[-6:]}-{b[-6:]}"
        gw.add(MatchReview(id=review_id, record_l=a, record_r=b, match_weight=0.0,
                           explanation={}, status="open"))  # fmt: skip
    return review_id


def _decide(rt: Runtime, review_id: str, decision: str) -> None:
    with unit_of_work(rt.sessions, _analyst(rt)) as gw:
        review.decide(gw, review_id, decision, "checked the documents on file")


def test_first_run_builds_an_accurate_explained_index(world: tuple[Runtime, Path]) -> None:
    rt, folder = world
    report = _run(rt)
    assert report.persons > 0 and report.records > 0
    assert set(report.withheld) == {"tax_addresses"}
    assert "identity-resolution" in report.withheld["tax_addresses"]
    predicted, truth = _truth(folder, rt)
    assert len(predicted) == report.records
    result = evaluate(predicted, truth)
    assert result.bcubed_f1 >= 0.97, result.to_json()
    with unit_of_work(rt.sessions, CTX) as gw:
        unowned = gw.count(Admission, Admission.person_id.is_(None), params={})
        linked = gw.rows(select(RecordLink).where(RecordLink.method == "model"), RecordLink,
                         params={})  # fmt: skip
        explanation = linked[0][0].explanation
        assert explanation["weights"] and explanation["partner_record_id"]
        person = gw.rows(select(Person).where(Person.status == "active").limit(1), Person,
                         params={})[0][0]  # fmt: skip
        view = review.person_view(gw, person.id)
    assert unowned == 0
    assert view["links"] and view["golden"]["records"] == len(view["links"])
    golden_given = view["golden"].get("given_name") or view["golden"].get("family_name")
    assert golden_given["record_id"] and golden_given["source_id"]
    with transaction(rt.sessions) as session:
        assert verify(session).ok


def test_rerun_keeps_every_person_id(world: tuple[Runtime, Path]) -> None:
    rt, _ = world
    _run(rt)
    before = _links(rt)
    again = _run(rt)
    assert _links(rt) == before
    assert again.plan.created == [] and again.plan.moved_records == 0


def _pair_in_one_person(rt: Runtime) -> tuple[str, str, str]:
    links = _links(rt)
    by_person: dict[str, list[str]] = {}
    for record, person in sorted(links.items()):
        by_person.setdefault(person, []).append(record)
    person, records = next((p, r) for p, r in sorted(by_person.items()) if len(r) == 2)
    return person, records[0], records[1]


def test_non_match_decision_splits_and_holds_the_case(world: tuple[Runtime, Path]) -> None:
    rt, _ = world
    _run(rt)
    person, a, b = _pair_in_one_person(rt)
    with unit_of_work(rt.sessions, CTX) as gw:
        gw.add(EnforcementCase(id="case-test-1", person_id=person))
    _decide(rt, _add_review(rt, a, b), "non-match")
    report = _run(rt)
    links = _links(rt)
    assert links[a] != links[b]
    assert person in report.plan.splits and report.cases_held == 1
    with unit_of_work(rt.sessions, CTX) as gw:
        case = gw.get(EnforcementCase, "case-test-1")
        assert case.identity_hold and person in case.identity_hold
        event = next(e for e in review.events(gw, needs_review=True) if e.kind == "split")
        assert event.case_ids == ["case-test-1"]
    with unit_of_work(rt.sessions, _analyst(rt)) as gw:
        assert review.review_event(gw, event.id) == 1
    with unit_of_work(rt.sessions, CTX) as gw:
        assert gw.get(EnforcementCase, "case-test-1").identity_hold is None
    # The decision binds every later run too.
    _run(rt)
    assert _links(rt)[a] != _links(rt)[b]


def test_match_decision_merges_with_a_redirect(world: tuple[Runtime, Path]) -> None:
    rt, _ = world
    _run(rt)
    links = _links(rt)
    singles: dict[str, list[str]] = {}
    for record, person in sorted(links.items()):
        singles.setdefault(person, []).append(record)
    (p1, r1), (p2, r2) = [(p, rs[0]) for p, rs in sorted(singles.items())][:2]
    with unit_of_work(rt.sessions, CTX) as gw:
        gw.add(EnforcementCase(id="case-test-2", person_id=p2))
    _decide(rt, _add_review(rt, r1, r2), "match")
    report = _run(rt)
    after = _links(rt)
    assert after[r1] == after[r2]
    survivor = after[r1]
    retired = p2 if survivor == p1 else p1
    assert report.plan.merged[retired] == survivor
    with unit_of_work(rt.sessions, CTX) as gw:
        assert gw.get(Person, retired).merged_into_id == survivor
        assert review.person_view(gw, retired)["person_id"] == survivor
        assert gw.get(EnforcementCase, "case-test-2").person_id == survivor
        kinds = {e.kind for e in review.events(gw)}
    assert "merged" in kinds


def test_review_queue_shows_both_records_and_contributions(world: tuple[Runtime, Path]) -> None:
    rt, _ = world
    _run(rt)
    with unit_of_work(rt.sessions, CTX) as gw:
        queued = review.open_reviews(gw, limit=5)
    if queued:
        review_id = queued[0].id
    else:
        _person, a, b = _pair_in_one_person(rt)
        review_id = _add_review(rt, a, b)
    with unit_of_work(rt.sessions, _analyst(rt)) as gw:
        view = review.show(gw, review_id).to_json()
    assert view["left"]["record_id"] != view["right"]["record_id"]
    assert any(f["field"] == "family_name" for f in view["fields"])
    if queued:
        assert view["contributions"] and all("level" in c for c in view["contributions"])
    _decide(rt, review_id, "unsure")
    with unit_of_work(rt.sessions, CTX) as gw:
        assert gw.get(MatchReview, review_id).decision == "unsure"


def test_bad_decision_is_refused(world: tuple[Runtime, Path]) -> None:
    import pytest

    from immigrationos.core.errors import ValidationFailed

    rt, _ = world
    _run(rt)
    _person, a, b = _pair_in_one_person(rt)
    review_id = _add_review(rt, a, b)
    with unit_of_work(rt.sessions, _analyst(rt)) as gw, pytest.raises(ValidationFailed):
        review.decide(gw, review_id, "probably", "because")


def test_count_persons(world: tuple[Runtime, Path]) -> None:
    rt, _ = world
    report = _run(rt)
    with unit_of_work(rt.sessions, CTX) as gw:
        active = gw.count(Person, Person.status == "active", params={})
        events = gw.count(PersonEvent, PersonEvent.kind == "created", params={})
    assert active == report.persons == events
