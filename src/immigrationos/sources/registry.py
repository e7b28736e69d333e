"""Register a source and its agreement; a changed agreement becomes a new version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.audit.chain import emit
from immigrationos.audit.events import SourceRegistered
from immigrationos.core.ids import content_id
from immigrationos.gateway.context import AccessContext
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.models import DataSharingAgreement, Source


def agreement_in_force(session: Session, source_id: str) -> DataSharingAgreement | None:
    """The newest agreement version of a source."""
    return session.scalar(
        select(DataSharingAgreement)
        .where(DataSharingAgreement.source_id == source_id)
        .order_by(DataSharingAgreement.version.desc())
        .limit(1)
    )


def register(session: Session, definition: SourceDefinition, ctx: AccessContext) -> Source:
    """Create or update a source; add an agreement version only when its terms changed."""
    source = session.get(Source, definition.id) or Source(id=definition.id)
    source.name, source.description = definition.name, definition.description
    source.format, source.record_key = definition.format, ",".join(definition.key_fields)
    source.definition = definition.model_dump(mode="json")
    session.add(source)
    terms = definition.agreement.model_dump(mode="json")
    current = agreement_in_force(session, definition.id)
    if current is None or _terms(current) != terms:
        version = (current.version + 1) if current else 1
        current = DataSharingAgreement(
            id=content_id("dsa", definition.id, version),
            source_id=definition.id,
            version=version,
            registered_by=ctx.actor.user_id,
            **definition.agreement.model_dump(mode="python"),
        )
        current.permitted_purposes = [str(p) for p in definition.agreement.permitted_purposes]
        current.purpose_fields = {str(k): v for k, v in terms["purpose_fields"].items()}
        session.add(current)
    session.flush()
    emit(
        session,
        SourceRegistered(
            object_type="sources", object_ids=[source.id], agreement_version=current.version
        ),
        ctx,
    )
    return source


def _terms(agreement: DataSharingAgreement) -> dict[str, object]:
    return {
        "legal_authority": agreement.legal_authority,
        "permitted_purposes": list(agreement.permitted_purposes),
        "allowed_fields": list(agreement.allowed_fields),
        "purpose_fields": dict(agreement.purpose_fields or {}),
        "retention_days": agreement.retention_days,
        "prerequisites": dict(agreement.prerequisites),
        "effective_from": agreement.effective_from.isoformat(),
        "effective_until": agreement.effective_until.isoformat()
        if agreement.effective_until
        else None,
    }
