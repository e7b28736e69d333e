"""The dossier's rule sections: priority policies, the case lifecycle, roles and purposes.

These are the declared rules of who may do what to whom and on which grounds (lesson 2: rules
are data). The dossier reads them from the same tables the engine runs on, so what an
inspector reads is what is enforced, and sets beside each rule how often it acted (from the
audit log): guards that refused a step, approvals decided, overrides recorded.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import User
from immigrationos.accounts.roles import ROLES, Role, RoleSpec
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.purposes import PURPOSE_DESCRIPTIONS, Purpose
from immigrationos.lifecycle.guards import GUARDS
from immigrationos.lifecycle.table import ENFORCEMENT_STEPS, LifecycleTable, load_table
from immigrationos.oversight.dossier_audit import AuditCounts
from immigrationos.oversight.dossier_sources import permitted_purposes
from immigrationos.priority.catalogue import prohibited_reason
from immigrationos.priority.models import PriorityPolicy, PriorityRun
from immigrationos.priority.policy import parse_policy

# -- prioritization ---------------------------------------------------------------------------


def _features(
    row: PriorityPolicy, permitted: dict[str, frozenset[str]]
) -> tuple[list[str], str | None]:
    """The features a policy names, re-validated now, or why it no longer validates."""
    try:
        return parse_policy(row.text, permitted).features, None
    except ValidationFailed as exc:  # an agreement changed since registration
        return [], str(exc)


def _policy(
    row: PriorityPolicy, permitted: dict[str, frozenset[str]], users: dict[str, str]
) -> dict[str, Any]:
    today = utcnow().date()
    features, problem = _features(row, permitted)
    until = row.effective_until
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "title": row.title,
        "owner": row.owner,
        "status": row.status,
        # In force means adopted: that is what runs and worklists use (priority.service).
        "in_force": row.status == "adopted",
        "within_effective_dates": row.effective_from <= today and (until is None or today < until),
        "effective_from": row.effective_from.isoformat(),
        "effective_until": until.isoformat() if until is not None else None,
        "source_document": row.source_document,
        "approval_record": row.approval_record,
        "sha256": row.sha256,
        "registered_by": users.get(row.registered_by or "", row.registered_by),
        "registered_at": row.registered_at.isoformat(timespec="seconds"),
        "adopted_by": users.get(row.adopted_by or "", row.adopted_by),
        "adopted_at": row.adopted_at.isoformat(timespec="seconds") if row.adopted_at else None,
        "adoption_note": row.adoption_note,
        "features": features,
        "prohibited_features": [f for f in features if prohibited_reason(f)],
        "revalidation_problem": problem,
    }


def _shipped_permitted() -> dict[str, frozenset[str]]:
    from immigrationos.priority.policy import shipped_permissions

    return shipped_permissions()


def _latest_runs(session: Session) -> dict[str, dict[str, Any]]:
    """Each policy's newest run."""
    latest: dict[str, dict[str, Any]] = {}
    for run in session.scalars(select(PriorityRun).order_by(PriorityRun.started_at)):
        latest[run.policy_id] = {
            "id": run.id,
            "as_of": run.as_of.isoformat(),
            "persons": run.persons,
            "index_version": run.index_version,
            "counts": run.counts or {},
            "unavailable_features": sorted((run.unavailable or {}).keys()),
        }
    return latest


def priority_section(session: Session, audit: AuditCounts, users: dict[str, str]) -> dict[str, Any]:
    """Every registered policy version, its newest run, and the overrides recorded."""
    # Before any source is registered, policies are checked against the shipped agreements.
    permitted = permitted_purposes(session) or _shipped_permitted()
    order = (PriorityPolicy.name, PriorityPolicy.registered_at)
    rows = session.scalars(select(PriorityPolicy).order_by(*order))
    policies = [_policy(r, permitted, users) for r in rows]
    return {
        "policies": policies,
        "runs": session.scalar(select(func.count()).select_from(PriorityRun)) or 0,
        "latest_runs": _latest_runs(session),
        "overrides": audit.detail_counts("priority.overridden", "direction"),
    }


# -- lifecycle --------------------------------------------------------------------------------


