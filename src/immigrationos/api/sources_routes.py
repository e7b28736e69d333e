"""API routes of source integration: registry, ingest, records, quarantine, disclosure, lineage.

Who may call each route is declared once, as a dependency; personal data is read only through
the gateway, under the caller's purpose, which the source's agreement must permit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import ROLES, Role
from immigrationos.api.deps import access, db_session
from immigrationos.api.schemas import AgreementOut, BatchOut, RecordOut, SourceOut
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.sources import lineage, quarantine, retention
from immigrationos.sources.definition import parse_definition
from immigrationos.sources.disclosure import RequestForm, request_disclosure
from immigrationos.sources.ingest import definition_of, ingest_file
from immigrationos.sources.mapping import fact_statements
from immigrationos.sources.models import IngestBatch, Source, SourceRecord
from immigrationos.sources.registry import agreement_in_force, register

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
AnyUser = Annotated[AccessContext, Depends(access())]
PersonalReader = Annotated[
    AccessContext,
    Depends(access(*(r for r, spec in ROLES.items() if spec.reads_personal_data))),
]
Integrator = Annotated[
    AccessContext,
    Depends(access(Role.PRIVACY_OFFICER, purposes=(Purpose.DATA_INTEGRATION,))),
]
Investigator = Annotated[
    AccessContext,
    Depends(access(Role.OFFICER, Role.SUPERVISOR, purposes=(Purpose.CRIMINAL_INVESTIGATION,))),
]
MAX_UPLOAD = 2 * 1024**3


class IngestOut(BaseModel):
    """A finished ingest's reconciled report."""

    batch_id: str
    source_id: str
    read: int
    loaded: int
    unchanged: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    dropped_fields: dict[str, int]
    flagged: dict[str, int]
    derived: dict[str, int]


class QuarantineOut(BaseModel):
    """A quarantined row, explained; ``original`` is the row's bytes as the source sent them."""

    id: str
    source_id: str
    batch_id: str
    row_number: int | None
    field: str | None
    reason: str
    message: str
    status: str
    meaning: str
    original: str
    resolved_by_batch_id: str | None


class RerunOut(BaseModel):
    """What a quarantine re-run did."""

    batches: list[IngestOut]
    resolved: int
    still_failing: int


class DisclosureOut(BaseModel):
    """A recorded disclosure request; use its id as ``X-Immos-Request`` on reads."""

    id: str
    source_id: str
    investigation: str
    purpose: str
    subject: dict[str, Any]
    periods: list[int]
    status: str


class RecordView(RecordOut):
    """A source record as the caller's purpose may see it; hidden fields say why."""

    hidden_fields: dict[str, str] = Field(default_factory=dict)


def _source_out(session: Session, source: Source) -> SourceOut:
    out = SourceOut.model_validate(source)
    agreement = agreement_in_force(session, source.id)
    out.agreement = AgreementOut.model_validate(agreement) if agreement else None
    return out


def _ingest_out(report: Any) -> IngestOut:
    return IngestOut(
        batch_id=report.batch_id,
        source_id=report.source_id,
        read=report.read,
        loaded=report.loaded,
        unchanged=report.unchanged,
        quarantined=report.quarantined,
        quarantine_reasons=dict(report.quarantine_reasons),
        dropped_fields=dict(report.dropped_fields),
        flagged=dict(report.flagged),
        derived=dict(report.derived),
    )


@router.get("/sources", tags=["sources"])
def list_sources(ctx: AnyUser, session: SessionDep) -> list[SourceOut]:
    """Registered sources with the agreement in force (no personal data)."""
    sources = session.scalars(select(Source).order_by(Source.id)).all()
    return [_source_out(session, s) for s in sources]


@router.post("/sources", tags=["sources"], status_code=201)
def register_source(
    ctx: Integrator, session: SessionDep, definition: Annotated[dict[str, Any], Body()]
) -> SourceOut:
    """Register or revise a source from its definition (the YAML file's content as JSON).

    A changed agreement becomes a new version; an unchanged one is kept.
    """
    return _source_out(session, register(session, parse_definition(definition, "request"), ctx))


@router.get("/sources/{source_id}", tags=["sources"])
def get_source(source_id: str, ctx: AnyUser, session: SessionDep) -> SourceOut:
    """One source with its agreement in force."""
    definition_of(session, source_id)  # NotFound for an unknown source
    source = session.get(Source, source_id)
    assert source is not None
    return _source_out(session, source)


@router.get("/sources/{source_id}/plan", tags=["sources"])
def source_plan(source_id: str, ctx: AnyUser, session: SessionDep) -> dict[str, str]:
    """The SQL each of the source's flat fact mappings runs per batch (nothing is executed)."""
    definition, _ = definition_of(session, source_id)
    dialect = session.get_bind().dialect
    return {
        mapping.suffix: str(stmt.compile(dialect=dialect))
        for mapping, stmt in fact_statements(definition, dialect.name, ":batch_id")
    }


@router.post("/sources/{source_id}/batches", tags=["sources"], status_code=201)
async def upload_batch(
    source_id: str, request: Request, ctx: Integrator, session: SessionDep
) -> IngestOut:
    """Ingest a file sent as the request body (streamed to disk; any size up to 2 GiB)."""
    definition, _ = definition_of(session, source_id)
    with tempfile.TemporaryDirectory(prefix="immos-upload-") as tmp:
        path = Path(tmp) / f"upload.{definition.format}"
        size = 0
        with path.open("wb") as handle:
            async for block in request.stream():
                size += len(block)
                if size > MAX_UPLOAD:
                    from immigrationos.core.errors import ValidationFailed

                    raise ValidationFailed("upload larger than 2 GiB; ingest it from the CLI")
                handle.write(block)
        report = ingest_file(session, Gateway(session, ctx), source_id, path)
    return _ingest_out(report)


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


