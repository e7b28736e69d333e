"""API routes of governance: accounts, the audit search, agreements and the quarantine.

They serve the administrator's accounts page, the auditor's audit explorer and the privacy
officer's source pages; each page calls the function its route calls. Nothing here returns
personal data except the quarantine (the privacy officer's data-integration work, read
through the gateway): accounts are staff, and audit entries hold ids and codes, no values.

The oversight report has its own routes (``api/oversight_routes.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

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
