"""Replay: a plan's steps through the lifecycle service, each at its historical moment.

Deadlines a case passes are applied when they fell due; a refused step ends the case's replay
where it stands and is counted by reason (the engine is right by definition).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of
from immigrationos.audit.chain import emit
from immigrationos.audit.events import FlightChanged
from immigrationos.core.errors import ImmosError
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway, Refused, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import service
from immigrationos.lifecycle.load.history import APPROVAL_TEXT, PDF_KEY
from immigrationos.lifecycle.load.plan import (
    _DECIDE_AFTER,
    _EXECUTE_AFTER,
    FLIGHT,
    TRAVEL_DOCUMENT,
    CasePlan,
    PlannedStep,
)
from immigrationos.lifecycle.logistics import create_flight
from immigrationos.lifecycle.models import (
    CaseDeadline,
    EnforcementCase,
    RemovalFlight,
    TravelDocument,
)
from immigrationos.lifecycle.scheduler import TickReport, apply_deadline
from immigrationos.lifecycle.table import load_table
from immigrationos.runtime import Runtime


@dataclass
class LoadReport:
    """What a load did: cases opened, steps applied, final states, refusals by reason."""

    cases_opened: int = 0
    cases_present: int = 0
    """Cases of the records that an earlier load already opened (left as they are)."""
    steps_applied: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    """One full refusal message per reason."""
    showcase: dict[str, str] = field(default_factory=dict)
    """State → case driven there by the showcase."""
    showcase_attempts_refused: Counter[str] = field(default_factory=Counter)
    unreachable: dict[str, str] = field(default_factory=dict)
    tick: TickReport | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases_opened": self.cases_opened,
            "cases_present": self.cases_present,
            "steps_applied": self.steps_applied,
            "by_state": dict(sorted(self.by_state.items())),
            "refused": dict(self.refused.most_common()),
            "showcase": self.showcase,
            "showcase_attempts_refused": dict(self.showcase_attempts_refused.most_common()),
            "unreachable": self.unreachable,
            "tick": self.tick.as_dict() | {"steps": len(self.tick.steps)} if self.tick else None,
            "seconds": round(self.seconds, 2),
        }


_IDS = re.compile(r"\b[a-z]{2,6}-[0-9a-f]{8,}\b")


def refusal_reason(action: str, exc: Exception) -> str:
    """A countable reason: the blocking guards, or the message without ids."""
    if isinstance(exc, service.StepBlocked):
        return f"{action}: " + "+".join(c.guard for c in exc.plan.blocked_by)
    return f"{action}: " + _IDS.sub("…", str(exc))[:90]


# -- replaying a plan ---------------------------------------------------------------------------


@dataclass
class _Desk:
    """The people working one case, all in the same transaction."""

    officer: Gateway
    supervisor: Gateway
    counsel: Gateway
    system: Gateway
    flight_id: str | None = None
    due: list[tuple[str, datetime]] | None = None
    """The case's open deadlines (id, due), when known."""


def _sets_deadlines(action: str) -> bool:
    t = load_table().transitions.get(action)
    return t is not None and bool(t.effects.deadlines or t.effects.cancels)


class _Rollback(Exception):
    """Undo a showcase attempt that did not reach its state (not a refusal: nothing to audit)."""


