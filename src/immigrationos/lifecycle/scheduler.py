"""The lifecycle scheduler: applies due deadlines exactly once, expires stale requests.

``immos lifecycle tick`` and the server's background task call :func:`tick`. Each due
deadline is claimed with a conditional update (``status = 'open'`` → ``'applied'``) in the
same transaction as its case event and the computed steps it unlocks, so two ticks running
at once apply it once: the second finds nothing left to claim. A tick also sweeps open cases
whose person has citizenship evidence on file into citizenship review.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from immigrationos.audit.events import DeadlineApplied, LifecycleTicked
from immigrationos.core.clock import utcnow
from immigrationos.core.ids import new_id
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.facts import CITIZENSHIP_SOURCES, gather
from immigrationos.lifecycle.models import (
    ActionRequest,
    Approval,
    CaseDeadline,
    CaseEvent,
    EnforcementCase,
)
from immigrationos.lifecycle.service import evaluate
from immigrationos.lifecycle.table import load_table
from immigrationos.lifecycle.writes import CaseConflict, bump_version
from immigrationos.persons.models import RecordLink
from immigrationos.sources.models import SourceRecord


@dataclass
class TickReport:
    """What one scheduler pass did."""

    at: datetime
    deadlines_applied: list[str] = field(default_factory=list)
    already_applied: int = 0
    conflicts: int = 0
    requests_expired: int = 0
    steps: list[tuple[str, str, str]] = field(default_factory=list)
    """(case id, transition, new state) of the computed steps that followed."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "deadlines_applied": len(self.deadlines_applied),
            "already_applied": self.already_applied,
            "conflicts": self.conflicts,
            "requests_expired": self.requests_expired,
            "steps": [{"case": c, "transition": t, "state": s} for c, t, s in self.steps],
        }


def _ctx() -> Any:
    return system_context(Purpose.CASE_PROCESSING, "lifecycle scheduler: apply due deadlines")


