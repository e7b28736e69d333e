"""Oversight operations that the CLI, the API and the pages share: each is audited here."""

from __future__ import annotations

from sqlalchemy.orm import Session

from immigrationos.audit.chain import emit
from immigrationos.audit.events import OversightReportGenerated
from immigrationos.gateway.context import AccessContext
from immigrationos.oversight.report import OversightReport, build_report


def oversight_report(session: Session, ctx: AccessContext, fmt: str = "json") -> OversightReport:
    """Build the oversight report for ``ctx`` (an auditor's request) and audit that it was."""
    report = build_report(session, ctx)
    emit(
        session,
        OversightReportGenerated(
            format=fmt,
            audit_entries=report.audit_entries,
            enforcement_actions=report.enforcement.total,
        ),
        ctx,
    )
    return report
