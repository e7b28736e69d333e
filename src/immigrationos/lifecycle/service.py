"""Applying the lifecycle: open cases, take steps, request, approve and execute actions.

Every function takes a :class:`Gateway` (actor, purpose, transaction) and changes the case
in that one transaction: the state (with an optimistic version check), the conditions and
deadlines the table declares, documents, a case event and audit entries. Guards are checked
when an action is requested, approved and executed; computed steps (a final order, a
citizenship indication, a lapsed detainer) follow at once when their guards hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from immigrationos.accounts.roles import Role
from immigrationos.audit.events import (
    ActionDecided,
    ActionRequested,
    CaseOpened,
    CaseStepBlocked,
    DocumentRendered,
)
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.lifecycle import documents
from immigrationos.lifecycle.engine import Plan, computed_step, plan
from immigrationos.lifecycle.facts import CaseFacts, check_office, gather
from immigrationos.lifecycle.models import (
    ActionRequest,
    Approval,
    CaseEvent,
    EnforcementCase,
)
from immigrationos.lifecycle.table import TransitionSpec, load_table, validate_params
from immigrationos.lifecycle.writes import CaseConflict, apply_plan
from immigrationos.persons.models import Person


class StepBlocked(Refused):
    """A guard blocks the step; the message names every guard and why. Audited."""

    http_status = 409

    def __init__(self, plan_: Plan, stage: str, gw: Gateway) -> None:
        super().__init__(
            f"{plan_.transition.name} blocked at {stage}: {plan_.why_not()}",
            "case-step",
            "cases",
            [plan_.case_id],
            gw.ctx,
        )
        self.plan = plan_
        self.stage = stage

    def audit_event(self) -> CaseStepBlocked:  # type: ignore[override]
        return CaseStepBlocked(
            object_type="cases",
            object_ids=[self.plan.case_id],
            transition=self.plan.transition.name,
            stage=self.stage,
            blocked_by={c.guard: c.message for c in self.plan.blocked_by},
        )


@dataclass
class StepResult:
    """What a step did: its event, computed steps that followed, documents rendered."""

    case_id: str
    events: list[CaseEvent] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return str(self.events[-1].to_state) if self.events else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "state": self.state,
            "events": [
                {
                    "seq": e.seq,
                    "action": e.action,
                    "kind": e.kind,
                    "from_state": e.from_state,
                    "to_state": e.to_state,
                }
                for e in self.events
            ],
            "documents": self.documents,
        }


# -- opening ------------------------------------------------------------------------------


def open_case(
    gw: Gateway,
    person_id: str,
    *,
    office: str | None,
    reason: str,
    origin: str = "lead",
    at: datetime | None = None,
) -> EnforcementCase:
    """Open a case in the table's initial state for a person of the index."""
    person = gw.get(Person, person_id)
    if person.citizenship_status == "citizen":
        raise ValidationFailed(
            f"person {person_id} is a U.S. citizen (recorded decision): no civil immigration case"
        )
    if person.merged_into_id:
        raise ValidationFailed(f"person {person_id} was merged into {person.merged_into_id}")
    now = at or utcnow()
    table = load_table()
    case = EnforcementCase(
        id=new_id("case"),
        person_id=person.id,
        state=table.initial,
        office=office,
        opened_by=gw.ctx.actor.user_id,
        assigned_to=gw.ctx.actor.user_id if gw.ctx.actor.role is Role.OFFICER else None,
        opened_reason=reason,
        table_version=table.version,
        version=1,
        created_at=now,
    )
    gw.add(case)
    gw.add(
        CaseEvent(
            id=new_id("evt"),
            case_id=case.id,
            seq=1,
            at=now,
            kind="opened",
            to_state=table.initial,
            actor_id=gw.ctx.actor.user_id,
            params={"reason": reason, "origin": origin},
        )
    )
    gw._audit(
        CaseOpened(object_type="cases", object_ids=[case.id], person_id=person.id, origin=origin)
    )
    return case


