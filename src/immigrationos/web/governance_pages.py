"""Governance pages: sources and agreements, the audit explorer, oversight, accounts.

The privacy officer reviews sources, agreement versions, ingest batches and the quarantine;
the auditor searches the audit log, verifies the chain and downloads signed checkpoints, and
reads the oversight dashboard (aggregates only); the administrator manages accounts and reads
no personal data. Each page uses the dependency alias and the function of the API route that
serves the same data (``api.sources_routes``, ``api.routes``, ``api.admin_routes``).

The dashboard's bar charts are drawn here as server-side SVG (no script, no network), after
the pattern of :mod:`immigrationos.priority.report`; each has a table with the same numbers.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from immigrationos.accounts import admin
from immigrationos.accounts.roles import Role
from immigrationos.api import admin_routes, routes, sources_routes
from immigrationos.api.admin_routes import (
    Administrator,
    AuditFilters,
    SessionDep,
    UserForm,
)
from immigrationos.api.deps import get_runtime
from immigrationos.api.oversight_routes import OversightReader
from immigrationos.api.routes import Auditor
from immigrationos.api.sources_routes import Integrator
from immigrationos.audit.events import all_event_classes
from immigrationos.core.errors import ImmosError, NotFound, ValidationFailed
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import render
from immigrationos.oversight.service import oversight_report
from immigrationos.runtime import Runtime
from immigrationos.web.render import page

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PAGE_SIZE = 50
#: The account changes the page offers, by the API route's last path segment.
ACCOUNT_CHANGES = {"deactivation": "deactivate", "reactivation": "reactivate", "unlock": "unlock"}
DONE = {
    "created": "Account created.",
    "deactivate": "Account deactivated; its sessions have ended.",
    "reactivate": "Account reactivated.",
    "unlock": "Account unlocked.",
}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- sources ------------------------------------------------------------------------------


@router.get("/sources", response_class=HTMLResponse)
def sources_page(request: Request, ctx: Integrator, session: SessionDep) -> HTMLResponse:
    """Registered sources and the agreement in force for each."""
    sources = sources_routes.list_sources(ctx, session)
    return page(request, "sources.html.j2", ctx, title="Sources", sources=sources)


@router.get("/sources/quarantine", response_class=HTMLResponse)
def quarantine_page(
    request: Request,
    ctx: Integrator,
    session: SessionDep,
    source: str = "",
    status: str = "open",
    offset: int = 0,
    done: str = "",
    resolved: int = 0,
    failing: int = 0,
) -> HTMLResponse:
    """Quarantined rows with their reasons (every source, or one), and the re-run button."""
    rows = admin_routes.list_all_quarantine(
        ctx, session, source or None, status or None, PAGE_SIZE, max(offset, 0)
    )
    sources = [s.id for s in sources_routes.list_sources(ctx, session)]
    flash = (
        f"Re-run finished: {resolved} row(s) now load, {failing} still fail."
        if done == "rerun"
        else ""
    )
    return page(
        request,
        "quarantine.html.j2",
        ctx,
        title="Quarantine",
        rows=rows,
        sources=sources,
        source=source,
        row_status=status,
        offset=max(offset, 0),
        limit=PAGE_SIZE,
        flash=flash,
    )


@router.post("/sources/{source_id}/quarantine/rerun")
def rerun_page(source_id: str, ctx: Integrator, session: SessionDep) -> Response:
    """Re-validate a source's open quarantined rows (the API's re-run), then show the list."""
    result = sources_routes.rerun_quarantine(source_id, ctx, session)
    return _see_other(
        f"/sources/quarantine?source={source_id}&done=rerun"
        f"&resolved={result.resolved}&failing={result.still_failing}"
    )


@router.get("/sources/{source_id}", response_class=HTMLResponse)
def source_page(
    request: Request, source_id: str, ctx: Integrator, session: SessionDep
) -> HTMLResponse:
    """One source: its agreement versions and its ingest batches with their counts."""
    source = sources_routes.get_source(source_id, ctx, session)
    return page(
        request,
        "source.html.j2",
        ctx,
        title=f"Source {source.name}",
        source=source,
        agreements=admin_routes.agreement_versions(session, source_id),
        batches=sources_routes.list_batches(ctx, session, source=source_id, limit=50),
    )


# --- audit --------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    ctx: Auditor,
    session: SessionDep,
    action: str = "",
    actor: str = "",
    outcome: str = "",
    purpose: str = "",
    role: str = "",
    offset: int = 0,
    verified: str = "",
) -> HTMLResponse:
    """Search the audit log; the chain's last verification; verify and checkpoint buttons."""
    filters = AuditFilters(action=action, actor=actor, outcome=outcome, purpose=purpose, role=role)
    found = admin_routes.search_audit(session, filters, max(offset, 0), PAGE_SIZE)
    partial = request.headers.get("HX-Request") == "true"
    query = urlencode({k: v for k, v in filters.model_dump().items() if v})
    last = admin_routes.search_audit(session, AuditFilters(action="audit.verified"), 0, 1)
    return page(
        request,
        "gov_audit_results.html.j2" if partial else "audit.html.j2",
        ctx,
        title="Audit log",
        found=found,
        filters=filters,
        base="/audit?" + query,
        last_verification=last.entries[0] if last.entries else None,
        verified=verified,
        actions=[c.action for c in all_event_classes()],
        purposes=[p.value for p in Purpose],
        roles=[r.value for r in Role],
    )


