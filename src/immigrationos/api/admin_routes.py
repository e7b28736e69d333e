"""API routes of governance: accounts, the audit search, the oversight summary, agreements.

They serve the administrator's accounts page, the auditor's audit explorer and oversight
dashboard, and the privacy officer's source pages; each page calls the function its route
calls. Nothing here returns personal data except the quarantine (the privacy officer's
data-integration work, read through the gateway): accounts are staff, and the audit summary
is aggregates by purpose, role and action.

The oversight summary is computed from the audit log alone until the oversight report of the
oversight issue arrives; its sections that need that report are listed in ``pending``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from immigrationos.accounts import admin
from immigrationos.accounts.models import User
from immigrationos.accounts.roles import Role
from immigrationos.accounts.service import MIN_PASSWORD, create_user
from immigrationos.api.deps import access, db_session
from immigrationos.api.routes import Auditor
from immigrationos.api.schemas import AgreementOut, AuditEntryOut
from immigrationos.api.sources_routes import Integrator, QuarantineOut
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.sources import quarantine
from immigrationos.sources.models import DataSharingAgreement, Source

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
Administrator = Annotated[
    AccessContext,
    Depends(access(Role.ADMINISTRATOR, purposes=(Purpose.SYSTEM_ADMINISTRATION,))),
]
OversightReader = Annotated[
    AccessContext,
    Depends(access(Role.AUDITOR, purposes=(Purpose.OVERSIGHT_AUDIT, Purpose.STATISTICS))),
]
#: Audit actions that read personal data, for "data access by purpose and role".
READ_ACTIONS = {"record.read": "reads", "records.searched": "searches"}
#: A case step a guard stopped: a due-process block, counted apart from refused accesses.
BLOCK_ACTION = "case.step_blocked"
#: Sections of the oversight report (oversight issue) that the audit log cannot answer yet.
PENDING_SECTIONS = (
    "Enforcement actions by tier, nationality, office and month",
    "Citizenship reviews opened, resolved and how",
    "Match review outcomes and the estimated false-match rate",
    "Departures verified and overstay revisions",
    "Access anomalies: reads outside caseload or office, unusual volume or hours",
)


# --- accounts -----------------------------------------------------------------------------


class UserOut(BaseModel):
    """An account as the administrator sees it (no password hash, no personal data)."""

    id: str
    username: str
    display_name: str
    role: str
    office: str | None
    active: bool
    locked: bool
    locked_until: datetime | None


class UserForm(BaseModel):
    """A new account. The password is hashed with argon2id and never stored or returned."""

    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    role: Role
    password: str | None = Field(
        default=None, description=f"At least {MIN_PASSWORD} characters (none for `system`)."
    )
    office: str | None = Field(default=None, max_length=64)
    display_name: str | None = Field(default=None, max_length=200)


def user_out(user: User) -> UserOut:
    """The administrator's view of one account."""
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        office=user.office,
        active=user.active,
        locked=admin.is_locked(user),
        locked_until=user.locked_until,
    )


def add_user(session: Session, form: UserForm, ctx: AccessContext) -> UserOut:
    """Create the account with the CLI's service (audited as ``user.created``)."""
    user = create_user(
        session,
        form.username,
        form.role,
        form.password,
        display_name=form.display_name or None,
        office=form.office or None,
        ctx=ctx,
    )
    return user_out(user)


@router.get("/users", tags=["accounts"])
def list_users(ctx: Administrator, session: SessionDep) -> list[UserOut]:
    """Every account with its role, office and state."""
    return [user_out(u) for u in admin.list_users(session)]


@router.post("/users", tags=["accounts"], status_code=201)
def create_account(ctx: Administrator, session: SessionDep, form: UserForm) -> UserOut:
    """Create an account (the same service as `immos users create`; audited)."""
    return add_user(session, form, ctx)


@router.post("/users/{user_id}/deactivation", tags=["accounts"])
def deactivate_user(user_id: str, ctx: Administrator, session: SessionDep) -> UserOut:
    """Deactivate an account: it can no longer sign in and its sessions end (audited)."""
    return user_out(admin.change_user(session, user_id, "deactivate", ctx))


