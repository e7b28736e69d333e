"""The worklist, the cases, a case's page with its actions, and the approvals queue.

Each page calls the view or service function of the API route that serves the same data,
under the same dependency: the worklist and explanations under prioritization's ``Reader``,
everything about cases under the lifecycle's ``Caseworker``. A form runs its service call in
a transaction of its own (``db_session``, so a refusal is audited exactly as for the API) and
turns a rule's refusal into a flash on the page it came from, rather than an error page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import User
from immigrationos.accounts.roles import Role
from immigrationos.api import case_routes
from immigrationos.api.case_routes import Caseworker, SessionDep
from immigrationos.api.deps import db_session, get_runtime
from immigrationos.api.priority_routes import Reader
from immigrationos.core.errors import ImmosError, NotFound, ValidationFailed
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle import service, views
from immigrationos.lifecycle.facts import OFFICE_BOUND
from immigrationos.lifecycle.table import ParamSpec, load_table
from immigrationos.priority import service as priority_service
from immigrationos.priority import views as priority_views
from immigrationos.priority import worklists as priority_worklists
from immigrationos.runtime import Runtime
from immigrationos.web.render import page

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
T = TypeVar("T")
#: Form fields naming a step's parameter carry this prefix (the rest of a form is the page's).
PARAM = "p_"


async def _fields(request: Request) -> dict[str, str]:
    """The submitted form's text fields (parsed once per request; the CSRF check reuses it)."""
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


FormFields = Annotated[dict[str, str], Depends(_fields)]


@dataclass(frozen=True)
class Failed:
    """A service call a rule refused: its message, for the flash."""

    message: str


def _attempt(runtime: Runtime, ctx: AccessContext, work: Callable[[Gateway], T]) -> T | Failed:
    """Run ``work`` in a transaction owned as the API's is (``db_session``); a rule's refusal
    comes back as its message, rolled back, and audited when it is a refusal."""
    try:
        with contextmanager(db_session)(runtime) as session:
            return work(Gateway(session, ctx))
    except ImmosError as exc:
        return Failed(str(exc))


def _back(path: str, **flash: str) -> RedirectResponse:
    """POST, then redirect to a page showing the outcome (``?done=`` or ``?error=``)."""
    joined = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joined}{urlencode(flash)}", status_code=303)


def _usernames(session: Session) -> dict[str, str]:
    """Account ids to usernames, to say who did what (accounts are not personal data)."""
    return {uid: name for uid, name in session.execute(select(User.id, User.username))}


def _case_path(case_id: str) -> str:
    return f"/cases/{quote(case_id, safe='')}"


# -- the worklist ----------------------------------------------------------------------------


