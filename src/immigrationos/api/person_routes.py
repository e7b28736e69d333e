"""API routes of persons: the audited search and the person page's data.

Every role that reads personal data may search and read persons under any purpose it works
under; what each purpose may not see is left out and named (agreement and purpose). The
administrator and the auditor are refused (separation of duties). The web pages ``/search``
and ``/persons/{id}`` use the same dependency and the same view functions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.persons import views

router = APIRouter(prefix="/api", tags=["persons"])
SessionDep = Annotated[Session, Depends(db_session)]
#: The roles that read personal data; the administrator and auditor never do.
PersonReader = Annotated[
    AccessContext,
    Depends(
        access(Role.OFFICER, Role.SUPERVISOR, Role.COUNSEL, Role.ANALYST, Role.PRIVACY_OFFICER)
    ),
]


class SearchParams:
    """The search form's fields, shared by the API route and the page."""

    def __init__(
        self,
        name: Annotated[
            str, Query(max_length=200, description="A name, in any spelling or order.")
        ] = "",
        identifier: Annotated[
            str,
            Query(
                max_length=64,
                description="A-number, passport, admission no., FIN, ITIN, court case no., …",
            ),
        ] = "",
        status: Annotated[
            str,
            Query(
                max_length=40,
                description="A citizenship or immigration status, or the state of a case.",
            ),
        ] = "",
        office: Annotated[
            str, Query(max_length=64, description="The office of one of their cases.")
        ] = "",
        limit: Annotated[int, Query(ge=1, le=views.MAX_RESULTS)] = 25,
    ) -> None:
        self.query = views.SearchQuery(name, identifier, status, office, limit)


SearchDep = Annotated[SearchParams, Depends()]


@router.get("/persons/search")
def search_persons(ctx: PersonReader, session: SessionDep, form: SearchDep) -> dict[str, Any]:
    """Persons by name (tolerant of spelling and transliteration), identifier, status and
    office, best match first. Audited with the parameters and the number of results; fields
    and sources the purpose may not see are left out and named."""
    return views.search(Gateway(session, ctx), form.query)


@router.get("/persons/{person_id}")
def get_person(person_id: str, ctx: PersonReader, session: SessionDep) -> dict[str, Any]:
    """A person's golden record (each value with its source), linked records with the match
    explanation, identifiers, statuses, cases, departures, redress and priority. A retired
    (merged) id answers with the surviving person (``redirected``: true)."""
    return views.person_page(Gateway(session, ctx), person_id)
