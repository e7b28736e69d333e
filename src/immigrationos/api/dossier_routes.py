"""API route of the system dossier: configuration and aggregates for auditors and inspectors."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session, get_runtime
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import dossier
from immigrationos.runtime import Runtime

router = APIRouter(prefix="/api")
SessionDep = Annotated[Session, Depends(db_session)]
#: Who reads the dossier: auditors, and the privacy officer (agreements, retention, redress).
DossierReader = Annotated[
    AccessContext,
    Depends(access(Role.AUDITOR, Role.PRIVACY_OFFICER, purposes=(Purpose.OVERSIGHT_AUDIT,))),
]
MEDIA = {"json": "application/json", "html": "text/html; charset=utf-8", "pdf": "application/pdf"}


@router.get(
    "/reports/dossier",
    tags=["oversight"],
    response_class=Response,
    responses={
        200: {
            "description": "The dossier in the requested format.",
            "content": {"application/json": {}, "text/html": {}, "application/pdf": {}},
        }
    },
)
def get_dossier(
    ctx: DossierReader,
    session: SessionDep,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    format: Annotated[Literal["json", "html", "pdf"], Query(description="json, html or pdf")] = (
        "json"
    ),
) -> Response:
    """The system dossier, generated now from the running configuration: sources and
    agreements, models and their evaluation, policies in force, lifecycle guards, roles and
    purposes, the audit chain (verified now), and EU AI Act Articles 9 to 15 with live figures,
    how to check each, and the known gaps. No personal data; the generation is audited."""
    result = dossier.generate(session, runtime.settings, ctx, [format])
    headers = {"X-Immos-Dossier-Sha256": result.sha256}
    if format != "json":
        headers["Content-Disposition"] = f'attachment; filename="dossier.{format}"'
    return Response(result.outputs[format], media_type=MEDIA[format], headers=headers)