@router.post("/audit/verify")
def verify_page(ctx: Auditor, session: SessionDep) -> Response:
    """Verify the chain (the API's verification, itself audited) and show the result."""
    result = routes.audit_verify(ctx, session)
    return _see_other(f"/audit?verified={'intact' if result.ok else 'broken'}#chain")


@router.post("/audit/checkpoint")
def checkpoint_download(ctx: Auditor, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Write a signed checkpoint (the API's) and send it as a JSON file to keep."""
    document = routes.audit_checkpoint(ctx, session, runtime)
    name = f"immos-checkpoint-{document.entries}.json"
    return JSONResponse(
        document.model_dump(),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- oversight ----------------------------------------------------------------------------


@router.get("/oversight", response_class=HTMLResponse)
def oversight_page(request: Request, ctx: OversightReader, session: SessionDep) -> HTMLResponse:
    """The oversight dashboard: the oversight report's sections, computed now (audited)."""
    report = oversight_report(session, ctx, "page")
    return page(
        request,
        "oversight.html.j2",
        ctx,
        title="Oversight",
        report=report,
        charts=render.charts(report),
        links=True,
        year=report.generated_at.year,
    )


# --- accounts -----------------------------------------------------------------------------


def _accounts_page(
    request: Request,
    ctx: Any,
    session: SessionDep,
    *,
    done: tuple[str, str] = ("", ""),
    error: str = "",
    form: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    users = admin_routes.list_users(ctx, session)
    flash = DONE.get(done[0], "")
    if flash and done[1] in {u.username for u in users}:  # only a real account's name
        flash = f"{flash[:-1]}: {done[1]}."
    return page(
        request,
        "accounts.html.j2",
        ctx,
        status=status,
        title="Accounts",
        users=users,
        roles=[r.value for r in Role if r is not Role.SYSTEM],
        flash=flash,
        error=error,
        form=form or {},
    )


@router.get("/admin/accounts", response_class=HTMLResponse)
def accounts_page(
    request: Request, ctx: Administrator, session: SessionDep, done: str = "", user: str = ""
) -> HTMLResponse:
    """Every account with its state; create, deactivate, reactivate, unlock."""
    return _accounts_page(request, ctx, session, done=(done, user))


@router.post("/admin/accounts", response_class=HTMLResponse)
def create_account_page(
    request: Request,
    ctx: Administrator,
    session: SessionDep,
    username: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
    office: Annotated[str, Form()] = "",
    display_name: Annotated[str, Form()] = "",
) -> Response:
    """Create an account with the CLI's service; a problem re-shows the form with it."""
    values = {"username": username, "role": role, "office": office, "display_name": display_name}
    try:
        form = UserForm.model_validate({**values, "password": password})
        created = admin_routes.add_user(session, form, ctx)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _accounts_page(request, ctx, session, error=problems, form=values, status=422)
    except ImmosError as exc:
        return _accounts_page(request, ctx, session, error=str(exc), form=values, status=422)
    return _see_other("/admin/accounts?" + urlencode({"done": "created", "user": created.username}))


@router.post("/admin/accounts/{user_id}/{change}")
def change_account_page(
    request: Request, user_id: str, change: str, ctx: Administrator, session: SessionDep
) -> Response:
    """Deactivate, reactivate or unlock an account (the API's service; audited)."""
    if change not in ACCOUNT_CHANGES:
        raise NotFound(f"no account change {change!r}")
    try:
        user = admin.change_user(session, user_id, ACCOUNT_CHANGES[change], ctx)
    except ValidationFailed as exc:
        return _accounts_page(request, ctx, session, error=str(exc), status=422)
    query = urlencode({"done": ACCOUNT_CHANGES[change], "user": user.username})
    return _see_other(f"/admin/accounts?{query}")
