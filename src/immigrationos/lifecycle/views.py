"""Read models of the lifecycle: a case page, case lists, requests waiting for a decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from immigrationos.accounts.roles import Role
from immigrationos.core.clock import utcnow
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle.engine import options
from immigrationos.lifecycle.facts import gather, office_scope
from immigrationos.lifecycle.models import (
    ActionRequest,
    CaseEvent,
    Document,
    EnforcementCase,
)
from immigrationos.lifecycle.table import load_table
from immigrationos.persons.models import Person


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def case_page(gw: Gateway, case_id: str, *, all_options: bool = False) -> dict[str, Any]:
    """Everything a case page shows, including "what can happen next" and why not."""
    now = utcnow()
    facts = gather(gw, case_id)
    case = gw.get(EnforcementCase, case_id)
    person = gw.get(Person, facts.person_id)
    table = load_table()
    plans = options(facts, now, gw.ctx.actor.role if gw.ctx.actor.role is not Role.SYSTEM else None)
    here = [p for p in plans if p.checks[0].ok]
    return {
        "case": {
            "id": case.id,
            "state": case.state,
            "state_label": table.states[case.state].label,
            "state_description": table.states[case.state].description,
            "custody": case.custody,
            "track": case.track,
            "office": case.office,
            "version": case.version,
            "opened_at": _iso(case.created_at),
            "closed_at": _iso(case.closed_at),
            "identity_hold": case.identity_hold,
            "opened_reason": case.opened_reason,
        },
        "person": {
            "id": person.id,
            "name": f"{person.given_name or ''} {person.family_name or ''}".strip(),
            "birth_date": _iso(person.birth_date),
            "nationality": person.nationality,
            "citizenship_status": person.citizenship_status,
            "citizenship_evidence": facts.citizenship_evidence,
        },
        "conditions": [
            {
                "id": c.id,
                "kind": c.kind,
                "status": c.status,
                "country": c.country,
                "form": c.form,
                "opened_at": _iso(c.opened_at),
                "ended_at": _iso(c.ended_at),
            }
            for c in facts.conditions
        ],
        "deadlines": [
            {
                "id": d.id,
                "kind": d.kind,
                "label": table.deadlines[d.kind].label,
                "due_at": _iso(d.due_at),
                "status": d.status,
                "rule": d.rule,
            }
            for d in sorted(facts.deadlines, key=lambda d: d.due_at)
        ],
        "next": [_option(p) for p in (plans if all_options else here)],
        "events": events(gw, case_id),
        "documents": documents(gw, case_id),
        "requests": [request_dict(r) for r in case_requests(gw, case_id)],
        "travel_documents": [
            {**t, "valid_until": _iso(t["valid_until"])} for t in facts.travel_documents
        ],
        "seat_flight_id": facts.seat_flight_id,
    }


def _option(p: Any) -> dict[str, Any]:
    d = p.as_dict()
    return {
        k: d[k]
        for k in (
            "transition",
            "label",
            "kind",
            "to_state",
            "allowed",
            "needs_approval",
            "approvers",
            "by",
            "documents",
            "blocked_by",
            "params",
        )
    }


def events(gw: Gateway, case_id: str) -> list[dict[str, Any]]:
    rows = gw.select(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.seq),
        CaseEvent,
        params={"case": case_id},
    )
    return [
        {
            "seq": e.seq,
            "at": _iso(e.at),
            "kind": e.kind,
            "action": e.action,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "actor_id": e.actor_id,
            "request_id": e.request_id,
            "params": e.params,
            "evidence": e.evidence,
            "custody": e.custody_to if e.custody_to != e.custody_from else None,
        }
        for e in rows
    ]


def documents(gw: Gateway, case_id: str) -> list[dict[str, Any]]:
    rows = gw.rows(
        select(
            Document.id,
            Document.kind,
            Document.version,
            Document.status,
            Document.template_version,
            Document.content_sha256,
            Document.created_at,
            Document.supersedes_id,
            Document.pdf.is_not(None),
        )
        .where(Document.case_id == case_id)
        .order_by(Document.kind, Document.version),
        Document,
        params={"case": case_id},
    )
    keys = (
        "id",
        "kind",
        "version",
        "status",
        "template_version",
        "sha256",
        "created_at",
        "supersedes_id",
        "has_pdf",
    )
    return [{k: _iso(v) for k, v in zip(keys, r, strict=True)} for r in rows]


def case_requests(gw: Gateway, case_id: str) -> list[ActionRequest]:
    return gw.select(
        select(ActionRequest)
        .where(ActionRequest.case_id == case_id)
        .order_by(ActionRequest.requested_at),
        ActionRequest,
        params={"case": case_id},
    )


def request_dict(r: ActionRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "case_id": r.case_id,
        "operation_id": r.operation_id,
        "action": r.action,
        "params": r.params,
        "justification": r.justification,
        "status": r.status,
        "requested_by": r.requested_by,
        "requested_at": _iso(r.requested_at),
        "expires_at": _iso(r.expires_at),
        "decided_at": _iso(r.decided_at),
        "executed_at": _iso(r.executed_at),
        "documents": r.document_ids,
        "outcome": r.outcome,
    }


def pending_requests(gw: Gateway, office: str | None = None) -> list[dict[str, Any]]:
    """Requests waiting for a decision (a supervisor's queue), oldest first.

    An office-bound actor sees their own office's queue whatever ``office`` asks for."""
    office = office_scope(gw) or office
    stmt = (
        select(ActionRequest)
        .join(EnforcementCase, EnforcementCase.id == ActionRequest.case_id)
        .where(ActionRequest.status == "pending")
        .order_by(ActionRequest.requested_at)
    )
    if office:
        stmt = stmt.where(EnforcementCase.office == office)
    return [
        request_dict(r) for r in gw.select(stmt, ActionRequest, params={"queue": office or "all"})
    ]


def list_cases(
    gw: Gateway,
    *,
    state: str | None = None,
    office: str | None = None,
    person_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Cases, newest first, filtered by state, office or person (an office-bound actor's
    own office only)."""
    office = office_scope(gw) or office
    where = []
    if state:
        where.append(EnforcementCase.state == state)
    if office:
        where.append(EnforcementCase.office == office)
    if person_id:
        where.append(EnforcementCase.person_id == person_id)
    rows = gw.search(
        EnforcementCase,
        *where,
        params={"state": state, "office": office, "person": person_id},
        order_by=[EnforcementCase.created_at.desc()],
        limit=limit,
        offset=offset,
    )
    return [
        {
            "id": c.id,
            "person_id": c.person_id,
            "state": c.state,
            "custody": c.custody,
            "office": c.office,
            "track": c.track,
            "opened_at": _iso(c.created_at),
            "closed_at": _iso(c.closed_at),
        }
        for c in rows
    ]


def state_counts(gw: Gateway) -> dict[str, int]:
    """How many cases are in each state (every state of the table, zeros included)."""
    from sqlalchemy import func

    rows = gw.rows(
        select(EnforcementCase.state, func.count()).group_by(EnforcementCase.state),
        EnforcementCase,
        params={"count": "by state"},
    )
    counts = dict.fromkeys(load_table().states, 0)
    counts.update({r[0]: int(r[1]) for r in rows})
    return counts