@router.post("/users/{user_id}/reactivation", tags=["accounts"])
def reactivate_user(user_id: str, ctx: Administrator, session: SessionDep) -> UserOut:
    """Reactivate a deactivated account (audited)."""
    return user_out(admin.change_user(session, user_id, "reactivate", ctx))


@router.post("/users/{user_id}/unlock", tags=["accounts"])
def unlock_user(user_id: str, ctx: Administrator, session: SessionDep) -> UserOut:
    """Lift a lockout after failed sign-ins (audited)."""
    return user_out(admin.change_user(session, user_id, "unlock", ctx))


# --- audit search -------------------------------------------------------------------------


class AuditFilters(BaseModel):
    """What to search the audit log for; empty fields match everything."""

    action: str | None = None
    actor: str | None = None
    outcome: str | None = None
    purpose: str | None = None
    role: str | None = None


class AuditSearchOut(BaseModel):
    """One page of matching audit entries, newest first, and how many match in all."""

    total: int
    offset: int
    limit: int
    entries: list[AuditEntryOut]


def _audit_where(filters: AuditFilters) -> list[ColumnElement[bool]]:
    columns = {
        "action": AuditEntry.action,
        "actor": AuditEntry.actor_name,
        "outcome": AuditEntry.outcome,
        "purpose": AuditEntry.purpose,
        "role": AuditEntry.actor_role,
    }
    return [columns[k] == v for k, v in filters.model_dump().items() if v]


def search_audit(
    session: Session, filters: AuditFilters, offset: int = 0, limit: int = 50
) -> AuditSearchOut:
    """Entries matching ``filters``, newest first, one page at a time."""
    where = _audit_where(filters)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    stmt = (
        select(AuditEntry).where(*where).order_by(AuditEntry.seq.desc()).offset(offset).limit(limit)
    )
    entries = [AuditEntryOut.model_validate(e) for e in session.scalars(stmt).all()]
    return AuditSearchOut(total=total, offset=offset, limit=limit, entries=entries)