def due_deadlines(gw: Gateway, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(deadline id, case id) of open deadlines due by ``now``, oldest first."""
    rows = gw.rows(
        select(CaseDeadline.id, CaseDeadline.case_id)
        .where(CaseDeadline.status == "open", CaseDeadline.due_at <= now)
        .order_by(CaseDeadline.due_at)
        .limit(limit),
        CaseDeadline,
        params={"due_by": now.isoformat()},
    )
    return [(r[0], r[1]) for r in rows]


def apply_deadline(
    gw: Gateway, deadline_id: str, case_id: str, now: datetime
) -> list[CaseEvent] | None:
    """Claim and apply one deadline; None when another pass already applied it."""
    claimed = gw.execute(
        update(CaseDeadline)
        .where(CaseDeadline.id == deadline_id, CaseDeadline.status == "open")
        .values(status="applied", applied_at=now),
        CaseDeadline,
        params={"deadline": deadline_id},
    )
    if claimed != 1:
        return None
    facts = gather(gw, case_id)
    kind = next(d.kind for d in facts.deadlines if d.id == deadline_id)
    seq = bump_version(gw, facts, f"deadline {kind}", {})
    event = CaseEvent(
        id=new_id("evt"),
        case_id=case_id,
        seq=seq,
        at=now,
        kind="deadline",
        action=kind,
        from_state=facts.state,
        to_state=facts.state,
        actor_id=gw.ctx.actor.user_id,
        params={"deadline_id": deadline_id},
        evidence=[{"deadline": deadline_id, "label": load_table().deadlines[kind].label}],
    )
    gw.add(event)
    gw.execute(
        update(CaseDeadline)
        .where(CaseDeadline.id == deadline_id)
        .values(applied_event_id=event.id),
        CaseDeadline,
        params={"deadline": deadline_id},
    )
    gw._audit(
        DeadlineApplied(
            object_type="cases", object_ids=[case_id], deadline_id=deadline_id, kind=kind
        )
    )
    return [event, *evaluate(gw, case_id, now)]


def tick(
    sessions: sessionmaker[Session],
    now: datetime | None = None,
    *,
    limit: int = 10_000,
    on_progress: Callable[[int, int], None] | None = None,
) -> TickReport:
    """One scheduler pass: deadlines, expiries, citizenship sweep. Safe to run concurrently."""
    now = now or utcnow()
    report = TickReport(now)
    with unit_of_work(sessions, _ctx()) as gw:
        due = due_deadlines(gw, now, limit)
    for i, (deadline_id, case_id) in enumerate(due):
        _one(sessions, report, deadline_id, case_id, now)
        if on_progress:
            on_progress(i + 1, len(due))
    with unit_of_work(sessions, _ctx()) as gw:
        report.requests_expired = _expire(gw, now)
        sweep = _citizenship_sweep(gw)
    for case_id in sweep:
        with unit_of_work(sessions, _ctx()) as gw:
            report.steps += [
                (case_id, str(e.action), str(e.to_state)) for e in evaluate(gw, case_id, now)
            ]
    with unit_of_work(sessions, _ctx()) as gw:
        gw._audit(
            LifecycleTicked(
                deadlines_applied=len(report.deadlines_applied),
                requests_expired=report.requests_expired,
                steps_applied=len(report.steps),
            )
        )
    return report


def _one(
    sessions: sessionmaker[Session],
    report: TickReport,
    deadline_id: str,
    case_id: str,
    now: datetime,
) -> None:
    try:
        with unit_of_work(sessions, _ctx()) as gw:
            events = apply_deadline(gw, deadline_id, case_id, now)
    except CaseConflict:
        report.conflicts += 1
        return
    if events is None:
        report.already_applied += 1
        return
    report.deadlines_applied.append(deadline_id)
    report.steps += [(case_id, str(e.action), str(e.to_state)) for e in events[1:]]


def _expire(gw: Gateway, now: datetime) -> int:
    """Pending requests past their time, and approved ones whose approval ran out."""
    count = gw.execute(
        update(ActionRequest)
        .where(ActionRequest.status == "pending", ActionRequest.expires_at <= now)
        .values(status="expired", outcome="not decided in time"),
        ActionRequest,
        params={"expire": "pending requests"},
    )
    stale = select(Approval.request_id).where(
        Approval.decision == "approved", Approval.expires_at <= now
    )
    count += gw.execute(
        update(ActionRequest)
        .where(ActionRequest.status == "approved", ActionRequest.id.in_(stale))
        .values(status="expired", outcome="approval expired before execution"),
        ActionRequest,
        params={"expire": "approvals"},
    )
    return count


def _citizenship_sweep(gw: Gateway) -> list[str]:
    """Open cases, not in review, whose person has citizenship evidence linked."""
    table = load_table()
    evidence = (
        select(RecordLink.person_id)
        .join(SourceRecord, SourceRecord.id == RecordLink.source_record_id)
        .where(RecordLink.unlinked_at.is_(None), SourceRecord.source_id.in_(CITIZENSHIP_SOURCES))
    )
    rows = gw.rows(
        select(EnforcementCase.id).where(
            EnforcementCase.state.in_([s for s in table.open_states if s != "CITIZENSHIP_REVIEW"]),
            EnforcementCase.person_id.in_(evidence),
        ),
        EnforcementCase,
        params={"sweep": "citizenship evidence"},
    )
    return [r[0] for r in rows]


def overdue(
    gw: Gateway, now: datetime | None = None, office: str | None = None
) -> list[dict[str, Any]]:
    """Deadlines past due that need a person (a hearing without a result, a removal period
    run out), by office: the scheduler applies deadlines, people act on these."""
    now = now or utcnow()
    table = load_table()
    watched = [k for k, d in table.deadlines.items() if d.overdue_after_hours is not None]
    stmt = (
        select(CaseDeadline, EnforcementCase.office, EnforcementCase.state)
        .join(EnforcementCase, EnforcementCase.id == CaseDeadline.case_id)
        .where(CaseDeadline.kind.in_(watched), EnforcementCase.closed_at.is_(None))
        .order_by(CaseDeadline.due_at)
    )
    if office:
        stmt = stmt.where(EnforcementCase.office == office)
    out = []
    for deadline, case_office, state in gw.rows(
        stmt, CaseDeadline, params={"overdue": office or "all"}
    ):
        spec = table.deadlines[deadline.kind]
        late = (now - deadline.due_at).total_seconds() / 3600 - (spec.overdue_after_hours or 0)
        if late > 0 and _still_relevant(deadline.kind, state):
            out.append(
                {
                    "office": case_office,
                    "case_id": deadline.case_id,
                    "state": state,
                    "deadline": deadline.kind,
                    "label": spec.label,
                    "due_at": deadline.due_at.isoformat(),
                    "overdue_hours": round(late, 1),
                }
            )
    return out


def _still_relevant(kind: str, state: str) -> bool:
    if kind == "removal_period":
        return state in ("FINAL_ORDER", "REMOVAL_SCHEDULED")
    if kind == "hearing":
        return state in ("NTA_ISSUED", "IN_PROCEEDINGS", "RELIEF_PENDING", "REOPENED")
    return True
