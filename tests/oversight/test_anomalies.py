"""Access-anomaly detection on both backends: planted misuse is flagged by the right rule, clean
users are not (the false positive rate is reported), scans are idempotent, reviews are audited.

The world here is small and built by hand through the gateway (persons, and cases in two
offices assigned to the demo officers), so the detector's SQL runs on SQLite and PostgreSQL in
seconds; ``test_anomaly_pages.py`` does the same on a loaded demo world, with its worklists.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from immigrationos.accounts.models import User
from immigrationos.accounts.roles import Role
from immigrationos.accounts.service import actor_of, ensure_demo_accounts
from immigrationos.audit.chain import verify
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused, ConfigurationError, ValidationFailed
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.oversight import activity, anomalies, anomaly_plans, anomaly_rules
from immigrationos.oversight.models import AccessAlert
from immigrationos.persons.models import Person
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

#: The largest false positive rate over clean users the tests accept (the runs below give 0).
FPR_BOUND = 0.10
SHIPPED = anomaly_rules.RULES_PATH.read_text(encoding="utf-8")


# --- the rules file -----------------------------------------------------------------------


def test_the_shipped_rules_load_and_say_why() -> None:
    rules = anomaly_rules.load_rules()
    assert set(anomaly_rules.RULE_NAMES) == set(rules.rules.model_dump())
    assert rules.working_hours.zone("Houston") == "America/Chicago"
    assert rules.working_hours.zone(None) == rules.working_hours.timezone
    assert len(rules.sha256) == 64
    assert SHIPPED.count("#") > 30  # thresholds carry their reasons


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("min_persons: 4", "min_persons: 0", "min_persons"),
        ("timezone: America/New_York", "timezone: Mars/Olympus", "unknown time zone"),
        ('  start: "07:00"', '  start: "7 o\'clock"', "start"),
        ("    min_reads: 10", "    min_reads: 10\n    surprise: 1", "surprise"),
        ("roles: [officer, supervisor]", "roles: [officer, janitor]", "roles"),
    ],
)
def test_a_bad_rules_file_is_refused_with_the_problem(
    tmp_path: Path, old: str, new: str, problem: str
) -> None:
    assert old in SHIPPED
    path = tmp_path / "rules.yaml"
    path.write_text(SHIPPED.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=problem):
        anomaly_rules.load_rules(path)


def test_the_plans_are_sql_an_auditor_can_read() -> None:
    rules = anomaly_rules.load_rules()
    start, end = anomalies.default_window(rules)
    text = str(anomaly_plans.outside_query(rules, "postgresql", start, end))
    assert "cases" in text and "priority_scores" in text and "NOT (EXISTS" in text
    assert "GROUP BY" in str(anomaly_plans.activity_query(rules, "sqlite", start, end))


# --- a small world on both backends -------------------------------------------------------


def anomaly_world(runtime: Runtime, persons: int = 160) -> None:
    """Persons and cases in Miami and Houston (a third of them), assigned to the demo officers."""
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        officers = {
            u.office: u.id
            for u in session.scalars(select(User).where(User.role == Role.OFFICER.value))
        }
    ctx = system_context(Purpose.DATA_INTEGRATION, "test world")
    with unit_of_work(runtime.sessions, ctx) as gw:
        gw.add(*(Person(id=f"per-t{i:04d}", given_name="Synthetic") for i in range(persons)))
        gw.add(
            *(
                EnforcementCase(
                    id=f"case-t{i:04d}",
                    person_id=f"per-t{i:04d}",
                    office=office,
                    assigned_to=officers[office] if i % 2 else None,
                )
                for i in range(0, persons // 3)
                for office in ["Miami" if i % 3 else "Houston"]
            )
        )


@pytest.fixture(scope="module")
def simulated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The SQLite database and ground truth of the first simulation in this module."""
    return {"template": tmp_path_factory.mktemp("anomalies") / "simulated.db"}