# -- taking steps ---------------------------------------------------------------------------


def _plan(
    gw: Gateway,
    case_id: str,
    name: str,
    params: dict[str, Any],
    now: datetime,
    *,
    as_taker: bool = True,
) -> tuple[CaseFacts, Plan]:
    """Plan a step; ``as_taker`` checks the actor may take it (not so for an approver)."""
    t = load_table().transition(name)
    clean = validate_params(name, params)
    flights = (str(clean["flight_id"]),) if "flight_id" in clean else ()
    facts = gather(gw, case_id, flights)
    role = gw.ctx.actor.role if as_taker else None
    return facts, plan(facts, t, clean, now, role=role)


def preview(gw: Gateway, case_id: str, name: str, params: dict[str, Any]) -> Plan:
    """What the step would do now, without doing it."""
    return _plan(gw, case_id, name, params, utcnow())[1]


def perform(
    gw: Gateway, case_id: str, name: str, params: dict[str, Any], *, now: datetime | None = None
) -> StepResult:
    """Take a step that needs no approval (an officer's record, a court event, evidence)."""
    now = now or utcnow()
    t = load_table().transition(name)
    if t.needs_approval:
        raise ValidationFailed(f"{name} needs a second person's approval: request it instead")
    if t.kind == "computed":
        raise ValidationFailed(f"{name} is computed by the engine, never taken by hand")
    if t.kind == "system" and gw.ctx.actor.role is not Role.SYSTEM:
        raise ValidationFailed(f"{name} is recorded from evidence by the system, not by hand")
    facts, p = _plan(gw, case_id, name, params, now)
    if not p.allowed:
        raise StepBlocked(p, "execution", gw)
    result = StepResult(case_id)
    result.documents = _documents(gw, facts, t, p.params, now, draft=False)
    result.events.append(apply_plan(gw, facts, p, now))
    result.events += evaluate(gw, case_id, now, hint=_after(facts, p))
    return result


def _documents(
    gw: Gateway,
    facts: CaseFacts,
    t: TransitionSpec,
    params: dict[str, Any],
    now: datetime,
    *,
    draft: bool,
    approved_by: str | None = None,
    actor: str | None = None,
) -> list[str]:
    ids = []
    pdf = bool(gw.session.info.get("immos.documents_pdf", True))
    for kind in t.documents:
        doc = documents.store(
            gw,
            facts,
            kind,
            params,
            actor=actor or gw.ctx.actor.username,
            at=now,
            draft=draft,
            approved_by=approved_by,
            pdf=pdf,
        )
        gw._audit(
            DocumentRendered(
                object_type="documents",
                object_ids=[doc.id],
                kind=kind,
                status=doc.status,
                template_version=doc.template_version,
                sha256=doc.content_sha256,
            )
        )
        ids.append(doc.id)
    return ids


def evaluate(
    gw: Gateway, case_id: str, now: datetime | None = None, *, hint: CaseFacts | None = None
) -> list[CaseEvent]:
    """Apply computed steps while one holds (a final order follows an expired window).

    ``hint`` (the case as the caller just left it) skips re-reading the case file when no
    computed step can start from its state.
    """
    now = now or utcnow()
    events: list[CaseEvent] = []
    for _ in range(6):
        if hint is not None and not _could_compute(hint):
            break
        facts = gather(gw, case_id)
        step = computed_step(facts, now)
        if step is None:
            break
        events.append(apply_plan(gw, facts, step, now))
        hint = None
    return events


def _could_compute(facts: CaseFacts) -> bool:
    """Whether any computed step might apply: one starts from the state, and a citizenship
    indication only when the person has evidence or a citizen status on file."""
    table = load_table()
    for t in table.computed():
        if facts.state not in table.sources(t):
            continue
        if t.name != "citizenship_indicated" or facts.citizenship_evidence:
            return True
        if facts.citizenship_status == "citizen":
            return True
    return False