def _view(record: SourceRecord) -> RecordView:
    view = RecordView.model_validate(record)
    view.hidden_fields = dict(getattr(record, "hidden_fields", {}) or {})
    return view


@router.get("/records", tags=["records"])
def search_records(
    ctx: PersonalReader,
    session: SessionDep,
    source: str,
    key: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[RecordView]:
    """Source records of one source (optionally one key), if the purpose may read the source.

    Audited with the parameters and the result count; a refusal names the agreement.
    """
    gateway = Gateway(session, ctx)
    gateway.require_source(source, "search")
    where = [SourceRecord.source_id == source]
    if key:
        where.append(SourceRecord.record_key == key)
    rows = gateway.search(
        SourceRecord,
        *where,
        params={"source": source, "key": key, "limit": limit, "offset": offset},
        order_by=[SourceRecord.record_key, SourceRecord.version],
        limit=limit,
        offset=offset,
    )
    return [_view(r) for r in rows]


@router.get("/records/{record_id}", tags=["records"])
def read_record(record_id: str, ctx: PersonalReader, session: SessionDep) -> RecordView:
    """One source record version; audited as a read; refused if the purpose may not read it."""
    return _view(Gateway(session, ctx).get(SourceRecord, record_id))


def _quarantine_out(explanation: quarantine.Explanation) -> QuarantineOut:
    return QuarantineOut.model_validate(explanation.as_dict())


@router.get("/sources/{source_id}/quarantine", tags=["quarantine"])
def list_quarantine(
    source_id: str,
    ctx: Integrator,
    session: SessionDep,
    status: str | None = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[QuarantineOut]:
    """A source's quarantined rows with reason, message and original bytes."""
    gateway = Gateway(session, ctx)
    rows = quarantine.list_rows(gateway, source_id, status, limit)
    return [_quarantine_out(quarantine.explain(gateway, r.id)) for r in rows]


@router.get("/quarantine/{row_id}", tags=["quarantine"])
def explain_quarantined(row_id: str, ctx: Integrator, session: SessionDep) -> QuarantineOut:
    """One quarantined row explained: what its reason means and what usually fixes it."""
    return _quarantine_out(quarantine.explain(Gateway(session, ctx), row_id))


@router.post("/sources/{source_id}/quarantine/rerun", tags=["quarantine"])
def rerun_quarantine(source_id: str, ctx: Integrator, session: SessionDep) -> RerunOut:
    """Re-validate the source's open quarantined rows under its current definition."""
    result = quarantine.rerun(session, Gateway(session, ctx), source_id)
    return RerunOut(
        batches=[_ingest_out(r) for r in result.reports],
        resolved=result.resolved,
        still_failing=result.still_failing,
    )


@router.post("/disclosure-requests", tags=["disclosure"], status_code=201)
def create_disclosure_request(
    ctx: Investigator, session: SessionDep, form: RequestForm
) -> DisclosureOut:
    """Request disclosure of one taxpayer's records for a named criminal investigation.

    Refused, with the reason, unless the request names one taxpayer and their address, the
    tax periods, the statutory authority and a specific reason. Use the returned id as the
    ``X-Immos-Request`` header, with the investigation as ``X-Immos-Case``, on later reads.
    """
    request = request_disclosure(Gateway(session, ctx), form)
    return DisclosureOut.model_validate(request, from_attributes=True)


@router.get("/lineage/persons/{person_id}", tags=["lineage"])
def person_lineage(
    person_id: str, ctx: PersonalReader, session: SessionDep
) -> lineage.PersonLineage:
    """A person's golden values, linked records and facts, each with its source row."""
    return lineage.person_lineage(Gateway(session, ctx), person_id)


@router.get("/lineage/facts/{table}/{fact_id:path}", tags=["lineage"])
def fact_lineage(
    table: str, fact_id: str, ctx: PersonalReader, session: SessionDep
) -> lineage.FactLineage:
    """A fact's values, each with the field, record, batch and ingest time it came from."""
    return lineage.fact_lineage(Gateway(session, ctx), table, fact_id)


def _retention_gateway(session: Session, ctx: AccessContext) -> Gateway:
    """Retention sees every source (it must purge them all), so it runs as the system
    account; the audit justification names the privacy officer who asked."""
    return Gateway(
        session,
        system_context(
            Purpose.DATA_INTEGRATION,
            f"retention requested by {ctx.actor.username} ({ctx.actor.user_id})",
        ),
    )


@router.post("/retention/plan", tags=["retention"])
def retention_plan(
    ctx: Integrator, session: SessionDep, source: str | None = None
) -> dict[str, Any]:
    """What a retention run would purge now, per source and derived table (nothing changes)."""
    return retention.plan_retention(_retention_gateway(session, ctx), source_id=source).as_dict()


@router.post("/retention/run", tags=["retention"])
def retention_run(
    ctx: Integrator, session: SessionDep, source: str | None = None
) -> dict[str, Any]:
    """Purge records past retention: tombstones left, derived facts removed, all audited."""
    gateway = _retention_gateway(session, ctx)
    plan = retention.plan_retention(gateway, source_id=source)
    return {"plan": plan.as_dict(), "result": retention.apply_retention(gateway, plan).as_dict()}
