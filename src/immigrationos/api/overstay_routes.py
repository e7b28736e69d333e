"""API routes of overstays: the report, an assessment, and one admission's history, all under
the ``statistics`` purpose (which the arrivals, departures and benefits agreements permit).

An overstay figure is a revisable statistical inference as of its date; a flag is a lead,
never an action, and nothing here acts on anyone. Analysts read and assess.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.core.clock import utcnow
from immigrationos.departures import overstays
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway

router = APIRouter(prefix="/api/departures/overstays", tags=["overstays"])
SessionDep = Annotated[Session, Depends(db_session)]
Analyst = Annotated[AccessContext, Depends(access(Role.ANALYST, purposes=(overstays.PURPOSE,)))]


class AssessIn(BaseModel):
    as_of: date | None = Field(None, description="The date assessed (default today).")


@router.get("")
def report(
    ctx: Analyst,
    session: SessionDep,
    fiscal_year: Annotated[int | None, Query(ge=1900, le=2200)] = None,
    as_of: date | None = None,
) -> dict[str, Any]:
    """Figures by outcome, nationality and class of admission for stays ending in a fiscal
    year (October to September), as they stand or stood on ``as_of``, with the figures on
    each assessment date (how late departure records revised them) and the exclusions."""
    return overstays.report(Gateway(session, ctx), fiscal_year, as_of)


@router.post("/assess", status_code=201)
def assess(ctx: Analyst, session: SessionDep, body: AssessIn | None = None) -> dict[str, Any]:
    """Assess every admission as of a date; only changed outcomes are written, superseding
    the assessments they revise."""
    on = (body.as_of if body else None) or utcnow().date()
    return overstays.assess(Gateway(session, ctx), on).to_dict()


@router.get("/admissions/{admission_id:path}")  # ids hold slashes ("rec-…/admissions")
def admission(ctx: Analyst, session: SessionDep, admission_id: str) -> dict[str, Any]:
    """Every assessment of one admission, oldest first (the last one standing is current)."""
    rows = overstays.history(Gateway(session, ctx), admission_id)
    return {"admission_id": admission_id, "assessments": rows, "note": overstays.NOTE}
