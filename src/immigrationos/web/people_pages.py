"""Pages of persons: the search and the person page.

They use the API's own dependency (:data:`immigrationos.api.person_routes.PersonReader`) and
view functions (:mod:`immigrationos.persons.views`), so a page shows what the API returns and
is audited the same way. The search form works as a plain GET form; with HTMX it swaps only the
results and pushes the URL, so the back button and a shared link both work.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from immigrationos.api.person_routes import PersonReader, SearchDep, SessionDep
from immigrationos.gateway.core import Gateway
from immigrationos.persons import views
from immigrationos.web.render import page

router = APIRouter(include_in_schema=False)


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request, ctx: PersonReader, session: SessionDep, form: SearchDep
) -> HTMLResponse:
    """The search form and, when it was filled in, the results."""
    query = form.query
    found = None if query.empty else views.search(Gateway(session, ctx), query)
    template = "people_results.html.j2" if _fragment(request) else "search.html.j2"
    return page(request, template, ctx, title="Search persons", q=query, found=found)


def _fragment(request: Request) -> bool:
    """An HTMX request for the results region only (not a boosted or history navigation)."""
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and headers.get("HX-Target") == "results"
        and headers.get("HX-History-Restore-Request") != "true"
    )


@router.get("/persons/{person_id}", response_class=HTMLResponse)
def person_page(
    request: Request, person_id: str, ctx: PersonReader, session: SessionDep
) -> Response:
    """A person's golden record, linked records, cases, departures, redress and priority."""
    view = views.person_page(Gateway(session, ctx), person_id)
    if view["redirected"]:
        return RedirectResponse(f"/persons/{view['person_id']}?merged={person_id}", 303)
    merged = request.query_params.get("merged")
    return page(request, "person.html.j2", ctx, title=_title(view), p=view, merged_from=merged)


def _title(view: dict[str, object]) -> str:
    golden = view["golden"]
    assert isinstance(golden, dict)
    parts = [golden[k]["value"] for k in ("given_name", "family_name") if k in golden]
    return " ".join(str(p) for p in parts) or str(view["person_id"])
