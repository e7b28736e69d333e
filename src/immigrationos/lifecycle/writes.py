"""The write of one planned step: case row, event, conditions, deadlines, person, logistics.

Everything a step changes is written here, inside the caller's transaction, after the plan
has passed every guard: the case row under an optimistic version check (a concurrent change
raises :class:`CaseConflict` and nothing is applied), the case event with the checks, the
conditions the table's effects open and end, the deadlines they start and cancel, a
citizenship change as a recorded change, travel documents and seats, and the audit entry.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import update

from immigrationos.audit.events import (
    CaseStepApplied,
)
from immigrationos.core.errors import ImmosError, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle import calendar
from immigrationos.lifecycle.engine import Plan
from immigrationos.lifecycle.facts import CaseFacts
from immigrationos.lifecycle.models import (
    CaseCondition,
    CaseDeadline,
    CaseEvent,
    EnforcementCase,
    FlightSeat,
    TravelDocument,
)
from immigrationos.lifecycle.table import TransitionSpec, load_table
from immigrationos.persons.models import CitizenshipChange, Person


class CaseConflict(ImmosError):
    """The case changed between reading and writing; the step was not applied."""

    http_status = 409


def apply_plan(
    gw: Gateway, facts: CaseFacts, p: Plan, now: datetime, request_id: str | None = None
) -> CaseEvent:
    """Write one planned step: case row, event, conditions, deadlines, person, logistics."""
    t, eff = p.transition, p.transition.effects
    changes: dict[str, Any] = {"state": p.to_state, "custody": p.custody_to}
    if eff.remember_state:
        changes["remembered_state"] = eff.remember_as.get(facts.state, facts.state)
    if eff.track:
        changes["track"] = eff.track
    if eff.close_case:
        changes["closed_at"] = now
    elif p.to_state not in load_table().terminal:
        changes["closed_at"] = None  # a reopened case is open again
    seq = bump_version(gw, facts, t.name, changes)
    event = CaseEvent(
        id=new_id("evt"),
        case_id=facts.case_id,
        seq=seq,
        at=now,
        kind=t.kind if t.kind != "action" else "transition",
        action=t.name,
        from_state=p.from_state,
        to_state=p.to_state,
        actor_id=gw.ctx.actor.user_id,
        params=p.params,
        evidence=p.evidence() + _timeliness(facts, eff.mark_timeliness, p.params, now),
        request_id=request_id,
        custody_from=p.custody_from,
        custody_to=p.custody_to,
        checks=[c.as_dict() for c in p.checks],
    )
    gw.add(event)
    _conditions(gw, facts, p, event, now)
    _deadlines(gw, facts, t, p.params, event, now)
    if eff.citizenship:
        _citizenship(gw, facts, eff.citizenship, t.name, p.params, now)
    _logistics(gw, facts, p, now)
    gw._audit(
        CaseStepApplied(
            object_type="cases",
            object_ids=[facts.case_id],
            transition=t.name,
            kind=t.kind,
            from_state=p.from_state,
            to_state=p.to_state,
            custody=p.custody_to if p.custody_to != p.custody_from else None,
            request_id=request_id,
            checks_passed=[c.guard for c in p.checks if c.ok],
        )
    )
    return event


def bump_version(gw: Gateway, facts: CaseFacts, why: str, changes: dict[str, Any]) -> int:
    """Write the case row only if nobody changed it since it was read; the new version."""
    new_version = facts.version + 1
    count = gw.execute(
        update(EnforcementCase)
        .where(EnforcementCase.id == facts.case_id, EnforcementCase.version == facts.version)
        .values(version=new_version, **changes)
        .execution_options(synchronize_session="fetch"),
        EnforcementCase,
        params={"case": facts.case_id, "step": why},
    )
    if count != 1:
        raise CaseConflict(f"case {facts.case_id} changed meanwhile; reload and try again")
    facts.version = new_version
    return new_version


def _conditions(gw: Gateway, facts: CaseFacts, p: Plan, event: CaseEvent, now: datetime) -> None:
    eff = p.transition.effects
    if eff.ends:
        gw.execute(
            update(CaseCondition)
            .where(
                CaseCondition.case_id == facts.case_id,
                CaseCondition.kind.in_(eff.ends),
                CaseCondition.ended_at.is_(None),
            )
            .values(ended_at=now, ended_event_id=event.id),
            CaseCondition,
            params={"case": facts.case_id, "ends": list(eff.ends)},
        )
    rows = []
    for spec in eff.opens:
        # the step's parameters, and what the guards relied on (finality: its own evidence)
        extra: dict[str, Any] = {"evidence": p.evidence()}
        if spec.kind == "citizenship_decided":
            extra["evidence_records"] = facts.citizenship_evidence
        if spec.kind == "final_order":
            extra["evidence"] = [e for e in p.evidence() if e["guard"] == "final_order_holds"]
        rows.append(
            CaseCondition(
                id=new_id("cnd"),
                case_id=facts.case_id,
                opened_at=now,
                opened_event_id=event.id,
                params={**p.params, **extra},
                **spec.resolve(p.params),
            )
        )
    if rows:
        gw.add(*rows)


def _timeliness(
    facts: CaseFacts, kind: str | None, params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """Whether the step (a departure) came on time against the case's deadline ``kind``:
    the departure time (``departed_at``, else now) against the deadline's due time."""
    if not kind:
        return []
    deadlines = sorted(facts.deadline(kind, None), key=lambda d: d.due_at)
    if not deadlines:
        return [{"timeliness": "unknown", "reason": f"no {kind} deadline in the case"}]
    due = deadlines[-1].due_at
    at = params.get("departed_at")
    when = datetime.fromisoformat(at) if isinstance(at, str) else now
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    due_aware = due if due.tzinfo else due.replace(tzinfo=UTC)
    return [{"timeliness": "on-time" if when <= due_aware else "late",
             "deadline": deadlines[-1].id, "due_at": due_aware.isoformat(),
             "departed_at": when.isoformat()}]  # fmt: skip


