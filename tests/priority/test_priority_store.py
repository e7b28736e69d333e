"""Prioritization over a real store (SQLite and PostgreSQL): policies, runs, explanations,
worklists, overrides, what-if, and the bulk blocks held equal to the lifecycle guards."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select
from tests.priority.conftest import AS_OF, NOW, Agency

from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused, ValidationFailed
from immigrationos.departures.models import Departure
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import CaseCondition, EnforcementCase
from immigrationos.priority import (
    blocks,
    evaluate,
    features,
    features_py,
    service,
    views,
    worklists,
)
from immigrationos.priority.models import PriorityOverride, PriorityScore
from immigrationos.priority.policy import shipped_policies
from immigrationos.store.engine import transaction

POLICY = "dhs-2021-guidelines@1.0.0"


def _text(name: str) -> str:
    return next(p for p in shipped_policies() if p.stem == name).read_text()


def _publish(agency: Agency) -> None:
    for path in shipped_policies():
        agency.run("analyst", service.register, path.read_text())
    agency.run("supervisor.miami", service.adopt, POLICY, "adopted for the test")


def _world(agency: Agency) -> dict[str, str]:
    felony = {"offense_category": "robbery", "offense_level": "felony", "sentence_days": 900}
    people = {
        "violent felon": agency.person(convictions=[felony | {"conviction_date": date(2023, 5, 1)}],
                                       encounters=[{"occurred_on": date(2024, 1, 2)}]),
        "asylum seeker felon": agency.person(
            convictions=[felony | {"conviction_date": date(2022, 5, 1)}],
            encounters=[{"occurred_on": date(2024, 1, 2)}],
            benefits=[{"form": "I-589", "status": "pending", "filed_on": date(2024, 2, 1)}]),
        "departed felon": agency.person(
            convictions=[felony | {"conviction_date": date(2021, 5, 1)}],
            admissions=[{"admitted_on": date(2019, 1, 1), "admitted_until": date(2019, 7, 1)}]),
        "recent crosser": agency.person(
            encounters=[{"occurred_on": date(2025, 6, 1)}],
            orders=[{"decided_on": date(2025, 12, 1), "nta": date(2025, 6, 20),
                     "charge": "212(a)(6)(A)(i)"}]),
        "long resident": agency.person(
            born=date(1950, 1, 1),
            admissions=[{"admitted_on": date(2000, 1, 1), "admitted_until": date(2000, 7, 1)}]),
    }  # fmt: skip

    def depart(gw: Gateway) -> None:
        gw.add(Departure(id="dep-1", event_id="ev-1", person_id=people["departed felon"],
                         source_id="departures", channel="manifest",
                         occurred_at=NOW.replace(year=2023), match_band="verified"))  # fmt: skip

    agency.run("system", depart)
    return people


def test_a_run_stores_every_score_with_rules_evidence_and_blocks(agency: Agency) -> None:
    _publish(agency)
    people = _world(agency)
    run = agency.run("analyst", service.run, POLICY, AS_OF)
    assert run.persons == 5 and run.finished_at is not None
    rows = agency.run(
        "analyst",
        lambda gw: gw.select(
            select(PriorityScore).where(PriorityScore.run_id == run.id), PriorityScore, params={}
        ),
    )
    by = {r.person_id: r for r in rows}
    felon = by[people["violent felon"]]
    assert (felon.tier, felon.score, felon.actionable) == ("public-safety", 9.0, True)
    assert list(felon.evidence) == felon.rules  # one entry per fired rule, in order
    assert set(felon.evidence) >= {"felony", "violent_offense", "long_sentence"}
    assert all(e["src"] == "convictions" and e["d"] == "2023-05-01"
               for e in felon.evidence["felony"])  # fmt: skip
    items = evaluate.evidence_items(felon.evidence)
    assert [e["rule"] for e in items if e["rule"] == "felony"] == ["felony"]
    seeker = by[people["asylum seeker felon"]]
    assert seeker.lead and not seeker.actionable
    assert seeker.blocks == [
        {
            "guard": "no_pending_protection_claim",
            "message": "a pending asylum application (I-589) is on record",
        }
    ]
    gone = by[people["departed felon"]]
    assert gone.blocks[0]["guard"] == "not_departed" and not gone.actionable
    assert by[people["recent crosser"]].tier == "border-security"
    assert by[people["long resident"]].tier == "not-a-priority"
    assert run.counts["tiers"] == {"public-safety": 3, "border-security": 1, "not-a-priority": 1}


def test_results_are_the_same_on_every_backend(agency: Agency) -> None:
    """Run on SQLite and on PostgreSQL (the fixture is parametrised): the same numbers."""
    _publish(agency)
    _world(agency)
    got = {}
    for name in ("dhs-2014-priorities@1.0.0", POLICY, "dhs-2025-enforcement@1.0.0"):
        run = agency.run("analyst", service.run, name, AS_OF)
        rows = agency.run("analyst", lambda gw, r=run: gw.rows(
            select(PriorityScore.tier, PriorityScore.score, PriorityScore.actionable)
            .where(PriorityScore.run_id == r.id).order_by(PriorityScore.person_id),
            PriorityScore, params={}))  # fmt: skip
        got[name] = [tuple(r) for r in rows]
    assert got == {
        "dhs-2014-priorities@1.0.0": [("priority-1", 8.0, True), ("priority-1", 8.0, False),
                                      ("priority-1", 8.0, False), ("priority-1", 14.0, True),
                                      ("not-a-priority", -2.0, False)],
        POLICY: [("public-safety", 9.0, True), ("public-safety", 6.0, False),
                 ("public-safety", 9.0, False), ("border-security", 5.0, True),
                 ("not-a-priority", -6.0, False)],
        "dhs-2025-enforcement@1.0.0": [("criminal", 10.0, True), ("criminal", 10.0, False),
                                       ("criminal", 9.0, False), ("final-order", 8.0, True),
                                       ("removable", 1.0, True)],
    }  # fmt: skip


def test_adoption_is_a_second_persons_act(agency: Agency) -> None:
    agency.run("analyst", service.register, _text("dhs-2025-enforcement"))
    with pytest.raises(AccessRefused, match="only a supervisor"):
        agency.run("officer.miami", service.adopt, "dhs-2025-enforcement@1.0.0", "x")
    changed = _text("dhs-2025-enforcement").replace("weight: 10", "weight: 11")
    with pytest.raises(ValidationFailed, match="registered with different text"):
        agency.run("analyst", service.register, changed)
    agency.run("supervisor.miami", service.register, _text("dhs-2014-priorities"))
    with pytest.raises(AccessRefused, match="two-person rule"):
        agency.run("supervisor.miami", service.adopt, "dhs-2014-priorities@1.0.0", "mine")
    row = agency.run("supervisor.houston", service.adopt, "dhs-2014-priorities@1.0.0", "ok")
    assert row.status == "adopted"


def test_an_explanation_shows_rules_evidence_unavailable_features_and_blocks(
    agency: Agency,
) -> None:
    _publish(agency)
    people = _world(agency)
    agency.run("analyst", service.run, POLICY, AS_OF)
    data = agency.run("officer.miami", views.explain, people["asylum seeker felon"], None, AS_OF)
    assert data["tier"]["id"] == "public-safety" and data["score"] == 6.0
    fired = ["felony", "violent_offense", "long_sentence", "pending_relief"]
    assert [r["id"] for r in data["rules"]] == fired
    assert [(r["id"], r["weight"]) for r in data["mitigating"]] == [("pending_relief", -3.0)]
    assert data["rules"][0]["evidence"][0]["t"] == "convictions"
    assert "us_family" in data["unavailable"] and "tax_address_on_file" in data["unavailable"]
    assert "permit purpose 'enforcement-prioritization'" in data["unavailable"]["visa_class"]
    assert data["action"]["possible"] is False
    message = "a pending asylum application (I-589) is on record"
    assert data["action"]["blocks"] == [
        {"guard": "no_pending_protection_claim", "message": message}
    ]
    assert data["stored"]["tier"] == "public-safety" and "never an action" in data["note"]


def test_worklists_put_actionable_leads_first_and_say_why_others_are_blocked(
    agency: Agency,
) -> None:
    _publish(agency)
    people = _world(agency)
    agency.run("analyst", service.run, POLICY, AS_OF)
    page = agency.run("officer.miami", worklists.worklist)
    ids = [i["person_id"] for i in page["items"]]
    assert page["total"] == 4 and people["long resident"] not in ids
    assert [i["actionable"] for i in page["items"]] == [True, True, False, False]
    assert all(i["blocks"] for i in page["items"] if not i["actionable"])
    only_blocked = agency.run("officer.miami", worklists.worklist, actionable=False, size=1, page=2)
    assert only_blocked["total"] == 2 and len(only_blocked["items"]) == 1
    # a lead that became blocked after the run is shown blocked, with the reason
    felon = people["violent felon"]

    def review(gw: Gateway) -> None:
        gw.add(EnforcementCase(id="case-x", person_id=felon, state="CITIZENSHIP_REVIEW"))

    agency.run("system", review)
    item = next(i for i in agency.run("officer.miami", worklists.worklist)["items"]
                if i["person_id"] == felon)  # fmt: skip
    assert item["actionable"] is False and item["blocked_since_run"] is True
    assert item["blocks"][0]["guard"] == "not_in_citizenship_review"


def _expected_worklist(
    agency: Agency, officer: str, tier: str | None, actionable: bool | None
) -> list[str]:
    """The officer's worklist order computed here from the stored rows: every score of the
    run, overrides applied, cases held by other officers left out, sorted in Python."""
    me = agency.actors[officer].user_id

    def read(gw: Gateway) -> tuple[Any, ...]:
        rows = {m: gw.select(select(m), m, params={"test": "expected worklist"})
                for m in (PriorityScore, PriorityOverride, EnforcementCase)}  # fmt: skip
        return service.policy_of(gw, POLICY)[1], *rows.values()

    policy, scores, overrides_rows, cases = agency.run("analyst", read)
    overrides = {o.person_id: o.to_tier for o in overrides_rows if o.withdrawn_at is None}
    held = {c.person_id for c in cases if c.closed_at is None and c.assigned_to not in (None, me)}
    keys = []
    for s in scores:
        t = policy.tier(overrides.get(s.person_id, s.tier))
        ok = t.lead and not s.blocks
        if (t.lead and s.office == "Miami" and s.person_id not in held
                and tier in (None, t.id) and actionable in (None, ok)):  # fmt: skip
            keys.append((not ok, t.rank, -s.score, s.person_id))
    return [k[-1] for k in sorted(keys)]


def test_worklist_pages_are_the_whole_order_cut_into_pages(agency: Agency) -> None:
    """Paged by the database, merged with overrides, less cases other officers hold: every
    page, every filter, equal to the order computed from the stored rows; ties by id in code
    point order (upper case before lower case, which PostgreSQL's default collation would
    not give)."""
    _publish(agency)
    felony = {"offense_category": "robbery", "offense_level": "felony", "sentence_days": 900,
              "conviction_date": date(2023, 5, 1)}  # fmt: skip
    seen = [{"occurred_on": date(2024, 1, 2)}]
    felons = [agency.person(pid=f"per-{c}", convictions=[felony], encounters=seen)
              for c in ("a", "B", "c", "D", "e", "F")]  # fmt: skip
    asylum = {"form": "I-589", "status": "pending", "filed_on": date(2024, 2, 1)}
    for _ in range(3):
        agency.person(convictions=[felony], encounters=seen, benefits=[asylum])
    order = {"decided_on": date(2025, 12, 1), "nta": date(2025, 6, 20), "charge": "212(a)(6)(A)(i)"}
    crossed = [{"occurred_on": date(2025, 6, 1)}]
    crossers = [agency.person(encounters=crossed, orders=[order]) for _ in range(3)]
    residents = [agency.person(encounters=seen) for _ in range(2)]
    agency.run("analyst", service.run, POLICY, AS_OF)
    why = "Reviewed in person with the supervisor; the record supports this tier."
    agency.run("supervisor.miami", service.override, residents[0], "public-safety", why)
    agency.run("supervisor.miami", service.override, felons[2], "not-a-priority", why)
    agency.run("supervisor.miami", service.override, crossers[0], "public-safety", why)
    users = {u: agency.actors[u].user_id for u in ("officer.miami", "officer.houston")}

    def cases(gw: Gateway) -> None:
        gw.add(EnforcementCase(id="case-other", person_id=felons[4], state="ENCOUNTERED",
                               assigned_to=users["officer.houston"]),
               EnforcementCase(id="case-mine", person_id=felons[5], state="ENCOUNTERED",
                               assigned_to=users["officer.miami"]))  # fmt: skip

    agency.run("system", cases)
    whole = _expected_worklist(agency, "officer.miami", None, None)
    assert felons[4] not in whole and felons[5] in whole and felons[2] not in whole
    assert residents[0] in whole and residents[1] not in whole
    assert whole.index("per-B") < whole.index("per-a")
    for tier, actionable in [(None, None), (None, True), (None, False), ("public-safety", None),
                             ("border-security", True)]:  # fmt: skip
        expected = _expected_worklist(agency, "officer.miami", tier, actionable)
        got, totals = [], set()
        for page in range(1, 7):
            data = agency.run("officer.miami", worklists.worklist, officer="officer.miami",
                              tier=tier, actionable=actionable, page=page, size=3)  # fmt: skip
            got += [i["person_id"] for i in data["items"]]
            totals.add(data["total"])
        assert got == expected and totals == {len(expected)}, (tier, actionable)


def test_overrides_need_a_reason_and_are_audited(agency: Agency) -> None:
    _publish(agency)
    people = _world(agency)
    agency.run("analyst", service.run, POLICY, AS_OF)
    who = people["long resident"]
    with pytest.raises(ValidationFailed, match="justification"):
        agency.run("officer.miami", service.override, who, "public-safety", "because")
    with pytest.raises(AccessRefused, match="officer or a supervisor"):
        agency.run("analyst", service.override, who, "public-safety", "x" * 30)
    row = agency.run("supervisor.miami", service.override, who, "public-safety",
                     "Recent conviction record from another state reviewed in person.")  # fmt: skip
    assert (row.from_tier, row.to_tier, row.direction) == (
        "not-a-priority",
        "public-safety",
        "raise",
    )
    item = next(i for i in agency.run("officer.miami", worklists.worklist)["items"]
                if i["person_id"] == who)  # fmt: skip
    assert item["tier"] == "public-safety" and item["override"]["direction"] == "raise"
    with transaction(agency.runtime.sessions) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "priority.overridden")
        ).one()
    assert entry.details["to_tier"] == "public-safety"


def test_what_if_compares_two_policies_over_the_same_index(agency: Agency) -> None:
    _publish(agency)
    people = _world(agency)
    a = agency.run("analyst", service.run, POLICY, AS_OF)
    b = agency.run("analyst", service.run, "dhs-2025-enforcement@1.0.0", AS_OF)
    data = agency.run("analyst", views.compare, a.id, b.id)
    cells = {(m["from"], m["to"]): m["count"] for m in data["matrix"]}
    assert cells == {("public-safety", "criminal"): 3, ("border-security", "final-order"): 1,
                     ("not-a-priority", "removable"): 1}  # fmt: skip
    assert data["changed_total"] == 5
    changed = next(c for c in data["changed"] if c["person_id"] == people["long resident"])
    assert [r["id"] for r in changed["rules_b"]] == ["overstay"]
    assert data["by"]["nationality"] == [{"group": "MEX", "persons": 5, "leads_a": 4,
                                           "leads_b": 5}]  # fmt: skip
    older = agency.run("analyst", service.run, POLICY, date(2025, 1, 1))
    with pytest.raises(ValidationFailed, match="same person index and date"):
        agency.run("analyst", views.compare, older.id, b.id)


def test_bulk_blocks_equal_the_lifecycle_guards_person_by_person(agency: Agency) -> None:
    people = _world(agency)
    extra = {
        "stayed": agency.person(), "tps": agency.person(
            benefits=[{"form": "I-821", "status": "approved", "filed_on": date(2024, 1, 1),
                       "valid_until": date(2027, 1, 1)}]),
        "victim": agency.person(
            benefits=[{"form": "I-918", "status": "pending", "filed_on": date(2024, 1, 1)}]),
        "held": agency.person(),
    }  # fmt: skip

    def cases(gw: Gateway) -> None:
        gw.add(EnforcementCase(id="case-s", person_id=extra["stayed"], state="STAYED"),
               EnforcementCase(id="case-h", person_id=extra["held"], state="ENCOUNTERED",
                               identity_hold="possible merge of two persons"))  # fmt: skip
        gw.session.flush()
        gw.add(CaseCondition(id="cond-s", case_id="case-s", kind="stay", status="granted",
                             params={}))  # fmt: skip

    agency.run("system", cases)
    table = agency.features()
    bulk = {r["person_id"]: sorted(b["guard"] for b in r["blocks"]) for r in table.to_pylist()}

    def one_by_one(gw: Gateway) -> dict[str, list[str]]:
        out = {}
        for row in table.to_pylist():
            checks = blocks.check(blocks.person_facts(gw, row["person_id"]), AS_OF,
                                  views.departed(row))  # fmt: skip
            out[row["person_id"]] = sorted(b["guard"] for b in blocks.blocking(checks))
        return out

    assert bulk == agency.run("analyst", one_by_one)
    assert bulk[extra["stayed"]] == ["no_stay"] and bulk[extra["held"]] == ["no_identity_hold"]
    assert bulk[extra["tps"]] == ["tps_not_valid"]
    assert bulk[extra["victim"]] == ["victim_petitions_decided"]
    assert bulk[people["violent felon"]] == []


def test_a_worklist_rechecks_departures_as_the_features_compute_them(agency: Agency) -> None:
    """The worklist's narrow departure check (six reads, not fifteen, in Python) gives the
    full features' departure columns: a departure after the last entry, one followed by a new
    admission, and a case closed as removed."""
    people = _world(agency)
    back = agency.person(admissions=[
        {"admitted_on": date(2018, 1, 1), "admitted_until": date(2018, 7, 1)},
        {"admitted_on": date(2024, 3, 1), "admitted_until": date(2024, 9, 1)}])  # fmt: skip
    removed = agency.person()

    def more(gw: Gateway) -> None:
        gw.add(Departure(id="dep-2", event_id="ev-2", person_id=back, source_id="departures",
                         channel="manifest", occurred_at=NOW.replace(year=2023),
                         match_band="verified"),
               EnforcementCase(id="case-r", person_id=removed, state="REMOVED",
                               closed_at=NOW.replace(year=2025)))  # fmt: skip

    agency.run("system", more)

    def departures(gw: Gateway) -> Any:
        return features_py.departures_py(
            features.read(gw, None, features_py.DEPARTURE_READS), AS_OF
        )

    narrow, full = agency.run("analyst", departures), agency.features()
    columns = ["person_id", "departed_on", "ev_dep", "back_on"]
    assert narrow.select(columns).to_pylist() == full.select(columns).to_pylist()
    got = {r["person_id"]: views.departed(r) for r in narrow.to_pylist()}
    assert got[people["departed felon"]] == {
        "on": "2023-03-02",
        "record": {"t": "departures", "id": "dep-1", "src": "departures", "d": date(2023, 3, 2)},
    }
    assert got[back] is None and got[people["violent felon"]] is None
    assert got[removed] == {"on": "2025-03-02", "record": None}


def test_features_read_only_what_the_purpose_permits(agency: Agency) -> None:
    _world(agency)

    def read(gw: Gateway) -> Any:
        return features.read(gw)

    agency.run("analyst", read)
    with transaction(agency.runtime.sessions) as session:
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "records.searched")
            .order_by(AuditEntry.seq.desc())
        ).first()
    assert entry is not None and entry.search_params["file"] == "priority_features"
    assert set(entry.details["withheld_sources"]) == {"visas", "tax_addresses"}


def test_an_explanation_follows_a_file_that_changed_since_it_was_last_asked(
    agency: Agency,
) -> None:
    """Features are reused only for an identical file: a new fact shows at the next ask."""
    _publish(agency)
    felon = _world(agency)["violent felon"]
    agency.run("analyst", service.run, POLICY, AS_OF)
    before = agency.run("officer.miami", views.explain, felon, None, AS_OF)
    assert before == agency.run("officer.miami", views.explain, felon, None, AS_OF)
    assert "pending_relief" not in [r["id"] for r in before["rules"]]

    def file_asylum(gw: Gateway) -> None:
        claim = {"form": "I-589", "status": "pending", "filed_on": date(2025, 2, 1)}
        for obj in agency._fact(felon, "benefits", claim):
            gw.add(obj)

    with unit_of_work(agency.runtime.sessions, system_context(Purpose.DATA_INTEGRATION)) as gw:
        file_asylum(gw)
    after = agency.run("officer.miami", views.explain, felon, None, AS_OF)
    assert "pending_relief" in [r["id"] for r in after["rules"]]
    assert after["score"] == before["score"] - 3.0 and after["action"]["possible"] is False