def _after(facts: CaseFacts, p: Plan) -> CaseFacts:
    """The facts with the plan's new state (enough to tell whether a computed step may follow)."""
    from dataclasses import replace

    return replace(facts, state=p.to_state, custody=p.custody_to)


# -- two-person actions -----------------------------------------------------------------------


def request_action(
    gw: Gateway,
    case_id: str,
    name: str,
    params: dict[str, Any],
    justification: str,
    *,
    operation_id: str | None = None,
    now: datetime | None = None,
) -> ActionRequest:
    """Ask for an action that a second person must approve; guards checked now."""
    now = now or utcnow()
    t = load_table().transition(name)
    if not t.needs_approval:
        raise ValidationFailed(f"{name} needs no approval: take the step directly")
    if len(justification.strip()) < 10:
        raise ValidationFailed("a request needs a justification of at least 10 characters")
    facts, p = _plan(gw, case_id, name, params, now)
    if not p.allowed:
        raise StepBlocked(p, "request", gw)
    open_requests = gw.count(
        ActionRequest,
        ActionRequest.case_id == case_id,
        ActionRequest.action == name,
        ActionRequest.status.in_(["pending", "approved"]),
        params={"case": case_id, "action": name, "open": True},
    )
    if open_requests:
        raise ValidationFailed(f"{name} is already requested on {case_id} and not yet closed")
    drafts = _documents(gw, facts, t, p.params, now, draft=True)
    request = ActionRequest(
        id=new_id("req"),
        case_id=case_id,
        operation_id=operation_id,
        action=name,
        params=p.params,
        justification=justification,
        status="pending",
        requested_by=gw.ctx.actor.user_id,
        requested_at=now,
        expires_at=now + timedelta(hours=load_table().approvals.request_valid_hours),
        document_ids=drafts,
        checks=[c.as_dict() for c in p.checks],
    )
    gw.add(request)
    gw._audit(
        ActionRequested(
            object_type="action_requests",
            object_ids=[request.id, case_id],
            transition=name,
            request_id=request.id,
        )
    )
    return request


def _request(gw: Gateway, request_id: str) -> ActionRequest:
    try:
        return gw.get(ActionRequest, request_id)
    except NotFound:
        raise NotFound(f"no action request {request_id!r}") from None


def _may_decide(gw: Gateway, request: ActionRequest, t: TransitionSpec) -> None:
    actor = gw.ctx.actor
    assert t.approval is not None
    if request.requested_by == actor.user_id:
        raise _refusal(gw, request, "nobody approves their own request (two-person rule)")
    if actor.role not in t.approval.approvers:
        allowed = ", ".join(r.value for r in t.approval.approvers)
        raise _refusal(gw, request, f"role {actor.role.value} may not approve {t.name} ({allowed})")
    if t.approval.joint:
        requester_role = _user(gw, request.requested_by)[0]
        if requester_role == actor.role.value:
            raise _refusal(
                gw,
                request,
                f"{t.name} needs one {' and one '.join(r.value for r in t.approval.joint)}: "
                f"the request came from a {requester_role}",
            )
    if request.case_id:  # refusing, too, is a decision on a case of one office
        check_office(gw, gw.get(EnforcementCase, request.case_id))


def _user(gw: Gateway, user_id: str) -> tuple[str, str]:
    """(role, username) of an account (accounts are not personal data)."""
    from immigrationos.accounts.models import User

    user = gw.session.get(User, user_id)
    return (user.role, user.username) if user else ("", user_id)


def _refusal(gw: Gateway, request: ActionRequest, message: str) -> Refused:
    return Refused(message, "approve", "action_requests", [request.id], gw.ctx)


