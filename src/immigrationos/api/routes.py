"""The API's system and audit routes: health, the caller, the audit log and checkpoints.

Each route declares who may call it once, as a dependency; personal data is read only through
the gateway under the caller's declared purpose.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos import __version__
from immigrationos.accounts.roles import ROLES, Role
from immigrationos.api.deps import access, db_session, get_runtime
from immigrationos.api.schemas import (
    AuditEntryOut,
    Checkpoint,
    Health,
    Me,
    VerifyOut,
)
from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit.chain import emit, verify
from immigrationos.audit.events import AuditVerified
from immigrationos.audit.models import AuditEntry
from immigrationos.gateway.context import AccessContext
from immigrationos.runtime import Runtime

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
AnyUser = Annotated[AccessContext, Depends(access())]
Auditor = Annotated[AccessContext, Depends(access(Role.AUDITOR))]


@router.get("/health", tags=["system"])
def health(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Health:
    """Liveness; needs no sign-in and reveals no data."""
    return Health(
        status="ok", version=__version__, backend=runtime.backend, mode=runtime.settings.mode
    )


@router.get("/me", tags=["system"])
def me(ctx: AnyUser) -> Me:
    """Who the caller is, the purpose in force, and what the role may do."""
    spec = ROLES[ctx.actor.role]
    return Me(
        username=ctx.actor.username,
        role=ctx.actor.role.value,
        office=ctx.actor.office,
        purpose=ctx.purpose.value,
        permitted_purposes=sorted(spec.purposes),
        reads_personal_data=spec.reads_personal_data,
    )


@router.get("/audit/entries", tags=["audit"])
def audit_entries(
    ctx: Auditor,
    session: SessionDep,
    action: str | None = None,
    actor: str | None = None,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryOut]:
    """Audit entries, newest first, filtered by action and actor."""
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if actor:
        stmt = stmt.where(AuditEntry.actor_name == actor)
    if before_seq:
        stmt = stmt.where(AuditEntry.seq < before_seq)
    return [AuditEntryOut.model_validate(e) for e in session.scalars(stmt).all()]


@router.post("/audit/verify", tags=["audit"])
def audit_verify(ctx: Auditor, session: SessionDep) -> VerifyOut:
    """Verify the whole chain; the verification is itself audited."""
    result = verify(session)
    emit(
        session,
        AuditVerified(
            ok=result.ok, checked=result.checked, first_broken_seq=result.first_broken_seq
        ),
        ctx,
    )
    return VerifyOut(
        ok=result.ok,
        checked=result.checked,
        head_hash=result.head_hash,
        first_broken_seq=result.first_broken_seq,
        problem=result.problem,
        message=result.describe(),
    )


@router.post("/audit/checkpoints", tags=["audit"])
def audit_checkpoint(
    ctx: Auditor, session: SessionDep, runtime: Annotated[Runtime, Depends(get_runtime)]
) -> Checkpoint:
    """Write and return an Ed25519-signed checkpoint of the chain's head."""
    document = ckpt.write_checkpoint(session, ckpt.signing_key(runtime.settings), ctx)
    return Checkpoint.model_validate(document)