def _sqlite_copy(source: str, target: str) -> None:
    """Copy one SQLite database over another (the backup API: consistent whatever the WAL)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture
def anomaly_truth(runtime: Runtime, simulated_sqlite: dict[str, Any]) -> activity.GroundTruth:
    """The small world with ten days of simulated activity on the test's own database.

    On SQLite it is simulated once per module and copied for each later test (the simulation
    takes seconds, the copy milliseconds); PostgreSQL simulates it anew for each test."""
    path = runtime.engine.url.database
    if runtime.backend == "sqlite" and path and "truth" in simulated_sqlite:
        runtime.engine.dispose()
        _sqlite_copy(str(simulated_sqlite["template"]), path)
        truth: activity.GroundTruth = simulated_sqlite["truth"]
        return truth
    anomaly_world(runtime)
    truth = activity.simulate(runtime, activity.SimulationConfig(days=10, seed=11))
    if runtime.backend == "sqlite" and path:
        runtime.engine.dispose()
        _sqlite_copy(path, str(simulated_sqlite["template"]))
        simulated_sqlite["truth"] = truth
    return truth


def _scan(runtime: Runtime, truth: activity.GroundTruth) -> anomalies.ScanReport:
    since, until = truth.window
    ctx = system_context(Purpose.OVERSIGHT_AUDIT, "test scan")
    with transaction(runtime.sessions) as session:
        return anomalies.scan(session, ctx, since, until)


def test_planted_misuse_is_flagged_and_clean_users_are_not(
    runtime: Runtime, anomaly_truth: activity.GroundTruth
) -> None:
    report = _scan(runtime, anomaly_truth)
    with transaction(runtime.sessions) as session:
        result = activity.evaluate(session, anomaly_truth)
        alerts = list(session.scalars(select(AccessAlert)))
    print("evaluation:", json.dumps(result.as_dict(), default=str))  # the FPR, reported
    assert {p.rule for p in anomaly_truth.planted} == set(anomaly_rules.RULE_NAMES)
    assert result.missed == [], "every planted misuse is flagged by its rule"
    for score in result.rules:
        assert score.recall == 1.0, score
        assert score.false_positive_rate is not None
        assert score.false_positive_rate <= FPR_BOUND, score
    assert result.false_positive_rate <= FPR_BOUND, result.clean_flagged
    assert result.clean_users >= 8
    assert len(report.raised) == len(alerts) >= len(anomaly_truth.planted)
    with transaction(runtime.sessions) as session:
        assert verify(session).ok  # the simulated activity is genuine chain entries


def test_alerts_keep_evidence_but_no_person(
    runtime: Runtime, anomaly_truth: activity.GroundTruth
) -> None:
    _scan(runtime, anomaly_truth)
    with transaction(runtime.sessions) as session:
        alerts = list(session.scalars(select(AccessAlert)))
        text = json.dumps([anomalies.alert_dict(a) for a in alerts], default=str)
        browse = next(a for a in alerts if a.rule == "outside_caseload")
        seqs = browse.evidence["audit_seqs"]
        reads = session.scalars(select(AuditEntry).where(AuditEntry.seq.in_(seqs))).all()
    assert "per-" not in text and "case-" not in text
    assert browse.measured >= 4 and browse.evidence["audit_entries"] == len(seqs) > 0
    assert {(e.action, e.object_type, e.actor_id) for e in reads} == {
        ("record.read", "persons", browse.user_id)
    }
    assert all(a.rules_sha256 == anomaly_rules.load_rules().sha256 for a in alerts)


def test_scanning_again_raises_nothing_new(
    runtime: Runtime, anomaly_truth: activity.GroundTruth
) -> None:
    first = _scan(runtime, anomaly_truth)
    again = _scan(runtime, anomaly_truth)
    since, until = anomaly_truth.window
    wider = system_context(Purpose.OVERSIGHT_AUDIT, "wider window")
    with transaction(runtime.sessions) as session:
        overlapping = anomalies.scan(session, wider, since - timedelta(days=3), until)
    with transaction(runtime.sessions) as session:  # audit entries are stored at commit
        stored = session.scalar(select(func.count()).select_from(AccessAlert))
        scans = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "anomaly.scan")
        )
        raised = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "anomaly.alert_raised")
        )
    assert first.raised and again.raised == [] and sorted(first.raised) == again.existing
    assert overlapping.raised == [] and stored == raised == len(first.raised)
    assert scans == 3


def test_review_is_an_auditors_audited_decision(
    runtime: Runtime, anomaly_truth: activity.GroundTruth
) -> None:
    report = _scan(runtime, anomaly_truth)
    with transaction(runtime.sessions) as session:
        users = {u.username: u for u in session.scalars(select(User))}
    auditor = AccessContext(actor_of(users["auditor"]), Purpose.OVERSIGHT_AUDIT, "review")
    officer = AccessContext(actor_of(users["officer.miami"]), Purpose.CASE_PROCESSING, "peek")
    alert_id = report.raised[0]
    with transaction(runtime.sessions) as session:
        with pytest.raises(AccessRefused):
            anomalies.review(session, officer, alert_id, "dismissed", "not me, honest")
        with pytest.raises(ValidationFailed):
            anomalies.review(session, auditor, alert_id, "maybe", "undecided today")
        with pytest.raises(ValidationFailed):
            anomalies.review(session, auditor, alert_id, "confirmed", "")
    with transaction(runtime.sessions) as session:
        done = anomalies.review(session, auditor, alert_id, "confirmed", "read the evidence")
        assert (done.status, done.reviewed_by) == ("confirmed", users["auditor"].id)
    with transaction(runtime.sessions) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "anomaly.alert_reviewed")
        ).one()
        open_left, _ = anomalies.list_alerts(session, status="open")
    assert entry.actor_name == "auditor" and entry.object_ids == [alert_id]
    assert entry.details["decision"] == "confirmed" and entry.details["previous"] == "open"
    assert open_left == len(report.raised) - 1
    again = _scan(runtime, anomaly_truth)
    with transaction(runtime.sessions) as session:
        assert anomalies.get_alert(session, alert_id).status == "confirmed"  # kept by a rescan
    assert again.raised == []


def test_a_scan_is_for_auditors_and_the_simulation_for_the_demo(runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        officer = session.scalars(select(User).where(User.username == "officer.miami")).one()
        ctx = AccessContext(actor_of(officer), Purpose.CASE_PROCESSING, "curious")
        with pytest.raises(AccessRefused):
            anomalies.scan(session, ctx)
    settings = runtime.settings.model_copy(update={"mode": "production"})
    production = dataclasses.replace(runtime, settings=settings)
    with pytest.raises(ConfigurationError):
        activity.simulate(production)