def decide(
    gw: Gateway,
    request_id: str,
    approve: bool,
    justification: str,
    *,
    now: datetime | None = None,
) -> Approval:
    """A second person approves (guards re-checked) or refuses a pending request."""
    now = now or utcnow()
    request = _request(gw, request_id)
    t = load_table().transition(request.action)
    _may_decide(gw, request, t)
    if request.status != "pending":
        raise ValidationFailed(f"request {request.id} is {request.status}, not pending")
    if request.expires_at and request.expires_at <= now:
        raise ValidationFailed(
            f"request {request.id} expired at {request.expires_at:%Y-%m-%d %H:%M}"
        )
    if len(justification.strip()) < 5:
        raise ValidationFailed("a decision needs a justification")
    checks: list[Any] = []
    documents = list(request.document_ids)
    if approve and request.case_id:
        facts, p = _plan(gw, request.case_id, request.action, request.params, now, as_taker=False)
        if not p.allowed:
            raise StepBlocked(p, "approval", gw)
        checks = [c.as_dict() for c in p.checks]
        documents += _documents(
            gw,
            facts,
            t,
            request.params,
            now,
            draft=False,
            approved_by=gw.ctx.actor.username,
            actor=_user(gw, request.requested_by)[1],
        )
    assert t.approval is not None
    hours = t.approval.valid_hours or load_table().approvals.default_valid_hours
    approval = Approval(
        id=new_id("apv"),
        request_id=request.id,
        decision="approved" if approve else "refused",
        decided_by=gw.ctx.actor.user_id,
        decided_at=now,
        justification=justification,
        guard_checks=checks,
        expires_at=now + timedelta(hours=hours) if approve else None,
        role=gw.ctx.actor.role.value,
    )
    gw.add(approval)
    gw.update(
        request,
        status="approved" if approve else "refused",
        decided_at=now,
        document_ids=documents,
    )
    gw._audit(
        ActionDecided(
            object_type="action_requests",
            object_ids=[request.id],
            transition=t.name,
            request_id=request.id,
            decision=approval.decision,
        )
    )
    return approval


def execute(gw: Gateway, request_id: str, *, now: datetime | None = None) -> StepResult:
    """Carry out an approved action: approval still valid, guards re-checked, then applied."""
    now = now or utcnow()
    request = _request(gw, request_id)
    t = load_table().transition(request.action)
    if request.status != "approved":
        raise ValidationFailed(
            f"request {request.id} is {request.status}: only an approved one runs"
        )
    approval = _approval(gw, request.id)
    if approval.expires_at and approval.expires_at <= now:
        # the scheduler marks it expired; this refusal writes nothing
        raise ValidationFailed(
            f"the approval of {request.id} expired at {approval.expires_at:%Y-%m-%d %H:%M}"
        )
    if gw.ctx.actor.role not in (*t.by, Role.SYSTEM):
        raise _refusal(gw, request, f"role {gw.ctx.actor.role.value} may not carry out {t.name}")
    assert request.case_id is not None
    facts, p = _plan(gw, request.case_id, request.action, request.params, now)
    if not p.allowed:
        raise StepBlocked(p, "execution", gw)
    result = StepResult(request.case_id)
    result.events.append(apply_plan(gw, facts, p, now, request_id=request.id))
    gw.update(request, status="executed", executed_at=now, executed_by=gw.ctx.actor.user_id)
    result.events += evaluate(gw, request.case_id, now, hint=_after(facts, p))
    return result


def _approval(gw: Gateway, request_id: str) -> Approval:
    rows = gw.select(
        select(Approval)
        .where(Approval.request_id == request_id)
        .order_by(Approval.decided_at.desc()),
        Approval,
        params={"request": request_id},
    )
    if not rows:
        raise ValidationFailed(f"request {request_id} has no approval")
    return rows[0]


__all__ = [
    "CaseConflict",
    "StepBlocked",
    "StepResult",
    "decide",
    "evaluate",
    "execute",
    "open_case",
    "perform",
    "preview",
    "request_action",
]