def _deadlines(
    gw: Gateway,
    facts: CaseFacts,
    t: TransitionSpec,
    params: dict[str, Any],
    event: CaseEvent,
    now: datetime,
) -> None:
    table = load_table()
    if t.effects.cancels:
        gw.execute(
            update(CaseDeadline)
            .where(
                CaseDeadline.case_id == facts.case_id,
                CaseDeadline.kind.in_(t.effects.cancels),
                CaseDeadline.status == "open",
            )
            .values(status="cancelled", applied_at=now, applied_event_id=event.id),
            CaseDeadline,
            params={"case": facts.case_id, "cancels": list(t.effects.cancels)},
        )
    rows = []
    for kind in t.effects.deadlines:
        spec = table.deadlines[kind]
        due_at, rule = calendar.due(spec, _start(params.get(spec.start), now))
        rows.append(
            CaseDeadline(
                id=new_id("ddl"),
                case_id=facts.case_id,
                kind=kind,
                due_at=due_at,
                status="open",
                rule=rule,
                created_event_id=event.id,
            )
        )
    if rows:
        gw.add(*rows)


def _start(value: Any, now: datetime) -> date | datetime:
    """A deadline's start: the named parameter (a date or a moment), else now."""
    if value is None:
        return now
    text = str(value)
    return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)


def _citizenship(
    gw: Gateway, facts: CaseFacts, to: str, why: str, params: dict[str, Any], now: datetime
) -> None:
    """Change the person's citizenship status, always as a recorded change with evidence."""
    person = gw.get(Person, facts.person_id)
    if person.citizenship_status == to:
        return
    gw.add(
        CitizenshipChange(
            id=new_id("czc"),
            person_id=person.id,
            from_status=person.citizenship_status,
            to_status=to,
            evidence={"case": facts.case_id, "step": why, "records": facts.citizenship_evidence}
            | {k: v for k, v in params.items() if k in ("basis", "details", "evidence")},
            reason=f"{why} in case {facts.case_id}",
            changed_by=gw.ctx.actor.user_id,
            changed_at=now,
        )
    )
    gw.update(person, citizenship_status=to)
    facts.citizenship_status = to


def _logistics(gw: Gateway, facts: CaseFacts, p: Plan, now: datetime) -> None:
    eff = p.transition.effects
    if eff.travel_document == "requested":
        gw.add(
            TravelDocument(
                id=new_id("trd"),
                case_id=facts.case_id,
                country=p.params["country"],
                consulate=p.params["consulate"],
                requested_at=now,
                requested_by=gw.ctx.actor.user_id,
            )
        )
    if eff.travel_document == "decided":
        doc = gw.get(TravelDocument, str(p.params["travel_document_id"]))
        if doc.case_id != facts.case_id or doc.status != "requested":
            raise ValidationFailed(f"travel document {doc.id} is not an open request of this case")
        gw.update(
            doc,
            status=p.params["outcome"],
            decided_at=now,
            document_no=p.params.get("document_no"),
            valid_until=_start(p.params["valid_until"], now)
            if p.params.get("valid_until")
            else None,
        )
    if eff.leave_flight and facts.seat_flight_id:
        gw.execute(
            update(FlightSeat)
            .where(FlightSeat.case_id == facts.case_id, FlightSeat.status == "assigned")
            .values(status="removed", left_at=now, reason=p.transition.name),
            FlightSeat,
            params={"case": facts.case_id, "leave": p.transition.name},
        )
    if eff.seat == "assign":
        gw.add(
            FlightSeat(
                id=new_id("seat"),
                flight_id=str(p.params["flight_id"]),
                case_id=facts.case_id,
                assigned_at=now,
                checks=[c.as_dict() for c in p.checks],
            )
        )
