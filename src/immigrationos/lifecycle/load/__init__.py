"""Demo cases: each resolved person's court and encounter history, replayed through the engine.

The loader never writes a case row itself. It reads the history (court cases with their
proceedings, hearings, decisions and appeals; encounters; departures) through a system gateway
under case processing, turns each court case, and each encounter that led to none, into a
:class:`CasePlan` (a pure, dated list of steps), and replays the plan with the lifecycle
service, every step at its historical moment, so deadlines fall on the dates the law gives.
Deadlines a case passes on the way are applied when they fell due, as the scheduler would have
done then. A step the engine refuses ends that case's replay where it stands and is counted by
reason: the engine is right by definition, and the loader never works around a guard.

One scheduler tick then brings everything up to today (and sweeps citizens into review), and
a showcase makes sure every state of the table has at least one case, driving suitable persons
there with the same request, approval and execution discipline (documents printed to PDF).
Cases are keyed by the record they replay (``opened_reason`` starts with it), so loading twice
opens nothing twice.

Hand-written rather than generated from the table because the mapping from court records to
steps is the point: it says, per record kind, which step of the law it is.
"""

from __future__ import annotations

import time
from datetime import datetime

from immigrationos.core.clock import utcnow
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.load.history import (
    NO_RECIPE,
    PDF_KEY,
    AppealRec,
    CourtRec,
    DecisionRec,
    EncounterRec,
    HearingRec,
    PersonFile,
    ProceedingRec,
    ProgressFn,
    read_world,
)
from immigrationos.lifecycle.load.plan import CasePlan, PlannedStep, handling_office, plan_person
from immigrationos.lifecycle.load.replay import Loader, LoadReport
from immigrationos.lifecycle.load.showcase import Showcase, _by_state, existing_keys
from immigrationos.lifecycle.scheduler import tick
from immigrationos.lifecycle.table import load_table
from immigrationos.runtime import Runtime


def plan_world(files: dict[str, PersonFile]) -> list[CasePlan]:
    """Every person's plans, oldest case first per person (a reinstatement needs its removal)."""
    return [plan for f in files.values() for plan in plan_person(f)]


def load_cases(
    runtime: Runtime,
    *,
    progress: ProgressFn | None = None,
    now: datetime | None = None,
    showcase_pdf: bool | None = None,
) -> LoadReport:
    """Replay every person's history into cases, tick once, then showcase every state.

    Bulk replays render HTML only; showcase cases render PDF too unless ``showcase_pdf`` is
    False (default: the runtime's setting).
    """
    started = time.perf_counter()
    now = now or utcnow()
    report = LoadReport()
    ctx = system_context(Purpose.CASE_PROCESSING, "demo: read the histories to replay")
    with unit_of_work(runtime.sessions, ctx) as gw:
        files = read_world(gw, now.date())
        pdf = bool(gw.session.info.get(PDF_KEY, True)) if showcase_pdf is None else showcase_pdf
    loader = Loader(runtime, now, report)
    keys = existing_keys(runtime)
    plans = plan_world(files)
    for i, plan in enumerate(plans):
        if plan.key in keys:
            report.cases_present += 1
        else:
            loader.replay(plan, pdf=False)
        if progress:
            progress(i + 1, len(plans))
    report.tick = tick(runtime.sessions, now)
    Showcase(loader, files, pdf).run()
    report.by_state = _by_state(runtime)
    for state in load_table().states:
        if not report.by_state.get(state):
            report.unreachable.setdefault(state, NO_RECIPE.get(state, "no case rests there"))
    report.seconds = time.perf_counter() - started
    return report


__all__ = [
    "AppealRec",
    "CasePlan",
    "CourtRec",
    "DecisionRec",
    "EncounterRec",
    "HearingRec",
    "LoadReport",
    "PersonFile",
    "PlannedStep",
    "ProceedingRec",
    "handling_office",
    "load_cases",
    "plan_person",
    "plan_world",
    "read_world",
]