class Loader:
    """Opens and replays cases; one transaction per case."""

    def __init__(self, runtime: Runtime, now: datetime, report: LoadReport) -> None:
        self.runtime = runtime
        self.now = now
        self.report = report
        with runtime.sessions() as session:
            users = session.scalars(select(User)).all()
            self.actors = {u.username: actor_of(u) for u in users}

    def _ctx(self, username: str, why: str) -> AccessContext:
        return AccessContext(self.actors[username], Purpose.CASE_PROCESSING, why)

    @contextmanager
    def desk(self, office: str, why: str, *, pdf: bool) -> Iterator[_Desk]:
        """Gateways for the office's officer and supervisor, counsel and the system."""
        system = system_context(Purpose.CASE_PROCESSING, why)
        with unit_of_work(self.runtime.sessions, system) as gw:
            session = gw.session
            session.info[PDF_KEY] = pdf
            town = office.lower()
            yield _Desk(
                Gateway(session, self._ctx(f"officer.{town}", why)),
                Gateway(session, self._ctx(f"supervisor.{town}", why)),
                Gateway(session, self._ctx("counsel", why)),
                gw,
            )

    def replay(self, plan: CasePlan, *, pdf: bool) -> str:
        """Open the case and take each step until one is refused; the state it rests in."""
        with self.desk(plan.office, f"demo: replay {plan.key}", pdf=pdf) as d:
            case = service.open_case(
                d.officer, plan.person_id, office=plan.office, reason=plan.reason,
                origin=plan.origin, at=plan.opened_at,
            )  # fmt: skip
            self.report.cases_opened += 1
            for step in plan.steps:
                if step.at > self.now or not self._attempt(d, case.id, step):
                    break
            self.report.steps_applied += self.catch_up(d, case.id, self.now)
            return str(d.system.get(EnforcementCase, case.id).state)

    def _attempt(self, d: _Desk, case_id: str, step: PlannedStep) -> bool:
        """One step in a savepoint: a refusal undoes only this step, and is audited."""
        self.report.steps_applied += self.catch_up(d, case_id, step.at)
        savepoint = d.system.session.begin_nested()
        try:
            self.report.steps_applied += self.run(d, case_id, step)
        except ImmosError as exc:
            savepoint.rollback()
            self._refused(d.system.session, step.action, exc)
            return False
        savepoint.commit()
        return True

    def _refused(self, session: Session, action: str, exc: Exception) -> None:
        reason = refusal_reason(action, exc)
        self.report.refused[reason] += 1
        self.report.examples.setdefault(reason, str(exc))
        if isinstance(exc, Refused):
            emit(session, exc.audit_event(), exc.ctx)

    def catch_up(self, d: _Desk, case_id: str, until: datetime) -> int:
        """Apply the case's deadlines due by ``until``, each at the moment it fell due; how
        many case events that wrote. Open deadlines are read again only after a step that may
        have set or cancelled one."""
        if d.due is None:
            rows = d.system.rows(
                select(CaseDeadline.id, CaseDeadline.due_at)
                .where(CaseDeadline.case_id == case_id, CaseDeadline.status == "open")
                .order_by(CaseDeadline.due_at),
                CaseDeadline,
                params={"case": case_id, "open_deadlines": True},
            )
            d.due = [(r[0], r[1]) for r in rows]
        due = [(i, at) for i, at in d.due if at <= until]
        if not due:
            return 0
        d.due = None
        applied = sum(len(apply_deadline(d.system, i, case_id, at) or []) for i, at in due)
        # a computed step that followed may have set a deadline that is itself already due
        return applied + self.catch_up(d, case_id, until)

    def run(self, d: _Desk, case_id: str, step: PlannedStep) -> int:
        """Take one step as the people the table names; how many case events it wrote."""
        written = self._take(d, case_id, step)
        if written > 1 or step.how == "evaluate" or _sets_deadlines(step.action):
            d.due = None
        return written

    def _take(self, d: _Desk, case_id: str, step: PlannedStep) -> int:
        params = self._resolve(d, case_id, step.params)
        if step.how == "flight":
            d.flight_id = create_flight(d.officer, **params).id
            return 0
        if step.how == "flight_departed":
            self._departed(d, params["departed_at"])
            return 0
        if step.how == "evaluate":
            return len(service.evaluate(d.system, case_id, step.at))
        if step.how in ("perform", "system"):
            gw = d.system if step.how == "system" else d.officer
            return len(service.perform(gw, case_id, step.action, params, now=step.at).events)
        asker, approver = (d.officer, d.supervisor) if step.how == "approve" else (
            d.supervisor, d.counsel,
        )  # fmt: skip
        request = service.request_action(asker, case_id, step.action, params, step.why, now=step.at)
        service.decide(approver, request.id, True, APPROVAL_TEXT, now=step.at + _DECIDE_AFTER)
        return len(service.execute(asker, request.id, now=step.at + _EXECUTE_AFTER).events)

    def _resolve(self, d: _Desk, case_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Fill in what only exists once earlier steps ran (the travel document, the flight)."""
        out = dict(params)
        if out.get("travel_document_id") == TRAVEL_DOCUMENT:
            rows = d.officer.rows(
                select(TravelDocument.id)
                .where(TravelDocument.case_id == case_id, TravelDocument.status == "requested")
                .order_by(TravelDocument.requested_at.desc()),
                TravelDocument,
                params={"case": case_id},
            )
            out["travel_document_id"] = rows[0][0] if rows else "none requested"
        if out.get("flight_id") == FLIGHT:
            out["flight_id"] = d.flight_id or "no flight planned"
        return out

    def _departed(self, d: _Desk, at: datetime) -> None:
        """The flight the record names has left (its one passenger verified separately)."""
        flight = d.system.session.get(RemovalFlight, d.flight_id or "")
        if flight is None:
            return
        flight.status, flight.departed_at = "departed", at
        d.system.session.flush()
        d.system._audit(
            FlightChanged(
                object_type="removal_flights", object_ids=[flight.id], change="departed",
                passengers=1,
            )
        )  # fmt: skip


# -- the showcase: a case in every state --------------------------------------------------------
