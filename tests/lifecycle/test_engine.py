"""The lifecycle engine end to end on both backends: paths, guards, approvals, deadlines."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.lifecycle.conftest import T0, Desk

from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused, ValidationFailed
from immigrationos.facts.models import BenefitApplication
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle import calendar, logistics, operations, scheduler, views
from immigrationos.lifecycle import service as lc
from immigrationos.lifecycle.models import CaseDeadline, CaseEvent, Document
from immigrationos.lifecycle.table import load_table
from immigrationos.persons.models import CitizenshipChange

A_NUMBER = {
    "value": "A123456789",
    "source_id": "court",
    "record_key": "IC1",
    "observed_on": "2025-01-01",
}
NTA = {
    "charges": ["237(a)(1)(B)"],
    "allegations": ["You are not a citizen of the United States.", "You overstayed."],
    "hearing_at": "2026-05-04T09:00:00+00:00",
    "hearing_place": "Miami Immigration Court, 333 S Miami Ave",
}


def _encountered(desk: Desk, pid: str | None = None) -> str:
    pid = pid or desk.person(golden={"a_number": A_NUMBER})
    case = desk.run(
        "officer.miami", lambda gw: lc.open_case(gw, pid, office="Miami", reason="lead").id
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "record_encounter",
        {
            "encounter_date": "2026-03-02",
            "office": "Miami",
            "narrative": "Interviewed at check-in.",
        },
    )
    return case


def _approved(desk: Desk, case: str, action: str, params: dict[str, Any]) -> str:
    req = desk.run(
        "officer.miami",
        lambda gw: lc.request_action(gw, case, action, params, "file reviewed, basis set out").id,
    )
    desk.run("supervisor.miami", lc.decide, req, True, "agree with the basis")
    return req


def _in_proceedings(desk: Desk, pid: str | None = None) -> str:
    case = _encountered(desk, pid)
    desk.run("officer.miami", lc.perform, case, "issue_nta", NTA)
    desk.run("officer.miami", lc.perform, case, "file_nta", {"court_case_no": "IC123456789"})
    return case


def _state(desk: Desk, case: str) -> str:
    return str(desk.run("officer.miami", views.case_page, case)["case"]["state"])


def _final(desk: Desk, case: str, destination: str = "MEX") -> None:
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "order_removal",
        {"decision_date": "2026-03-02", "destination": destination},
    )
    scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=40))
    desk.now = T0 + timedelta(days=41)


def test_removal_path_final_order_is_computed_with_evidence(desk: Desk) -> None:
    case = _in_proceedings(desk)
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "order_removal",
        {"decision_date": "2026-03-02", "destination": "MEX"},
    )
    page = desk.run("officer.miami", views.case_page, case)
    window = next(d for d in page["deadlines"] if d["kind"] == "appeal_window")
    assert window["due_at"].startswith("2026-04-02")  # 1 April + the day it runs through
    assert scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=30)).steps == []
    report = scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=31))
    assert [s[1] for s in report.steps] == ["order_became_final"]
    events = desk.run("officer.miami", views.events, case)
    final = events[-1]
    assert final["to_state"] == "FINAL_ORDER" and final["kind"] == "computed"
    assert final["evidence"][0]["basis"] == "appeal window expired"
    with pytest.raises(ValidationFailed, match="computed"):
        desk.run("officer.miami", lc.perform, case, "order_became_final", {})


def test_appeal_window_rolls_over_weekend_and_holiday() -> None:
    spec = load_table().deadlines["appeal_window"]
    due, rule = calendar.due(spec, date(2026, 10, 27))  # +30 = Thu 26 Nov, Thanksgiving
    assert due.date() == date(2026, 11, 28)  # runs through Friday 27th
    assert "not a business day" in rule
    due, _ = calendar.due(spec, date(2026, 6, 6))  # +30 = Monday 6 July, a business day: no roll
    assert due.date() == date(2026, 7, 7)
    assert calendar.add_business_days(date(2026, 11, 25), 5) == date(2026, 12, 3)


def test_late_appeal_is_refused_and_timely_one_stays_finality(desk: Desk) -> None:
    case = _in_proceedings(desk)
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "order_removal",
        {"decision_date": "2026-03-02", "destination": "MEX"},
    )
    with pytest.raises(lc.StepBlocked, match="after the window closed"):
        desk.run("officer.miami", lc.perform, case, "file_appeal", {"received_on": "2026-04-02"})
    desk.run("officer.miami", lc.perform, case, "file_appeal", {"received_on": "2026-04-01"})
    scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=90))
    assert _state(desk, case) == "APPEAL_PENDING"
    desk.run("officer.miami", lc.perform, case, "appeal_dismissed", {"decision_date": "2026-06-01"})
    assert _state(desk, case) == "FINAL_ORDER"


def test_two_person_rule_and_documents_draft_then_final(desk: Desk) -> None:
    case = _encountered(desk)
    params = {"authority": "warrant", "probable_cause": "Admission expired, no extension on file"}
    req = desk.run(
        "officer.miami",
        lambda gw: lc.request_action(gw, case, "arrest", params, "overstay of two years").id,
    )
    with pytest.raises(AccessRefused, match="own request"):
        desk.run("officer.miami", lc.decide, req, True, "self approval")
    with pytest.raises(AccessRefused, match="may not approve"):
        desk.run("officer.houston", lc.decide, req, True, "peer approval")
    with pytest.raises(ValidationFailed, match="pending"):
        desk.run("officer.miami", lc.execute, req)
    desk.run("supervisor.miami", lc.decide, req, True, "basis is sound")
    result = desk.run("officer.miami", lc.execute, req)
    assert result.state == "ARRESTED"
    docs = desk.run("officer.miami", views.documents, case)
    warrants = [d for d in docs if d["kind"] == "arrest_warrant"]
    assert [d["status"] for d in warrants] == ["draft", "final"]
    assert warrants[1]["supersedes_id"] == warrants[0]["id"]
    html = desk.run("officer.miami", lambda gw: gw.get(Document, warrants[1]["id"]).html)
    assert "Approved by" in html and "supervisor.miami" in html and "DRAFT" not in html


def test_citizenship_claim_blocks_every_enforcement_step_until_joint_decision(desk: Desk) -> None:
    case = _encountered(desk)
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "claim_citizenship",
        {"basis": "claim-by-person", "details": "Says born in Texas"},
    )
    with pytest.raises(lc.StepBlocked, match="citizenship"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "arrest",
            {"authority": "warrant", "probable_cause": "an old overstay record"},
            "overstay record",
        )
    page = desk.run("officer.miami", views.case_page, case)
    arrest = next(
        o
        for o in page["next"]
        + desk.run("officer.miami", views.case_page, case, all_options=True)["next"]
        if o["transition"] == "arrest"
    )
    assert not arrest["allowed"] and arrest["blocked_by"]
    req = desk.run(
        "supervisor.miami",
        lambda gw: (
            lc.request_action(
                gw,
                case,
                "reject_citizenship_claim",
                {"evidence": "Birth record search negative"},
                "no record of birth in Texas",
            ).id
        ),
    )
    with pytest.raises(AccessRefused, match="one supervisor and one counsel"):
        desk.run("supervisor.houston", lc.decide, req, True, "agree")
    desk.run("counsel", lc.decide, req, True, "agree, no evidence of citizenship")
    desk.run("supervisor.miami", lc.execute, req)
    assert _state(desk, case) == "ENCOUNTERED"
    changes = desk.run(
        "system",
        lambda gw: gw.rows(
            select(CitizenshipChange.from_status, CitizenshipChange.to_status),
            CitizenshipChange,
            params={},
        ),
    )
    assert [tuple(r) for r in changes] == [("unknown", "claimed"), ("claimed", "not-a-citizen")]


def test_blocked_step_is_audited(desk: Desk) -> None:
    case = _encountered(
        desk, desk.person("per-cit", citizenship_status="claimed", golden={"a_number": A_NUMBER})
    )
    with pytest.raises(lc.StepBlocked):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "arrest",
            {"authority": "warrant", "probable_cause": "data match only"},
            "data match",
        )
    with desk.runtime.sessions() as session:
        refused = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "case.step_blocked")
        ).all()
    assert refused and "not_a_citizen" in refused[-1].details["blocked_by"]


def test_protection_bars_the_country_and_a_new_one_needs_notice_and_wait(desk: Desk) -> None:
    case = _in_proceedings(desk)
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "file_relief_application",
        {"form": "withholding", "filed_on": "2026-03-02"},
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "grant_protection",
        {
            "decision_date": "2026-03-02",
            "protection": "withholding",
            "protected_country": "SLV",
        },
    )
    scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=40))
    desk.now = T0 + timedelta(days=41)
    assert _state(desk, case) == "FINAL_ORDER"
    with pytest.raises(lc.StepBlocked, match="barred by a"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "issue_warrant_of_removal",
            {"destination": "SLV"},
            "remove to SLV",
        )
    with pytest.raises(lc.StepBlocked, match="give written notice"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "issue_warrant_of_removal",
            {"destination": "GTM"},
            "remove to GTM",
        )
    desk.run("officer.miami", lc.perform, case, "notify_new_destination", {"country": "GTM"})
    with pytest.raises(lc.StepBlocked, match="waiting period"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "issue_warrant_of_removal",
            {"destination": "GTM"},
            "remove to GTM",
        )
    desk.now += timedelta(days=11)
    _approved(desk, case, "issue_warrant_of_removal", {"destination": "GTM"})


def test_pending_asylum_tps_and_stay_block_removal(desk: Desk) -> None:
    pid = desk.person(golden={"a_number": A_NUMBER})
    case = _in_proceedings(desk, pid)
    _final(desk, case)
    desk.run(
        "system",
        lambda gw: gw.add(
            BenefitApplication(
                id="ben-1",
                person_id=pid,
                receipt_no="IOE0000000001",
                form="I-821",
                status="approved",
                filed_on=date(2025, 1, 1),
                valid_until=date(2027, 1, 1),
            )
        ),
    )
    with pytest.raises(lc.StepBlocked, match="TPS"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "issue_warrant_of_removal",
            {"destination": "MEX"},
            "remove to MEX",
        )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "grant_stay",
        {"granted_by": "board", "granted_on": "2026-04-12"},
    )
    plan = desk.run("officer.miami", lc.preview, case, "lift_stay", {"lifted_on": "2026-04-13"})
    assert plan.allowed and plan.to_state == "FINAL_ORDER"


def test_detainer_needs_signed_warrant_and_lapses_after_48_hours(desk: Desk) -> None:
    case = _encountered(desk)
    params = {
        "probable_cause_basis": "statements-to-officer-indicate-removable",
        "facility": "County jail",
        "release_at": "2026-03-05T12:00:00+00:00",
    }
    with pytest.raises(lc.StepBlocked, match="no signed arrest warrant"):
        desk.run(
            "officer.miami", lc.request_action, case, "lodge_detainer", params, "jail release soon"
        )
    with pytest.raises(ValidationFailed, match="probable_cause_basis"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "lodge_detainer",
            params | {"probable_cause_basis": "foreign-born-no-match"},
            "jail release soon",
        )
    _approved(
        desk,
        case,
        "arrest",
        {"authority": "warrant", "probable_cause": "Admission expired long ago"},
    )
    req = _approved(desk, case, "lodge_detainer", params)
    desk.run("officer.miami", lc.execute, req)
    scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=4))
    assert _state(desk, case) == "DETAINER_LODGED"
    report = scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=6))
    assert [s[1] for s in report.steps] == ["detainer_lapsed"]


def test_voluntary_departure_missed_makes_the_alternate_order_final(desk: Desk) -> None:
    case = _in_proceedings(desk)
    with pytest.raises(lc.StepBlocked, match="needs a bond"):
        desk.run(
            "officer.miami",
            lc.perform,
            case,
            "grant_voluntary_departure",
            {
                "decision_date": "2026-03-02",
                "stage": "at-conclusion",
                "departure_deadline": "2026-04-30",
                "alternate_destination": "MEX",
            },
        )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "grant_voluntary_departure",
        {
            "decision_date": "2026-03-02",
            "stage": "at-conclusion",
            "departure_deadline": "2026-04-30",
            "alternate_destination": "MEX",
            "bond_amount": 500,
        },
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "post_vd_bond",
        {"posted_on": "2026-03-04", "amount": 500},
    )
    scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=30))
    assert _state(desk, case) == "VD_GRANTED"
    scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=61))
    events = desk.run("officer.miami", views.events, case)
    assert events[-1]["to_state"] == "FINAL_ORDER"
    assert "alternate order" in events[-1]["evidence"][0]["basis"]


def test_concurrent_ticks_apply_each_deadline_once(desk: Desk) -> None:
    cases = [_in_proceedings(desk) for _ in range(4)]
    for case in cases:
        desk.run(
            "officer.miami",
            lc.perform,
            case,
            "order_removal",
            {"decision_date": "2026-03-02", "destination": "MEX"},
        )
    moment = T0 + timedelta(days=95)
    reports: list[Any] = []
    threads = [
        threading.Thread(
            target=lambda: reports.append(scheduler.tick(desk.runtime.sessions, moment))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    applied = sum(len(r.deadlines_applied) for r in reports)

    def counts(gw: Gateway) -> tuple[int, int]:
        deadlines = gw.count(CaseDeadline, CaseDeadline.status == "applied", params={})
        events = gw.count(CaseEvent, CaseEvent.kind == "deadline", params={})
        return deadlines, events

    deadlines, events = desk.run("system", counts)
    assert applied == deadlines == events
    assert all(_state(desk, c) == "FINAL_ORDER" for c in cases)
    assert len(scheduler.tick(desk.runtime.sessions, moment).deadlines_applied) == 0


def test_removal_flight_manifest_and_departure(desk: Desk) -> None:
    case = _in_proceedings(desk)
    _final(desk, case)
    flight = desk.run(
        "officer.miami",
        lambda gw: (
            logistics.create_flight(
                gw,
                kind="charter",
                carrier="Synthetic Air",
                flight_no="SA100",
                origin="MIA",
                destination="MEX",
                departs_at=desk.now + timedelta(days=10),
                capacity=2,
            ).id
        ),
    )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "request_travel_document",
        {"country": "MEX", "consulate": "Consulate of Mexico, Miami"},
    )
    travel_id = desk.run("officer.miami", views.case_page, case)["travel_documents"][0]["id"]
    with pytest.raises(lc.StepBlocked, match="warrant of removal"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "schedule_removal",
            {"flight_id": flight, "destination": "MEX"},
            "seat on SA100",
        )
    desk.run(
        "officer.miami",
        lc.execute,
        _approved(desk, case, "issue_warrant_of_removal", {"destination": "MEX"}),
    )
    with pytest.raises(lc.StepBlocked, match="travel document"):
        desk.run(
            "officer.miami",
            lc.request_action,
            case,
            "schedule_removal",
            {"flight_id": flight, "destination": "MEX"},
            "seat on SA100",
        )
    desk.run(
        "officer.miami",
        lc.perform,
        case,
        "record_travel_document",
        {"travel_document_id": travel_id, "outcome": "issued"},
    )
    desk.run(
        "officer.miami",
        lc.execute,
        _approved(desk, case, "schedule_removal", {"flight_id": flight, "destination": "MEX"}),
    )
    lines = desk.run("officer.miami", logistics.manifest, flight)
    assert [line.cleared for line in lines] == [True]
    desk.now = desk.now + timedelta(days=10)
    result = desk.run("system", logistics.depart, flight)
    assert result["removed"] == [case] and _state(desk, case) == "REMOVED"


def test_operation_drops_a_target_that_became_blocked(desk: Desk) -> None:
    ok, blocked = _encountered(desk), _encountered(desk)
    targets = [
        {
            "case_id": c,
            "action": "arrest",
            "params": {"authority": "warrant", "probable_cause": "Admission expired long ago"},
        }
        for c in (ok, blocked)
    ]
    op = desk.run(
        "officer.miami",
        lambda gw: (
            operations.create(
                gw,
                name="Op test",
                office="Miami",
                planned_for=desk.now + timedelta(days=2),
                justification="two overstays with no relief",
                targets=targets,
            )[0].id
        ),
    )
    with pytest.raises(AccessRefused):
        desk.run("officer.miami", operations.decide, op, True, "self")
    desk.run(
        "officer.miami",
        lc.perform,
        blocked,
        "claim_citizenship",
        {"basis": "claim-by-person", "details": "Says born in Ohio"},
    )
    dropped = desk.run("supervisor.miami", operations.decide, op, True, "checked the list")
    assert list(dropped) == [blocked]
    result = desk.run("officer.miami", operations.execute, op)
    assert result["done"] == [ok] and _state(desk, ok) == "ARRESTED"


def test_every_applied_step_is_one_event_and_one_audit_entry(desk: Desk) -> None:
    case = _in_proceedings(desk)
    _final(desk, case)
    with desk.runtime.sessions() as session:
        audited = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "case.step_applied")
        )
    steps = desk.run(
        "system",
        lambda gw: gw.count(
            CaseEvent, CaseEvent.kind.in_(["transition", "computed", "system"]), params={}
        ),
    )
    assert audited == steps == 5


def test_voluntary_departure_before_conclusion_needs_no_bond(desk: Desk) -> None:
    case = _in_proceedings(desk)
    params = {
        "decision_date": "2026-03-02",
        "stage": "before-conclusion",
        "departure_deadline": "2026-06-20",
        "alternate_destination": "MEX",
    }
    desk.run("officer.miami", lc.perform, case, "grant_voluntary_departure", params)
    scheduler.tick(desk.runtime.sessions, T0 + timedelta(days=30))
    assert _state(desk, case) == "VD_GRANTED"


def test_no_case_is_opened_for_a_decided_citizen(desk: Desk) -> None:
    pid = desk.person(citizenship_status="citizen")
    with pytest.raises(ValidationFailed, match="a U\\.S\\. citizen"):
        desk.run("officer.miami", lambda gw: lc.open_case(gw, pid, office="Miami", reason="lead"))
