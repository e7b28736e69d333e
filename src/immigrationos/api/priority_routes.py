"""API routes of prioritization: the catalogue, policies, runs, explanations, what-if, worklists
and overrides, all under the ``enforcement-prioritization`` purpose.

A priority is never an action: these routes only read and score. Analysts register and run
policies, supervisors adopt them (never their registrant), officers and supervisors read
worklists and may override a tier with a justification.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.priority import service, views, worklists
from immigrationos.priority.catalogue import FEATURES
from immigrationos.priority.models import PriorityPolicy, PriorityRun

router = APIRouter(prefix="/api/priority", tags=["prioritization"])
SessionDep = Annotated[Session, Depends(db_session)]
_P = (Purpose.ENFORCEMENT_PRIORITIZATION,)
Reader = Annotated[
    AccessContext, Depends(access(Role.ANALYST, Role.OFFICER, Role.SUPERVISOR, purposes=_P))
]
Analyst = Annotated[AccessContext, Depends(access(Role.ANALYST, purposes=_P))]
Supervisor = Annotated[AccessContext, Depends(access(Role.SUPERVISOR, purposes=_P))]
Officer = Annotated[AccessContext, Depends(access(Role.OFFICER, Role.SUPERVISOR, purposes=_P))]


class PolicyIn(BaseModel):
    text: str = Field(description="The policy's YAML, as in src/immigrationos/priority/policies/.")


class AdoptIn(BaseModel):
    note: str = Field(min_length=5, description="The adoption decision's record.")


class RunIn(BaseModel):
    policy: str | None = Field(None, description="NAME or NAME@VERSION (default: in force).")
    as_of: date | None = None


class OverrideIn(BaseModel):
    tier: str
    justification: str = Field(min_length=20)
    policy: str | None = Field(None, description="Policy NAME (default: the one in force).")


def _policy(row: PriorityPolicy) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "version": row.version, "title": row.title,
        "owner": row.owner, "status": row.status, "effective_from": row.effective_from,
        "effective_until": row.effective_until, "source_document": row.source_document,
        "approval_record": row.approval_record, "sha256": row.sha256,
        "registered_by": row.registered_by, "adopted_by": row.adopted_by,
        "adopted_at": row.adopted_at, "adoption_note": row.adoption_note,
    }  # fmt: skip


def _run(row: PriorityRun) -> dict[str, Any]:
    return {
        "id": row.id, "policy_id": row.policy_id, "index_version": row.index_version,
        "as_of": row.as_of, "persons": row.persons, "counts": row.counts,
        "unavailable": row.unavailable, "seconds": row.seconds, "finished_at": row.finished_at,
    }  # fmt: skip


@router.get("/catalogue")
def catalogue(ctx: Reader) -> list[dict[str, Any]]:
    """Every feature a policy may name, what feeds it, and what it means."""
    return [
        {"name": f.name, "kind": f.kind.value, "group": f.group, "unit": f.unit,
         "sources": list(f.sources), "collected": f.collected, "protective": f.protective,
         "description": f.description}
        for f in FEATURES.values()
    ]  # fmt: skip


@router.get("/policies")
def policies(ctx: Reader, session: SessionDep) -> list[dict[str, Any]]:
    """Registered policy versions, with their status and approval record."""
    rows = session.scalars(select(PriorityPolicy).order_by(PriorityPolicy.id)).all()
    return [_policy(r) for r in rows]


@router.get("/policies/{policy_id}")
def policy(ctx: Reader, session: SessionDep, policy_id: str) -> dict[str, Any]:
    """One policy version with its full text."""
    row, _ = service.policy_of(Gateway(session, ctx), policy_id)
    return _policy(row) | {"text": row.text}


@router.post("/policies", status_code=201)
def register(ctx: Analyst, session: SessionDep, body: PolicyIn) -> dict[str, Any]:
    """Register a policy version (validated; 422 lists every problem)."""
    return _policy(service.register(Gateway(session, ctx), body.text))


@router.post("/policies/{policy_id}/adopt")
def adopt(ctx: Supervisor, session: SessionDep, policy_id: str, body: AdoptIn) -> dict[str, Any]:
    """Put a policy version in force (a supervisor, never its registrant)."""
    return _policy(service.adopt(Gateway(session, ctx), policy_id, body.note))


@router.post("/runs", status_code=201)
def run(ctx: Analyst, session: SessionDep, body: RunIn) -> dict[str, Any]:
    """Score the whole person index under a policy; every score is stored with its evidence."""
    gw = Gateway(session, ctx)
    return _run(service.run(gw, service.resolve_policy(gw, body.policy), body.as_of))


@router.get("/runs")
def runs(ctx: Reader, session: SessionDep, policy: str | None = None) -> list[dict[str, Any]]:
    """Runs, newest first."""
    stmt = select(PriorityRun).order_by(PriorityRun.started_at.desc())
    if policy:
        stmt = stmt.where(PriorityRun.policy_id == policy)
    return [_run(r) for r in session.scalars(stmt.limit(200))]


@router.get("/persons/{person_id}")
def explain(
    ctx: Reader,
    session: SessionDep,
    person_id: str,
    policy: str | None = None,
    as_of: date | None = None,
) -> dict[str, Any]:
    """A person's tier and score, each rule with its evidence, what was unavailable, and
    whether action is possible now (the lifecycle guards) and if not, why."""
    return views.explain(Gateway(session, ctx), person_id, policy, as_of)


@router.get("/compare")
def compare(
    ctx: Reader,
    session: SessionDep,
    run_a: str,
    run_b: str,
    limit: Annotated[int, Query(ge=0, le=10_000)] = 50,
) -> dict[str, Any]:
    """What-if: two runs over the same index and date (tier matrix, counts by nationality,
    office and age band, persons who changed tier with both explanations)."""
    return views.compare(Gateway(session, ctx), run_a, run_b, limit)


@router.get("/worklist")
def worklist(
    ctx: Reader,
    session: SessionDep,
    office: str | None = None,
    officer: str | None = None,
    tier: str | None = None,
    actionable: bool | None = None,
    policy: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 25,
) -> dict[str, Any]:
    """Leads of the policy in force, actionable first; blocked leads carry the reason."""
    return worklists.worklist(
        Gateway(session, ctx), office=office, officer=officer, tier=tier,
        actionable=actionable, page=page, size=size, policy_ref=policy,
    )  # fmt: skip


@router.post("/persons/{person_id}/override", status_code=201)
def override(ctx: Officer, session: SessionDep, person_id: str, body: OverrideIn) -> dict[str, Any]:
    """Raise or lower a person's tier with a justification (audited, counted for oversight)."""
    row = service.override(Gateway(session, ctx), person_id, body.tier, body.justification,
                           body.policy)  # fmt: skip
    return {"id": row.id, "person_id": row.person_id, "from": row.from_tier, "to": row.to_tier,
            "direction": row.direction, "justification": row.justification}  # fmt: skip
