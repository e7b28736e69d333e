"""API routes of the public transparency report.

``GET /api/reports/transparency`` serves the report of a period as JSON, CSV, HTML or PDF.
An analyst (purpose ``statistics``) computes it live through the gateway; that generation is
audited and kept as the period's published copy. An auditor reads no personal data
(separation of duties), so the auditor is served the copy last published for the period
(``404`` until an analyst has generated it). Either way only published values leave: a
withheld count never reaches the report object.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import ROLES, Role
from immigrationos.api.deps import access, db_session, get_runtime
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import transparency, transparency_render
from immigrationos.oversight.transparency import Period, TransparencyReport
from immigrationos.runtime import Runtime

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Reader = Annotated[
    AccessContext,
    Depends(
        access(Role.ANALYST, Role.AUDITOR, purposes=(Purpose.STATISTICS, Purpose.OVERSIGHT_AUDIT))
    ),
]
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}


def period_of(period: str | None, start: date | None, end: date | None) -> Period:
    """The period asked for: ``period``, or ``from`` and ``to`` together."""
    if period and (start or end):
        raise ValidationFailed("give either period or from and to, not both")
    if period:
        return Period.parse(period)
    if start and end:
        return Period.between(start, end)
    raise ValidationFailed("give a period (2026, 2026-Q3, 2026-07) or both from and to dates")


def report_for(
    ctx: AccessContext, session: Session, runtime: Runtime, period: Period, fmt: str
) -> TransparencyReport:
    """Live for a role that may compute it under ``statistics``; else the published copy."""
    if ROLES[ctx.actor.role].reads_personal_data and ctx.purpose is transparency.PURPOSE:
        report = transparency.generate(Gateway(session, ctx), period, [fmt])
        transparency.publish(report, runtime.settings.data_dir)
        return report
    return transparency.published(runtime.settings.data_dir, period)


@router.get(
    "/reports/transparency",
    tags=["oversight"],
    response_model=TransparencyReport,
    responses={
        200: {
            "content": {kind: {} for kind in MEDIA.values()},
            "description": "The report in the format asked for.",
        }
    },
)
def get_transparency_report(
    ctx: Reader,
    session: SessionDep,
    runtime: RuntimeDep,
    period: Annotated[
        str | None, Query(description="A year (2026), a quarter (2026-Q3) or a month (2026-07).")
    ] = None,
    start: Annotated[date | None, Query(alias="from", description="First day.")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day (included).")] = None,
    format: Annotated[Literal["json", "csv", "html", "pdf"], Query()] = "json",
) -> TransparencyReport | Response:
    """The public transparency report of a period: aggregate counts, with counts from 1 to 10
    withheld and further cells withheld so totals cannot reveal them. Analysts (purpose
    `statistics`) generate it (audited); auditors read the copy last published."""
    report = report_for(ctx, session, runtime, period_of(period, start, end), format)
    if format == "json":
        return report
    name = f"transparency-{report.period}.{format}"
    disposition = "inline" if format == "html" else "attachment"
    return Response(
        transparency_render.render(report, format),
        media_type=MEDIA[format],
        headers={"Content-Disposition": f'{disposition}; filename="{name}"'},
    )