@router.get("/worklist", response_class=HTMLResponse)
def worklist(
    request: Request,
    ctx: Reader,
    session: SessionDep,
    tier: str = "",
    actionable: str = "",
    office: str | None = None,
    page_no: Annotated[int, Query(alias="page", ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 25,
) -> HTMLResponse:
    """Leads of the policy in force, actionable first; an officer sees their own worklist."""
    gw = Gateway(session, ctx)
    officer = ctx.actor.role is Role.OFFICER
    office = ctx.actor.office if office is None else office
    data = priority_worklists.worklist(
        gw,
        office=None if officer else office or None,
        officer=ctx.actor.username if officer else None,
        tier=tier or None,
        actionable={"yes": True, "no": False}.get(actionable),
        page=page_no,
        size=size,
    )
    _, policy = priority_service.policy_of(gw, data["policy"])
    tiers = [(t.id, t.label) for t in policy.tiers if t.lead]
    filters = {"tier": tier, "actionable": actionable, "office": office or "", "size": size}
    return page(
        request,
        "worklist.html.j2",
        ctx,
        title="Worklist",
        data=data,
        tiers=tiers,
        filters=filters,
        officer=officer,
        pages=max(1, -(-data["total"] // size)),
        base="/worklist?" + urlencode({k: v for k, v in filters.items() if v != ""}),
    )


@router.get("/worklist/persons/{person_id}", response_class=HTMLResponse)
def explanation(request: Request, ctx: Reader, session: SessionDep, person_id: str) -> HTMLResponse:
    """Why a person has their tier, and whether action is possible now (a panel or a page)."""
    data = priority_views.explain(Gateway(session, ctx), person_id)
    return page(request, "case_explanation.html.j2", ctx, title="Why this lead", x=data)


# -- cases -------------------------------------------------------------------------------------


@router.get("/cases", response_class=HTMLResponse)
def cases(
    request: Request,
    ctx: Caseworker,
    session: SessionDep,
    state: str = "",
    person_id: str = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """Cases of the actor's office (all offices for counsel), newest first."""
    rows = views.list_cases(
        Gateway(session, ctx),
        state=state or None,
        person_id=person_id or None,
        limit=limit,
        offset=offset,
    )
    table = load_table()
    filters = {k: v for k, v in {"state": state, "person_id": person_id}.items() if v}
    return page(
        request,
        "cases.html.j2",
        ctx,
        title="Cases",
        rows=rows,
        states=[(name, s.label) for name, s in table.states.items()],
        labels={name: s.label for name, s in table.states.items()},
        state=state,
        person_id=person_id,
        limit=limit,
        offset=offset,
        base="/cases" + ("?" + urlencode(filters) if filters else ""),
    )


@router.get("/cases/new", response_class=HTMLResponse)
def new_case(
    request: Request, ctx: Caseworker, person_id: str = "", error: str = ""
) -> HTMLResponse:
    """The form that opens a case (a lead becomes a case; nothing else happens yet)."""
    bound = ctx.actor.role in OFFICE_BOUND
    return page(
        request,
        "case_new.html.j2",
        ctx,
        title="Open a case",
        person_id=person_id,
        office=ctx.actor.office or "",
        fixed_office=bound and bool(ctx.actor.office),
        error=error,
    )


@router.post("/cases")
def open_case(
    ctx: Caseworker,
    runtime: RuntimeDep,
    person_id: Annotated[str, Form()],
    reason: Annotated[str, Form()],
    office: Annotated[str, Form()] = "",
) -> Response:
    """Open a case (the service of ``POST /api/cases``) and show it."""
    if ctx.actor.role in OFFICE_BOUND and ctx.actor.office:
        office = ctx.actor.office  # an office-bound actor opens cases of their own office
    if len(reason.strip()) < 5:
        return _back("/cases/new?" + urlencode({"person_id": person_id}), error=_SHORT_REASON)
    done = _attempt(
        runtime,
        ctx,
        lambda gw: service.open_case(gw, person_id, office=office or None, reason=reason).id,
    )
    if isinstance(done, Failed):
        return _back("/cases/new?" + urlencode({"person_id": person_id}), error=done.message)
    return _back(_case_path(done), done="Case opened. Record the encounter next.")


_SHORT_REASON = "Say why the case is opened (at least 5 characters)."


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case(
    request: Request,
    ctx: Caseworker,
    session: SessionDep,
    case_id: str,
    every: Annotated[bool, Query(alias="all")] = False,
    done: str = "",
    error: str = "",
) -> HTMLResponse:
    """A case: state, timeline, deadlines, documents, and what can happen next (and why not)."""
    data = views.case_page(Gateway(session, ctx), case_id, all_options=every)
    table = load_table()
    role = ctx.actor.role
    return page(
        request,
        "case.html.j2",
        ctx,
        title=f"Case {case_id}",
        c=data,
        ready=[o for o in data["next"] if o["allowed"]],
        blocked=[o for o in data["next"] if not o["allowed"]],
        all=every,
        names=_usernames(session),
        labels={name: t.label for name, t in table.transitions.items()},
        states={name: s.label for name, s in table.states.items()},
        may_execute={n for n, t in table.transitions.items() if role in t.by},
        done=done,
        error=error,
    )


def _value(name: str, spec: ParamSpec, raw: str) -> Any:
    """A form field as the step's parameter type wants it (Pydantic checks it after)."""
    if spec.type == "list":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if spec.type == "bool":
        return raw == "yes"
    if spec.type == "country":
        return raw.upper()
    if spec.type == "datetime":  # a datetime-local field has no zone: the pages work in UTC
        try:
            at = datetime.fromisoformat(raw)
        except ValueError:
            raise ValidationFailed(f"{name}: not a date and time ({raw!r})") from None
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()
    return raw


def _params(action: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The step's parameters from the form's ``p_*`` fields (empty fields left out)."""
    spec = load_table().transition(action)
    out = {}
    for name, p in spec.params.items():
        raw = form.get(PARAM + name, "").strip()
        if raw:
            out[name] = _value(name, p, raw)
    return out


@router.post("/cases/{case_id}/steps")
def take_step(ctx: Caseworker, runtime: RuntimeDep, case_id: str, form: FormFields) -> Response:
    """Take a step that needs no approval (the service of ``POST /api/cases/{id}/steps``)."""
    action = form.get("action", "")
    result = _attempt(
        runtime, ctx, lambda gw: service.perform(gw, case_id, action, _params(action, form))
    )
    if isinstance(result, Failed):
        return _back(_case_path(case_id), error=result.message)
    state = load_table().states[result.state].label if result.state else "unchanged"
    return _back(_case_path(case_id), done=f"Done: {_label(action)}. The case is now: {state}.")


def _label(action: str) -> str:
    t = load_table().transitions.get(action)
    return t.label if t else action


@router.post("/cases/{case_id}/requests")
def request_action(
    ctx: Caseworker, runtime: RuntimeDep, case_id: str, form: FormFields
) -> Response:
    """Request an action a second person approves (``POST /api/cases/{id}/requests``)."""
    action, why = form.get("action", ""), form.get("justification", "")
    result = _attempt(
        runtime,
        ctx,
        lambda gw: service.request_action(gw, case_id, action, _params(action, form), why).id,
    )
    if isinstance(result, Failed):
        return _back(_case_path(case_id), error=result.message)
    message = f"Requested: {_label(action)} ({result}). It waits for a second person's approval."
    return _back(_case_path(case_id), done=message)


@router.post("/requests/{request_id}/execution")
def execute(
    ctx: Caseworker,
    runtime: RuntimeDep,
    request_id: str,
    case_id: Annotated[str, Form()],
) -> Response:
    """Carry out an approved request (``POST /api/requests/{id}/execution``)."""
    result = _attempt(runtime, ctx, lambda gw: service.execute(gw, request_id))
    if isinstance(result, Failed):
        return _back(_case_path(case_id), error=result.message)
    state = load_table().states[result.state].label
    return _back(_case_path(case_id), done=f"Carried out {request_id}. The case is now: {state}.")


# -- documents ---------------------------------------------------------------------------------


@router.get("/documents/{document_id}")
def document(ctx: Caseworker, session: SessionDep, document_id: str) -> Response:
    """A stored document version as rendered (HTML), by the code of the API route."""
    shown = case_routes.document(ctx, session, document_id, format="html")
    assert isinstance(shown, Response)
    return shown


@router.get("/documents/{document_id}/pdf")
def document_pdf(ctx: Caseworker, session: SessionDep, document_id: str) -> Response:
    """The version's PDF (``GET /api/documents/{id}?format=pdf``), when one was rendered."""
    shown = case_routes.document(ctx, session, document_id, format="pdf")
    if not isinstance(shown, Response):
        raise NotFound(f"document {document_id} was stored without a PDF; read its HTML")
    shown.headers["Content-Disposition"] = f'attachment; filename="{document_id}.pdf"'
    return shown


# -- approvals ---------------------------------------------------------------------------------


def _checks_now(gw: Gateway, request: dict[str, Any]) -> dict[str, Any]:
    """The guards as an approver's decision would find them now.

    ``service.decide`` plans the step without the taker's role check (the approver does not
    take the step): the preview's checks, less that one.
    """
    try:
        plan = service.preview(gw, request["case_id"], request["action"], request["params"])
    except ImmosError as exc:
        return {"allowed": False, "checks": [], "problem": str(exc)}
    checks = [c.as_dict() for c in plan.checks if c.guard != "role"]
    return {"allowed": all(c["ok"] for c in checks), "checks": checks, "problem": None}


def _pending(gw: Gateway, request: dict[str, Any]) -> dict[str, Any]:
    """A waiting request as the queue shows it: its step, who may decide, its guards now."""
    t = load_table().transitions[request["action"]]
    approvers = [r.value for r in t.approval.approvers] if t.approval else []
    now = _checks_now(gw, request) if request["case_id"] else None
    return {**request, "label": t.label, "approvers": approvers, "now": now}


@router.get("/approvals", response_class=HTMLResponse)
def approvals(
    request: Request, ctx: Caseworker, session: SessionDep, done: str = "", error: str = ""
) -> HTMLResponse:
    """Requests of the actor's office waiting for a decision, each with its guards now."""
    gw = Gateway(session, ctx)
    queue = [_pending(gw, r) for r in views.pending_requests(gw)]
    return page(
        request,
        "approvals.html.j2",
        ctx,
        title="Approvals",
        queue=queue,
        names=_usernames(session),
        done=done,
        error=error,
    )


@router.post("/requests/{request_id}/decision")
def decide(
    ctx: Caseworker,
    runtime: RuntimeDep,
    request_id: str,
    decision: Annotated[str, Form()],
    justification: Annotated[str, Form()] = "",
) -> Response:
    """Approve or refuse someone else's request (``POST /api/requests/{id}/decision``)."""
    approve = decision == "approve"
    result = _attempt(
        runtime, ctx, lambda gw: service.decide(gw, request_id, approve, justification)
    )
    if isinstance(result, Failed):
        return _back("/approvals", error=result.message)
    if approve:
        until = result.expires_at.strftime("%Y-%m-%d %H:%M UTC") if result.expires_at else ""
        return _back(
            "/approvals", done=f"Approved {request_id}; it may be carried out until {until}."
        )
    return _back("/approvals", done=f"Refused {request_id}.")
