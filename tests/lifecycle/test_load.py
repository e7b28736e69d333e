"""Demo cases: a small world's court and encounter histories replayed through the engine, on
SQLite and PostgreSQL. One load per backend (module scope) serves every test here: cases per
court case, a case in every state, finality with its evidence, no guard skipped, no duplicate
on a second load, and an intact audit chain."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from tests.conftest import PG_URL, _pg_admin, require_postgres
from tests.sources.conftest import load_world

from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.audit.chain import verify
from immigrationos.core.settings import Settings
from immigrationos.facts.models import Appeal, CourtCase, CourtDecision, Proceeding
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.load import (
    AppealRec,
    CourtRec,
    DecisionRec,
    EncounterRec,
    HearingRec,
    LoadReport,
    PersonFile,
    ProceedingRec,
    load_cases,
    plan_person,
)
from immigrationos.lifecycle.models import (
    ActionRequest,
    Approval,
    CaseCondition,
    CaseEvent,
    Document,
    EnforcementCase,
    RemovalFlight,
)
from immigrationos.lifecycle.table import load_table
from immigrationos.resolution import service as resolution
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store.engine import transaction

pytestmark = pytest.mark.slow

WORLD_PERSONS = 600
"""Large enough for removed, voluntarily departed and self-deported histories (seed 11)."""
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CTX = system_context(Purpose.CASE_PROCESSING, "test")


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runtime, LoadReport]]:
    """A resolved world with its cases loaded once (read by every test of this module)."""
    folder = tmp_path_factory.mktemp("cases")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'immos.db'}"
    else:
        require_postgres()
        name = f"immos_c_{uuid.uuid4().hex[:12]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    runtime = open_runtime(Settings(mode="demo", data_dir=folder, database_url=url))
    try:
        load_world(runtime, folder / "world", persons=WORLD_PERSONS)
        with transaction(runtime.sessions) as session:
            ensure_demo_accounts(session)
        ctx = system_context(Purpose.IDENTITY_RESOLUTION, "test")
        with unit_of_work(runtime.sessions, ctx) as gw:
            resolution.run(gw)
        yield runtime, load_cases(runtime, now=NOW)
    finally:
        runtime.close()
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _read(runtime: Runtime, fn: Any) -> Any:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return fn(gw)


def _cases(gw: Gateway) -> list[EnforcementCase]:
    return gw.select(select(EnforcementCase), EnforcementCase, params={"test": "cases"})


def _events(gw: Gateway) -> list[CaseEvent]:
    stmt = select(CaseEvent).order_by(CaseEvent.case_id, CaseEvent.seq)
    return gw.select(stmt, CaseEvent, params={"test": "events"})


def test_each_court_case_of_a_resolved_person_has_its_case(
    loaded: tuple[Runtime, LoadReport],
) -> None:
    runtime, report = loaded
    court = _read(
        runtime,
        lambda gw: gw.rows(
            select(CourtCase.case_no).where(CourtCase.person_id.is_not(None)), CourtCase, params={}
        ),
    )
    reasons = {c.opened_reason.partition(":")[0] for c in _read(runtime, _cases)}
    assert court and {f"court case {no}" for (no,) in court} <= reasons
    assert report.cases_opened >= len(court) and report.steps_applied > 5 * len(court)


def test_every_state_of_the_table_has_a_case(loaded: tuple[Runtime, LoadReport]) -> None:
    runtime, report = loaded
    present = {c.state for c in _read(runtime, _cases)}
    missing = set(load_table().states) - present
    assert missing == set(), report.as_dict()
    assert report.unreachable == {}
    histories = {"REMOVED", "DEPARTED_VOLUNTARILY", "CLOSED_DEPARTED", "FINAL_ORDER"}
    assert not histories & set(report.showcase), "these come from the records themselves"


def _past_window_orders(gw: Gateway) -> list[str]:
    """Court case numbers with a removal order, no appeal, and the window long closed."""
    appealed = select(Appeal.decision_id)
    rows = gw.rows(
        select(CourtCase.case_no)
        .join(Proceeding, Proceeding.court_case_id == CourtCase.id)
        .join(CourtDecision, CourtDecision.proceeding_id == Proceeding.id)
        .where(
            Proceeding.kind == "removal-240",
            CourtDecision.decision_type == "removal-ordered",
            CourtDecision.decided_on < (NOW - timedelta(days=40)).date(),
            CourtDecision.id.not_in(appealed),
            CourtCase.person_id.is_not(None),
        ),
        CourtCase,
        params={},
    )
    return [r[0] for r in rows]


def test_a_removal_order_past_its_appeal_window_is_final_with_evidence(
    loaded: tuple[Runtime, LoadReport],
) -> None:
    runtime, _ = loaded

    def check(gw: Gateway) -> int:
        numbers = _past_window_orders(gw)
        cases = {c.opened_reason.partition(":")[0]: c for c in _cases(gw)}
        final = 0
        for no in numbers:
            case = cases[f"court case {no}"]
            events = [e for e in _events(gw) if e.case_id == case.id]
            became = [e for e in events if e.action == "order_became_final"]
            assert became, (no, [e.action for e in events])
            basis = {ev.get("basis") for ev in became[0].evidence}
            assert "appeal window expired" in basis
            windows = [e for e in events if e.kind == "deadline" and e.action == "appeal_window"]
            assert windows and windows[0].at == became[0].at
            if case.state == "FINAL_ORDER":
                final += 1
                conditions = gw.select(
                    select(CaseCondition).where(
                        CaseCondition.case_id == case.id, CaseCondition.kind == "final_order"
                    ),
                    CaseCondition,
                    params={},
                )
                assert conditions[0].params["evidence"][0]["basis"] == "appeal window expired"
        return final

    assert _read(runtime, check) >= 1


def test_no_guard_was_bypassed(loaded: tuple[Runtime, LoadReport]) -> None:
    runtime, _ = loaded
    table = load_table()
    events = _read(runtime, _events)
    steps = [e for e in events if e.kind in ("transition", "system", "computed")]
    assert steps
    for e in steps:
        t = table.transitions[e.action]
        assert all(c["ok"] for c in e.checks), (e.case_id, e.action, e.checks)
        assert {c["guard"] for c in e.checks} >= set(table.expand(t.guards)) | {"state"}
        assert (e.request_id is not None) == t.needs_approval, (e.case_id, e.action)

    def approvals(gw: Gateway) -> list[Any]:
        return gw.rows(
            select(Approval.guard_checks, ActionRequest.requested_by, Approval.decided_by)
            .join(ActionRequest, ActionRequest.id == Approval.request_id)
            .where(Approval.decision == "approved"),
            Approval,
            params={},
        )

    decided = _read(runtime, approvals)
    assert decided
    for checks, requested_by, decided_by in decided:
        assert requested_by != decided_by and checks and all(c["ok"] for c in checks)


def test_removals_ride_the_flight_the_record_names(loaded: tuple[Runtime, LoadReport]) -> None:
    runtime, _ = loaded
    events = _read(runtime, _events)
    removed = [e for e in events if e.action == "removal_verified"]
    assert removed
    with transaction(runtime.sessions) as session:
        flights = session.scalars(select(RemovalFlight)).all()
    departed = [f for f in flights if f.status == "departed"]
    assert len(departed) >= len(removed)
    flown = {datetime.fromisoformat(e.params["departed_at"]) for e in removed}
    assert flown <= {f.departed_at for f in departed}


def test_showcase_documents_are_printed_and_bulk_ones_are_not(
    loaded: tuple[Runtime, LoadReport],
) -> None:
    runtime, report = loaded

    def docs(gw: Gateway) -> list[Any]:
        return gw.rows(select(Document.case_id, Document.pdf.is_not(None)), Document, params={})

    rows = _read(runtime, docs)
    fresh = {c.id for c in _read(runtime, _cases) if c.opened_reason.startswith("showcase")}
    assert fresh and all(pdf for case_id, pdf in rows if case_id in fresh)
    assert not any(pdf for case_id, pdf in rows if case_id not in set(report.showcase.values()))


def test_loading_again_opens_nothing_and_the_audit_chain_holds(
    loaded: tuple[Runtime, LoadReport],
) -> None:
    runtime, first = loaded
    cases = _read(runtime, _cases)
    fresh = [c for c in cases if c.opened_reason.startswith("showcase")]
    again = load_cases(runtime, now=NOW + timedelta(minutes=5))
    assert again.cases_opened == 0 and again.showcase == {}
    assert again.cases_present == first.cases_opened - len(fresh)
    assert len(_read(runtime, _cases)) == len(cases)
    with transaction(runtime.sessions) as session:
        assert verify(session).ok


# -- plans, without a database --------------------------------------------------------------


def _file(**court: Any) -> PersonFile:
    hearing = HearingRec(datetime(2020, 3, 2, 9, tzinfo=UTC), "master", "Miami")
    decision = DecisionRec("removal-ordered", date(2020, 6, 1), None, None)
    proceeding = ProceedingRec(
        court.get("kind", "removal-240"),
        date(2020, 1, 15),
        (hearing, HearingRec(datetime(2020, 6, 1, 9, tzinfo=UTC), "individual", "Miami")),
        decision,
        court.get("appeal"),
    )
    return PersonFile(
        "per-x",
        "MEX",
        "A123456789",
        date(1990, 1, 1),
        court=[CourtRec("IC000000001", "212(a)(6)(A)(i)", date(2020, 1, 2), (proceeding,))],
        encounters=[EncounterRec("E0000000001", date(2019, 12, 30), "Chicago", "NTA issued")],
    )


def test_a_court_case_plans_as_the_law_steps_in_date_order() -> None:
    appeal = AppealRec(date(2020, 6, 20), date(2021, 2, 1), "dismissed")
    [plan] = plan_person(_file(appeal=appeal))
    assert plan.key == "court case IC000000001" and plan.office == "Miami"
    assert [s.action for s in plan.steps] == [
        "record_encounter",
        "issue_nta",
        "file_nta",
        "schedule_hearing",
        "order_removal",
        "file_appeal",
        "appeal_dismissed",
    ]
    times = [s.at for s in plan.steps]
    assert times == sorted(times)
    assert plan.steps[1].params["hearing_at"] == "2020-03-02T09:00:00+00:00"


def test_an_expedited_order_is_requested_approved_and_executed() -> None:
    [plan] = plan_person(_file(kind="expedited-235b1"))
    [_encounter, order] = plan.steps
    assert order.action == "issue_expedited_order" and order.how == "approve"
    assert order.params["continuous_presence_days"] == (date(2020, 6, 1) - date(2019, 12, 30)).days
