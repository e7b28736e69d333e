"""The API's routes so far: health, the caller, sources and batches, records, the audit log.

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
    AgreementOut,
    AuditEntryOut,
    BatchOut,
    Checkpoint,
    Health,
    Me,
    RecordOut,
    SourceOut,
    VerifyOut,
)
from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit.chain import emit, verify
from immigrationos.audit.events import AuditVerified
from immigrationos.audit.models import AuditEntry
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.runtime import Runtime
from immigrationos.sources.models import IngestBatch, Source, SourceRecord
from immigrationos.sources.registry import agreement_in_force

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
AnyUser = Annotated[AccessContext, Depends(access())]
PersonalReader = Annotated[
    AccessContext, Depends(access(*(r for r, spec in ROLES.items() if spec.reads_personal_data)))
]
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


def _source_out(session: Session, source: Source) -> SourceOut:
    out = SourceOut.model_validate(source)
    agreement = agreement_in_force(session, source.id)
    out.agreement = AgreementOut.model_validate(agreement) if agreement else None
    return out


@router.get("/sources", tags=["sources"])
def list_sources(ctx: AnyUser, session: SessionDep) -> list[SourceOut]:
    """Registered sources with the agreement in force (no personal data)."""
    return [
        _source_out(session, s) for s in session.scalars(select(Source).order_by(Source.id)).all()
    ]


@router.get("/batches", tags=["sources"])
def list_batches(
    ctx: AnyUser,
    session: SessionDep,
    source: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[BatchOut]:
    """Recent ingest batches with their reconciled reports (no personal data)."""
    stmt = select(IngestBatch).order_by(IngestBatch.started_at.desc()).limit(limit)
    if source:
        stmt = stmt.where(IngestBatch.source_id == source)
    return [BatchOut.model_validate(b) for b in session.scalars(stmt).all()]


@router.get("/records", tags=["records"])
def search_records(
    ctx: PersonalReader,
    session: SessionDep,
    source: str,
    key: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[RecordOut]:
    """Source records of one source (optionally one key); audited with parameters and count."""
    where = [SourceRecord.source_id == source]
    if key:
        where.append(SourceRecord.record_key == key)
    rows = Gateway(session, ctx).search(
        SourceRecord,
        *where,
        params={"source": source, "key": key, "limit": limit, "offset": offset},
        order_by=[SourceRecord.record_key, SourceRecord.version],
        limit=limit,
        offset=offset,
    )
    return [RecordOut.model_validate(r) for r in rows]


@router.get("/records/{record_id}", tags=["records"])
def read_record(record_id: str, ctx: PersonalReader, session: SessionDep) -> RecordOut:
    """One source record version; audited as a read."""
    return RecordOut.model_validate(Gateway(session, ctx).get(SourceRecord, record_id))


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
