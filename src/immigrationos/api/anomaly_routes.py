"""API routes of access-anomaly alerts (auditors, under ``oversight-audit``).

An alert names a staff account, a rule, a local day, the measured value against its baseline
and threshold, and the audit entries behind it; never a person. Raising (a scan) and reviewing
are audited. The pages (``web/alert_pages.py``) call the functions below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.audit.models import AuditEntry
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import anomalies

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
#: Alerts go to auditors, working under the oversight purpose.
AlertAuditor = Annotated[
    AccessContext, Depends(access(Role.AUDITOR, purposes=(Purpose.OVERSIGHT_AUDIT,)))
]
#: How many of an alert's evidence entries the detail shows.
EVIDENCE_SHOWN = 50


class AlertOut(BaseModel):
    """One access alert: who, which rule, which local day, the figures, the review."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    rule: str
    user_id: str
    username: str
    role: str
    office: str | None
    day: str
    timezone: str
    window_start: datetime
    window_end: datetime
    measured: float
    baseline: float | None
    threshold: float
    summary: str
    evidence: dict[str, Any]
    rules_sha256: str
    status: str
    raised_at: datetime
    raised_by: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None


class AlertPage(BaseModel):
    """One page of alerts and how many match in all."""

    total: int
    offset: int
    limit: int
    alerts: list[AlertOut]


class EvidenceEntry(BaseModel):
    """An audit entry behind an alert, as an auditor checks it (counts, not the ids read)."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    action: str
    outcome: str
    purpose: str | None
    object_type: str | None
    objects: int
    justification: str | None


class AlertDetail(AlertOut):
    """An alert with its first evidence entries (the rest are in the audit log by seq)."""

    entries: list[EvidenceEntry]


class ReviewForm(BaseModel):
    """An auditor's decision on an alert."""

    decision: Literal["confirmed", "dismissed"]
    note: str = Field(min_length=5, max_length=2000, description="Why; kept with the decision.")


class ScanForm(BaseModel):
    """The window to scan (UTC); empty: the rules file's default, the last days up to now."""

    since: datetime | None = None
    until: datetime | None = None


class ScanOut(BaseModel):
    """What a scan did."""

    since: datetime
    until: datetime
    raised: list[str]
    existing: list[str]
    user_days: int
    rules_sha256: str


def alert_page(
    session: Session,
    status: str | None = None,
    rule: str | None = None,
    user: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> AlertPage:
    """Alerts matching the filters, newest day first."""
    total, alerts = anomalies.list_alerts(
        session, status=status, rule=rule, user=user, limit=limit, offset=offset
    )
    return AlertPage(
        total=total,
        offset=offset,
        limit=limit,
        alerts=[AlertOut.model_validate(a) for a in alerts],
    )


def alert_detail(session: Session, alert_id: str) -> AlertDetail:
    """An alert and the first of the audit entries it rests on."""
    alert = anomalies.get_alert(session, alert_id)
    seqs = list(alert.evidence.get("audit_seqs", []))[:EVIDENCE_SHOWN]
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.seq.in_(seqs)).order_by(AuditEntry.seq)
    )
    entries = [
        EvidenceEntry(
            seq=e.seq, at=e.at, action=e.action, outcome=e.outcome, purpose=e.purpose,
            object_type=e.object_type, objects=len(e.object_ids or []),
            justification=e.justification,
        )
        for e in rows
    ]  # fmt: skip
    return AlertDetail(**AlertOut.model_validate(alert).model_dump(), entries=entries)


def run_scan(session: Session, ctx: AccessContext, form: ScanForm) -> ScanOut:
    """Scan a window as ``ctx`` (audited) and say what was raised."""
    report = anomalies.scan(session, ctx, form.since, form.until)
    return ScanOut(**report.as_dict())


def review_alert(session: Session, ctx: AccessContext, alert_id: str, form: ReviewForm) -> AlertOut:
    """Record an auditor's decision (audited)."""
    return AlertOut.model_validate(
        anomalies.review(session, ctx, alert_id, form.decision, form.note)
    )


@router.get("/anomalies/alerts", tags=["anomalies"])
def list_alerts(
    ctx: AlertAuditor,
    session: SessionDep,
    status: Annotated[str | None, Query(description="open, confirmed or dismissed")] = None,
    rule: Annotated[str | None, Query(description="one of the rules' names")] = None,
    user: Annotated[str | None, Query(description="username the alerts are about")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertPage:
    """Access alerts, newest day first, by status, rule and user."""
    return alert_page(session, status, rule, user, offset, limit)


@router.get("/anomalies/alerts/{alert_id}", tags=["anomalies"])
def get_alert(alert_id: str, ctx: AlertAuditor, session: SessionDep) -> AlertDetail:
    """One alert with its evidence: counts, baseline, and the audit entries behind it."""
    return alert_detail(session, alert_id)


@router.post("/anomalies/alerts/{alert_id}/review", tags=["anomalies"])
def review(alert_id: str, ctx: AlertAuditor, session: SessionDep, form: ReviewForm) -> AlertOut:
    """Confirm or dismiss an alert with a note (audited; not an alert about yourself)."""
    return review_alert(session, ctx, alert_id, form)


@router.post("/anomalies/scans", tags=["anomalies"], status_code=201)
def scan(ctx: AlertAuditor, session: SessionDep, form: ScanForm) -> ScanOut:
    """Run the detector over a window (send `{}` for the default); new alerts are stored,
    ones already on file are left alone. Audited."""
    return run_scan(session, ctx, form)