def _transition(table: LifecycleTable, t: Any) -> dict[str, Any]:
    approval = None
    if t.approval is not None:
        approval = {
            "by": [r.value for r in t.approval.by],
            "joint": [r.value for r in t.approval.joint],
            "valid_hours": t.approval.valid_hours,
        }
    return {
        "name": t.name,
        "label": t.label,
        "kind": t.kind,
        "from": list(table.sources(t)) if t.from_ == "*open" else list(t.from_),
        "from_any_open": t.from_ == "*open",
        "to": t.to,
        "by": [r.value for r in t.by],
        "approval": approval,
        "enforcement": t.name in ENFORCEMENT_STEPS,
        "guards": list(table.expand(t.guards)),
        "documents": list(t.documents),
        "deadlines": list(t.effects.deadlines),
    }


def _guards(transitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every guard with what it ensures and the steps it stands in front of."""
    used: dict[str, list[str]] = defaultdict(list)
    for t in transitions:
        for g in t["guards"]:
            used[g].append(t["name"])
    return [
        {"name": n, "description": g.description, "used_by": used.get(n, [])}
        for n, g in sorted(GUARDS.items())
    ]


def _live(audit: AuditCounts) -> dict[str, Any]:
    """What the lifecycle did so far, from the audit log."""
    return {
        "steps_applied": audit.count(["case.step_applied"]),
        "steps_blocked_by_guard": audit.detail_counts(
            "case.step_blocked", "blocked_by", keys_of_dict=True
        ),
        "steps_blocked": audit.count(["case.step_blocked"]),
        "approvals": audit.detail_counts("case.action_decided", "decision"),
        "deadlines_applied": audit.count(["case.deadline_applied"]),
    }


def _states(table: LifecycleTable) -> list[dict[str, Any]]:
    return [
        {
            "name": n,
            "label": s.label,
            "group": s.group,
            "terminal": s.terminal,
            "description": s.description,
        }
        for n, s in table.states.items()
    ]


def lifecycle_section(audit: AuditCounts) -> dict[str, Any]:
    """The lifecycle table: states, transitions, guards, deadlines, two-person steps."""
    table = load_table()
    transitions = [_transition(table, t) for t in table.transitions.values()]
    return {
        "version": table.version,
        "states": _states(table),
        "transitions": transitions,
        "guards": _guards(transitions),
        "guard_sets": {k: list(v) for k, v in table.guard_sets.items()},
        "deadlines": [
            {"name": n, **d.model_dump(exclude_none=True)} for n, d in table.deadlines.items()
        ],
        "two_person_steps": [t["name"] for t in transitions if t["approval"]],
        "live": _live(audit),
    }


# -- roles and purposes -----------------------------------------------------------------------


def _accounts(session: Session) -> Counter[tuple[str, bool]]:
    """Accounts per (role, active)."""
    counts: Counter[tuple[str, bool]] = Counter()
    stmt = select(User.role, User.active, func.count()).group_by(User.role, User.active)
    for role, active, n in session.execute(stmt):
        counts[(role, bool(active))] += n
    return counts


def _must_never(spec: RoleSpec, approves: list[str]) -> list[str]:
    never = [f"work under purpose {p.value}" for p in Purpose if p not in spec.purposes]
    if not spec.reads_personal_data:
        never.insert(0, "read personal data (the gateway refuses, and audits the refusal)")
    if approves:
        never.insert(0, "approve their own request (two-person rule)")
    return never


def _role(
    role: Role, spec: RoleSpec, table: LifecycleTable, accounts: Counter[tuple[str, bool]]
) -> dict[str, Any]:
    steps = table.transitions.values()
    approves = [t.name for t in steps if t.approval and role in t.approval.approvers]
    return {
        "role": role.value,
        "description": spec.description,
        "purposes": sorted(p.value for p in spec.purposes),
        "reads_personal_data": spec.reads_personal_data,
        "takes_steps": [t.name for t in steps if role in t.by],
        "approves_steps": approves,
        "must_never": _must_never(spec, approves),
        "users_active": accounts[(role.value, True)],
        "users_inactive": accounts[(role.value, False)],
    }


def _purpose(p: Purpose, permitted: dict[str, frozenset[str]]) -> dict[str, Any]:
    return {
        "purpose": p.value,
        "description": PURPOSE_DESCRIPTIONS[p],
        "roles": sorted(r.value for r, s in ROLES.items() if p in s.purposes),
        "sources": sorted(sid for sid, ps in permitted.items() if p.value in ps),
    }


def roles_section(
    session: Session, table: LifecycleTable, permitted: dict[str, frozenset[str]]
) -> dict[str, Any]:
    """What each role is for and may do, and which roles and sources each purpose has."""
    accounts = _accounts(session)
    roles = [_role(role, spec, table, accounts) for role, spec in ROLES.items()]
    return {"roles": roles, "purposes": [_purpose(p, permitted) for p in Purpose]}
