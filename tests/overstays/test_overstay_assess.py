"""Assessing overstays over a real store: each outcome, what counts as a departure, the
fiscal year, late records revising earlier figures, idempotence and refusals."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
from sqlalchemy import select

from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused, ValidationFailed
from immigrationos.departures import overstays
from immigrationos.departures.models import Departure, OverstayAssessment
from immigrationos.facts.models import Admission
from immigrationos.store.engine import transaction

from .conftest import Agency, at, count_rows

ON, UNTIL = date(2025, 11, 1), date(2026, 5, 1)  # a visit whose stay ends in FY2026
AS_OF = date(2026, 10, 15)


def test_each_outcome_with_its_evidence(agency: Agency) -> None:
    a = {name: agency.person() for name in ("on time", "late", "none", "extended", "staying",
                                            "asylum", "late filing")}  # fmt: skip
    adm = {name: agency.admission(pid, ON, UNTIL) for name, pid in a.items()}
    adm["staying"] = agency.admission(a["staying"], date(2026, 9, 1), date(2027, 3, 1))
    on_time = agency.departure(a["on time"], date(2026, 4, 20), at(date(2026, 4, 21)))
    agency.departure(a["late"], date(2026, 6, 10), at(date(2026, 6, 11)))
    i539 = agency.filing(a["extended"], "I-539", date(2026, 4, 15))
    agency.filing(a["asylum"], "I-589", date(2026, 4, 15))  # protection, not an extension
    agency.filing(a["late filing"], "I-539", date(2026, 5, 2))  # after the stay ended

    result = agency.assess(AS_OF)

    outcomes = {name: agency.outcome(aid) for name, aid in adm.items()}
    assert outcomes == {
        "on time": "departed-on-time", "late": "departed-late", "none": "no-departure-record",
        "extended": "not-an-overstay", "staying": "in-status", "asylum": "no-departure-record",
        "late filing": "no-departure-record",
    }  # fmt: skip
    assert result.written == result.admissions == 8  # "staying" has two admissions
    late = agency.history(adm["late"])[0]
    assert (late["days_over"], late["departed_on"], late["fiscal_year"]) == (
        40, date(2026, 6, 10), 2026)  # fmt: skip
    first = agency.history(adm["on time"])[0]
    assert first["departure_id"] == on_time and first["days_over"] is None
    assert first["basis"]["departure"]["channel"] == "manifest"
    assert agency.history(adm["extended"])[0]["basis"]["filing"]["id"] == i539


def test_out_of_scope_admissions_are_counted_exclusions(agency: Agency) -> None:
    pid = agency.person()
    agency.admission(pid, ON, None, klass="LPR")  # immigrant
    agency.admission(pid, date(2025, 1, 5), None, klass="F1")  # duration of status
    agency.admission(pid, date(2025, 2, 5), UNTIL, mode="land")
    agency.admission(pid, date(2025, 3, 5), UNTIL, mode="sea")  # in scope
    agency.admission(None, ON, UNTIL)  # not linked to a person

    result = agency.assess(AS_OF)

    assert result.exclusions == {"immigrant": 1, "no-end-of-stay": 1, "not-air-or-sea": 1,
                                 "not-linked": 1}  # fmt: skip
    assert result.admissions == 1
    report = agency.report(2026)
    assert {k: v["count"] for k, v in report["exclusions"].items()} == result.exclusions
    assert report["coverage"] == {"in_scope_now": 1, "assessed": 1}


@pytest.mark.parametrize(
    ("until", "year"),
    [(date(2025, 9, 30), 2025), (date(2025, 10, 1), 2026), (date(2026, 9, 30), 2026),
     (date(2026, 10, 1), 2027)],
)  # fmt: skip
def test_fiscal_year_runs_october_to_september(agency: Agency, until: date, year: int) -> None:
    aid = agency.admission(agency.person(), date(2025, 3, 1), until)
    agency.assess(AS_OF)
    assert agency.history(aid)[0]["fiscal_year"] == year == overstays.fiscal_year_of(until)
    in_year = agency.report(year)["totals"]
    assert in_year["assessed"] == 1 and agency.report(year + 1)["totals"]["assessed"] == 0


def test_the_report_keeps_the_fiscal_years_apart(agency: Agency) -> None:
    for until in (date(2025, 9, 30), date(2025, 10, 1), date(2026, 9, 30), date(2026, 10, 1)):
        agency.admission(agency.person(), date(2025, 3, 1), until)
    agency.assess(AS_OF)
    fy2026 = agency.report(2026)
    assert fy2026["totals"]["no-departure-record"] == 2
    assert fy2026["period"] == {"from": date(2025, 10, 1), "to": date(2026, 9, 30)}
    assert fy2026["totals"]["overstay_rate_pct"] == 100.0
    everything = agency.report()
    assert [r["fiscal_year"] for r in everything["by_fiscal_year"]] == [2026, 2025, 2027]


def test_a_late_record_revises_the_figure_and_the_earlier_one_is_kept(agency: Agency) -> None:
    pid = agency.person("IND")
    aid = agency.admission(pid, ON, UNTIL)
    d1, d2 = date(2026, 6, 1), date(2026, 7, 15)

    agency.assess(d1, now=at(d1, 20))
    assert agency.outcome(aid) == "no-departure-record"
    agency.departure(pid, date(2026, 5, 20), at(date(2026, 7, 10)))  # left late, recorded later
    agency.departure(pid, date(2026, 4, 25), at(date(2026, 7, 16), 0))  # known only after D2
    second = agency.assess(d2, now=at(d2, 20))

    assert (second.written, second.superseded) == (1, 1)
    old, new = agency.history(aid)
    assert (old["outcome"], old["as_of"], old["standing"]) == ("no-departure-record", d1, False)
    assert (new["outcome"], new["as_of"], new["days_over"]) == ("departed-late", d2, 19)
    assert new["basis"]["revises"] == old["id"] and new["standing"]
    report = agency.report(2026)
    assert [(h["as_of"], h["no-departure-record"], h["departed-late"])
            for h in report["history"]] == [(d1, 1, 0), (d2, 0, 1)]  # fmt: skip
    assert report["totals"]["in_country_rate_pct"] == 0.0
    then = agency.report(2026, d1 + (d2 - d1) / 2)  # as the figures stood between the two
    assert then["totals"]["no-departure-record"] == 1 and then["totals"]["departed-late"] == 0

    third = agency.assess(date(2026, 7, 16), now=at(date(2026, 7, 16), 20))
    assert agency.outcome(aid) == "departed-on-time" and third.written == 1


def test_two_runs_on_one_day_are_two_points_of_the_history(agency: Agency) -> None:
    pid = agency.person()
    aid = agency.admission(pid, ON, UNTIL)
    day = date(2026, 7, 1)
    agency.assess(day, now=at(day, 9))
    agency.departure(pid, date(2026, 5, 20), at(day, 10))  # the stream catches up at ten
    agency.assess(day, now=at(day, 11))
    history = agency.report(2026)["history"]
    assert [(h["as_of"], h["assessed_at"].hour, h["no-departure-record"], h["departed-late"])
            for h in history] == [(day, 9, 1, 0), (day, 11, 0, 1)]  # fmt: skip
    assert agency.report(2026, day)["totals"]["departed-late"] == 1  # the day's last word
    assert [h["outcome"] for h in agency.history(aid)] == ["no-departure-record",
                                                           "departed-late"]  # fmt: skip


def test_assessing_twice_the_same_day_adds_nothing(agency: Agency) -> None:
    for _ in range(3):
        agency.admission(agency.person(), ON, UNTIL)
    first = agency.assess(AS_OF)
    again = agency.assess(AS_OF)
    later = agency.assess(date(2026, 10, 20))  # nothing new was recorded either
    assert first.written == 3 and again.written == later.written == 0
    assert again.unchanged == 3 and agency.run(count_rows) == 3
    with transaction(agency.runtime.sessions) as session:
        runs = session.scalars(select(AuditEntry).where(AuditEntry.action == "overstay.assessed"))
        details = [e.details for e in runs]
    assert [d["written"] for d in details] == [3, 0, 0]
    assert all(d["outcomes"]["no-departure-record"] == 3 for d in details)


def test_a_self_report_counts_only_once_confirmed(agency: Agency) -> None:
    confirmed, alone = agency.person(), agency.person()
    adm = agency.admission(confirmed, ON, UNTIL)
    lone = agency.admission(alone, ON, UNTIL)
    report = agency.departure(confirmed, date(2026, 4, 29), at(date(2026, 4, 29)),
                              channel="self_report")  # fmt: skip
    agency.departure(alone, date(2026, 4, 29), at(date(2026, 4, 29)), channel="self_report")

    agency.assess(date(2026, 6, 1))
    assert agency.outcome(adm) == agency.outcome(lone) == "no-departure-record"
    agency.departure(
        confirmed, date(2026, 5, 3), at(date(2026, 6, 20)), band="verified", confirms=report
    )  # the manifest: three days after the end of stay
    agency.assess(date(2026, 7, 1))

    standing = agency.history(adm)[-1]
    assert (standing["outcome"], standing["departure_id"]) == ("departed-on-time", report)
    assert standing["basis"]["departure"]["known_at"].startswith("2026-06-20")
    assert agency.outcome(lone) == "no-departure-record"


def test_a_departure_in_review_counts_only_once_decided(agency: Agency) -> None:
    pid = agency.person()
    aid = agency.admission(pid, ON, UNTIL)
    did = agency.departure(pid, date(2026, 4, 1), at(date(2026, 4, 2)), band="review")
    agency.assess(date(2026, 6, 1))
    assert agency.outcome(aid) == "no-departure-record"
    agency.change(Departure, did, match_band="verified", review_status="decided",
                  reviewed_at=at(date(2026, 6, 10)))  # fmt: skip
    agency.assess(date(2026, 6, 9))  # decided after this day: not known yet
    assert agency.outcome(aid) == "no-departure-record"
    agency.assess(date(2026, 6, 10))
    assert agency.outcome(aid) == "departed-on-time"


def test_a_departure_after_the_next_admission_ends_that_one(agency: Agency) -> None:
    pid = agency.person()
    first = agency.admission(pid, date(2025, 11, 1), date(2026, 2, 1))
    second = agency.admission(pid, date(2026, 3, 1), date(2026, 6, 1))
    agency.departure(pid, date(2026, 5, 15), at(date(2026, 5, 16)))
    agency.assess(AS_OF)
    assert agency.outcome(first) == "no-departure-record"  # a missed exit, seen as such
    assert agency.outcome(second) == "departed-on-time"


def test_corrected_facts_revise_and_withdrawn_admissions_leave(agency: Agency) -> None:
    pid = agency.person()
    moved, dropped = agency.admission(pid, ON, UNTIL), agency.admission(pid, ON, UNTIL, "H1B")
    agency.assess(date(2026, 6, 1), now=at(date(2026, 6, 1), 20))
    agency.change(Admission, moved, admitted_until=date(2026, 10, 2))  # now ends in FY2027
    agency.change(Admission, dropped, admitted_until=None)  # duration of status after all
    result = agency.assess(date(2026, 6, 2), now=at(date(2026, 6, 2), 20))
    assert (result.written, result.superseded, result.withdrawn) == (1, 2, 1)
    assert agency.history(moved)[-1]["fiscal_year"] == 2027
    assert not agency.history(dropped)[-1]["standing"]
    assert agency.report(2026)["totals"]["assessed"] == 0
    points = agency.report()["history"]  # the withdrawn one stops counting at the second run
    assert [p["assessed"] for p in points] == [2, 1]


def test_refusals(agency: Agency) -> None:
    agency.admission(agency.person(), ON, UNTIL)
    with pytest.raises(AccessRefused, match="statistics"):
        agency.run(overstays.report, None, None, username="officer.miami",
                   purpose=overstays.Purpose.DEPARTURE_VERIFICATION)  # fmt: skip
    with pytest.raises(AccessRefused, match="no access to personal data"):
        agency.run(overstays.report, None, None, username="auditor")
    with pytest.raises(ValidationFailed, match="future"):
        agency.assess(date(2026, 11, 3))
    agency.assess(AS_OF)
    with pytest.raises(ValidationFailed, match="move forward"):
        agency.assess(date(2026, 10, 1))
    with transaction(agency.runtime.sessions) as session:
        refused = session.scalars(select(AuditEntry).where(AuditEntry.outcome == "refused"))
        assert len(list(refused)) == 2  # both refusals are on the record


def test_the_plan_is_pure_and_runs_on_an_empty_store(agency: Agency) -> None:
    snapshot = agency.run(overstays.read, AS_OF)
    assert set(snapshot) == {"adm", "dep", "ben", "cur"}
    plan = overstays.plan(snapshot, AS_OF, "ovr-test")
    assert plan.rows.num_rows == 0 and plan.superseded == [] and plan.admissions == 0
    assert set(plan.rows.column_names) >= {c.name for c in OverstayAssessment.__table__.c} - {
        "assessed_at", "superseded_at"}  # fmt: skip
    assert isinstance(plan.rows, pa.Table)
