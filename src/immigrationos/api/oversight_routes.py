"""API routes of the oversight report: counts for auditors, no person and no staff name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import render
from immigrationos.oversight.report import OversightReport
from immigrationos.oversight.service import oversight_report

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
#: Who reads the oversight report: auditors, and the privacy officer (redress, agreements).
OversightReader = Annotated[
    AccessContext,
    Depends(
        access(
            Role.AUDITOR,
            Role.PRIVACY_OFFICER,
            purposes=(Purpose.OVERSIGHT_AUDIT, Purpose.STATISTICS),
        )
    ),
]


@router.get("/oversight/report", tags=["oversight"])
def get_oversight_report(ctx: OversightReader, session: SessionDep) -> OversightReport:
    """The oversight report as data: enforcement actions by tier, nationality, office and
    month; overrides; due-process blocks by guard; citizenship reviews; match review outcomes
    and the estimated false-match rate; departures verified and overstay revisions; data access
    by purpose and role; refused accesses; access-anomaly alerts. Audited."""
    return oversight_report(session, ctx, "json")


@router.get("/oversight/report.html", tags=["oversight"], response_class=HTMLResponse)
def get_oversight_report_html(ctx: OversightReader, session: SessionDep) -> HTMLResponse:
    """The same report as one self-contained HTML file (inline SVG charts). Audited."""
    report = oversight_report(session, ctx, "html")
    return HTMLResponse(
        render.render_html(report),
        headers={"Content-Disposition": 'attachment; filename="oversight-report.html"'},
    )