@router.get("/audit/search", tags=["audit"])
def audit_search(
    ctx: Auditor,
    session: SessionDep,
    action: str | None = None,
    actor: str | None = None,
    outcome: Annotated[str | None, Query(description="`ok` or `refused`")] = None,
    purpose: str | None = None,
    role: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditSearchOut:
    """Audit entries by action, actor, outcome, purpose and role, paginated, with the total."""
    filters = AuditFilters(action=action, actor=actor, outcome=outcome, purpose=purpose, role=role)
    return search_audit(session, filters, offset, limit)


# --- oversight summary --------------------------------------------------------------------


class AccessRow(BaseModel):
    """Reads and searches of personal data under one purpose by one role."""

    purpose: str
    role: str
    reads: int = 0
    searches: int = 0


class ActionRow(BaseModel):
    """How often an audited action happened, and how often the rules refused it."""

    action: str
    ok: int = 0
    refused: int = 0


class Count(BaseModel):
    """One labelled count."""

    label: str
    count: int


class OversightSummary(BaseModel):
    """Aggregates of the audit log for oversight: no person, no username, only counts."""

    generated_at: datetime
    entries: int
    #: Refused accesses: refusals by the access rules and failed or throttled sign-ins.
    refused: int
    first_at: datetime | None
    last_at: datetime | None
    access_by_purpose_role: list[AccessRow]
    by_action: list[ActionRow]
    refused_by_role: list[Count]
    blocks_by_guard: list[Count]
    action_decisions: list[Count]
    priority_overrides: list[Count]
    pending: list[str]


def _access_rows(session: Session) -> list[AccessRow]:
    stmt = (
        select(AuditEntry.purpose, AuditEntry.actor_role, AuditEntry.action, func.count())
        .where(AuditEntry.action.in_(READ_ACTIONS), AuditEntry.outcome == "ok")
        .group_by(AuditEntry.purpose, AuditEntry.actor_role, AuditEntry.action)
    )
    rows: dict[tuple[str, str], AccessRow] = {}
    for purpose, role, action, n in session.execute(stmt):
        key = (purpose or "none", role or "anonymous")
        row = rows.setdefault(key, AccessRow(purpose=key[0], role=key[1]))
        setattr(row, READ_ACTIONS[action], n)
    return sorted(rows.values(), key=lambda r: -(r.reads + r.searches))


def _action_rows(session: Session) -> list[ActionRow]:
    stmt = select(AuditEntry.action, AuditEntry.outcome, func.count()).group_by(
        AuditEntry.action, AuditEntry.outcome
    )
    rows: dict[str, ActionRow] = {}
    for action, outcome, n in session.execute(stmt):
        row = rows.setdefault(action, ActionRow(action=action))
        if outcome == "refused":
            row.refused += n
        else:
            row.ok += n
    return sorted(rows.values(), key=lambda r: -(r.ok + r.refused))


def _counts(counter: Counter[str]) -> list[Count]:
    return [Count(label=k, count=n) for k, n in counter.most_common()]


def _details_of(session: Session, action: str) -> Iterable[dict[str, Any]]:
    """The details of every entry of ``action`` (event fields: ids and codes, no values)."""
    return session.scalars(select(AuditEntry.details).where(AuditEntry.action == action))


def oversight_summary(session: Session) -> OversightSummary:
    """What the audit log already tells oversight, as counts."""
    refused = session.execute(
        select(AuditEntry.actor_role, func.count())
        .where(AuditEntry.outcome == "refused", AuditEntry.action != BLOCK_ACTION)
        .group_by(AuditEntry.actor_role)
    ).all()
    span = session.execute(select(func.count(), func.min(AuditEntry.at), func.max(AuditEntry.at)))
    entries, first_at, last_at = span.one()
    guards = Counter(g for d in _details_of(session, BLOCK_ACTION) for g in d.get("blocked_by", {}))
    decisions = Counter(str(d.get("decision")) for d in _details_of(session, "case.action_decided"))
    overrides = Counter(
        str(d.get("direction")) for d in _details_of(session, "priority.overridden")
    )
    return OversightSummary(
        generated_at=utcnow(),
        entries=entries,
        refused=sum(n for _, n in refused),
        first_at=first_at,
        last_at=last_at,
        access_by_purpose_role=_access_rows(session),
        by_action=_action_rows(session),
        refused_by_role=_counts(Counter({role or "not signed in": n for role, n in refused})),
        blocks_by_guard=_counts(guards),
        action_decisions=_counts(decisions),
        priority_overrides=_counts(overrides),
        pending=list(PENDING_SECTIONS),
    )


@router.get("/oversight/summary", tags=["oversight"])
def get_oversight_summary(ctx: OversightReader, session: SessionDep) -> OversightSummary:
    """Aggregates of the audit log: data access by purpose and role, refusals, actions,
    due-process blocks by guard, decisions and overrides. Counts only, no personal data."""
    return oversight_summary(session)


# --- agreements and quarantine ------------------------------------------------------------


def agreement_versions(session: Session, source_id: str) -> list[AgreementOut]:
    """Every version of a source's agreement, newest (the one in force) first."""
    if session.get(Source, source_id) is None:
        raise NotFound(f"no source {source_id!r}")
    stmt = (
        select(DataSharingAgreement)
        .where(DataSharingAgreement.source_id == source_id)
        .order_by(DataSharingAgreement.version.desc())
    )
    return [AgreementOut.model_validate(a) for a in session.scalars(stmt).all()]


@router.get("/sources/{source_id}/agreements", tags=["sources"])
def list_agreements(source_id: str, ctx: Integrator, session: SessionDep) -> list[AgreementOut]:
    """Every version of a source's data-sharing agreement, the one in force first."""
    return agreement_versions(session, source_id)


@router.get("/quarantine", tags=["quarantine"])
def list_all_quarantine(
    ctx: Integrator,
    session: SessionDep,
    source: str | None = None,
    status: str | None = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[QuarantineOut]:
    """Quarantined rows of every source (or one), newest first, each explained."""
    gateway = Gateway(session, ctx)
    rows = quarantine.list_rows(gateway, source or None, status or None, limit, offset)
    return [QuarantineOut.model_validate(quarantine.explain(gateway, r.id).as_dict()) for r in rows]
