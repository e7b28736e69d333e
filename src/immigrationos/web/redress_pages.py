"""Pages of redress: public filing and status, the privacy officer queue.

``/redress/new`` and ``/redress/status`` need no account. Their forms are protected against
cross-site posting the way a session's forms are, without a session: the page sets a random
value in a ``SameSite=Strict``, HttpOnly cookie and puts its HMAC (under the server's secret)
in a hidden ``form_token`` field; a post must carry both, and another site can neither read
the cookie nor make the browser send it. Filings and status checks are throttled per client
and audited with no actor (see :mod:`immigrationos.api.redress_routes`, whose functions these
pages call). A form that fails validation comes back with every value as typed and the
problems listed, so nothing is lost.

The privacy officer's pages (``/redress``, ``/redress/{reference}``) work under the purpose
``redress`` with the same dependency as the API, and forms carry the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from immigrationos.api import redress_routes
from immigrationos.api.deps import get_runtime
from immigrationos.api.redress_routes import PrivacyOfficer, SessionDep
from immigrationos.core.errors import AccessRefused, ImmosError
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.oversight import disputes, letters, redress, redress_filing, redress_triage
from immigrationos.runtime import Runtime
from immigrationos.web.render import page

router = APIRouter(include_in_schema=False)
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
FORM_COOKIE = "immos_redress_form"
ITEM_ROWS = 5
T = TypeVar("T")
_ = Session  # the session type is imported for SessionDep's readers


# -- the public forms' token ----------------------------------------------------------------


def _sign(runtime: Runtime, nonce: str) -> str:
    key = runtime.settings.effective_secret.encode()
    return hmac.new(key, f"redress-form:{nonce}".encode(), hashlib.sha256).hexdigest()


def _with_token(request: Request, runtime: Runtime, build: Callable[[str], Response]) -> Response:
    """A public form page carrying a fresh form token, and the cookie it is checked against."""
    nonce = secrets.token_urlsafe(24)
    response = build(_sign(runtime, nonce))
    response.set_cookie(
        FORM_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/redress",
        max_age=2 * 3600,
    )
    return response


def _token_ok(request: Request, runtime: Runtime, token: str) -> bool:
    nonce = request.cookies.get(FORM_COOKIE, "")
    return bool(nonce) and secrets.compare_digest(token or "", _sign(runtime, nonce))


def _forbidden(request: Request, runtime: Runtime, template: str, **data: Any) -> Response:
    message = "This form expired or was sent from another site; please fill it in again."
    return _with_token(
        request,
        runtime,
        lambda t: page(request, template, status=403, error=message, form_token=t, **data),
    )


# -- filing ----------------------------------------------------------------------------------


def _blank_form() -> dict[str, Any]:
    return {"items": [{} for _ in range(ITEM_ROWS)]}


def _new_page(request: Request, token: str, form: dict[str, Any], **data: Any) -> Response:
    return page(
        request,
        "redress_new.html.j2",
        title="Ask for a correction",
        form=form,
        kinds=redress_filing.FILED_KINDS,
        form_token=token,
        **data,
    )


@router.get("/redress/new", response_class=HTMLResponse)
def new_request_form(request: Request, runtime: RuntimeDep) -> Response:
    """The public form: ask for a correction of a person's record (no account needed)."""
    return _with_token(request, runtime, lambda t: _new_page(request, t, _blank_form()))


def _form_values(form: Any) -> dict[str, Any]:
    """The submitted form as typed (kept to show it again)."""
    names = ("requester_name", "requester_contact", "authority", "a_number", "given_name",
             "family_name", "birth_date", "statement")  # fmt: skip
    values: dict[str, Any] = {n: str(form.get(n) or "") for n in names}
    values["items"] = [
        {k: str(form.get(f"{k}_{i}") or "") for k in ("kind", "current_value", "claimed_value",
                                                      "evidence")}
        for i in range(ITEM_ROWS)
    ]  # fmt: skip
    return values


def _filing(values: dict[str, Any]) -> redress_filing.Filing:
    items = [{k: v for k, v in item.items() if v} for item in values["items"] if item.get("kind")]
    data = {k: v for k, v in values.items() if k != "items" and v}
    return redress_filing.Filing.model_validate({**data, "items": items})


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"] if p != "__root__")
        message = str(e["msg"]).removeprefix("Value error, ")
        out.append(f"{where.replace('_', ' ')}: {message}" if where else message)
    return out


@router.post("/redress/new", response_class=HTMLResponse)
async def new_request(request: Request, runtime: RuntimeDep) -> Response:
    """File the request; the answer shows the reference and the tracking code once."""
    form = await request.form()
    values = _form_values(form)
    if not _token_ok(request, runtime, str(form.get("form_token") or "")):
        return _forbidden(request, runtime, "redress_new.html.j2", form=values,
                          kinds=redress_filing.FILED_KINDS,
                          title="Ask for a correction")  # fmt: skip
    try:
        filing = _filing(values)
    except ValidationError as exc:
        problems = _problems(exc)
        return _with_token(
            request,
            runtime,
            lambda t: _new_page(request, t, values, problems=problems, status=422),
        )
    redress_routes.check_throttle(request, "filing")
    filed = redress_routes.file_public(runtime, filing, "web")
    return page(request, "redress_filed.html.j2", title="Request received", filed=filed)


# -- status ----------------------------------------------------------------------------------


@router.get("/redress/status", response_class=HTMLResponse)
def status_form(request: Request, runtime: RuntimeDep, reference: str = "") -> Response:
    """Check a request with its reference and tracking code."""
    return _with_token(
        request,
        runtime,
        lambda t: page(request, "redress_status.html.j2", title="Your correction request",
                       form_token=t, reference=reference, view=None),
    )  # fmt: skip


def _status_request(
    request: Request, runtime: Runtime, reference: str, form_token: str
) -> tuple[dict[str, Any], Response | None]:
    """The status page's context, and the refusal when the form token is wrong; a checked
    request counts against the client's status-check throttle."""
    data: dict[str, Any] = {
        "title": "Your correction request",
        "reference": reference,
        "view": None,
    }
    if not _token_ok(request, runtime, form_token):
        return data, _forbidden(request, runtime, "redress_status.html.j2", **data)
    redress_routes.check_throttle(request, "status")
    return data, None


@router.post("/redress/status", response_class=HTMLResponse)
def status_page(
    request: Request,
    runtime: RuntimeDep,
    reference: Annotated[str, Form(max_length=40)] = "",
    code: Annotated[str, Form(max_length=40)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The request's status, decision and reasons, and the letter once decided."""
    data, refused = _status_request(request, runtime, reference, form_token)
    if refused is not None:
        return refused
    try:
        view, _ = redress_routes.status_public(runtime, reference, code)
    except AccessRefused as exc:
        error = str(exc)
        return _with_token(
            request,
            runtime,
            lambda t: page(request, "redress_status.html.j2", status=403, error=error,
                           form_token=t, **data),
        )  # fmt: skip
    return _with_token(
        request,
        runtime,
        lambda t: page(request, "redress_status.html.j2", form_token=t, code=code,
                       **{**data, "view": view}),
    )  # fmt: skip


@router.post("/redress/status/letter")
def status_letter(
    request: Request,
    runtime: RuntimeDep,
    reference: Annotated[str, Form(max_length=40)] = "",
    code: Annotated[str, Form(max_length=40)] = "",
    form_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The decision letter as a PDF (posted, so the tracking code stays out of URLs)."""
    data, refused = _status_request(request, runtime, reference, form_token)
    if refused is not None:
        return refused
    try:
        _, letter = redress_routes.status_public(runtime, reference, code, "letter")
    except AccessRefused as exc:
        return page(request, "redress_status.html.j2", status=403, error=str(exc),
                    form_token="", **data)  # fmt: skip
    return redress_routes.letter_response(letter, "pdf")


# -- the privacy officer ----------------------------------------------------------------------


def _redirect(to: str, done: str = "", error: str = "") -> RedirectResponse:
    flash = f"done={quote(done)}" if done else f"error={quote(error)}" if error else ""
    return RedirectResponse(f"{to}?{flash}" if flash else to, status_code=303)


def _attempt(work: Callable[[], T]) -> tuple[T | None, str]:
    """Run a service call; a rule's refusal comes back as the message the page shows."""
    try:
        return work(), ""
    except Refused:  # rolled back and audited by the request's session dependency
        raise
    except ImmosError as exc:
        return None, str(exc)


@router.get("/redress", response_class=HTMLResponse)
def queue_page(
    request: Request, ctx: PrivacyOfficer, session: SessionDep, status: str = "", done: str = ""
) -> HTMLResponse:
    """The redress queue: requests waiting, in review and decided."""
    shown = status if status in ("filed", "in_review", "decided") else None
    items = redress_triage.queue(Gateway(session, ctx), shown)
    return page(request, "redress_queue.html.j2", ctx, title="Redress requests", items=items,
                queue=shown or "", done=done)  # fmt: skip


@router.get("/redress/{reference}", response_class=HTMLResponse)
def request_page(
    request: Request,
    reference: str,
    ctx: PrivacyOfficer,
    session: SessionDep,
    done: str = "",
    error: str = "",
) -> HTMLResponse:
    """One request: the filing, candidates and link, facts to mark, the decision."""
    gw = Gateway(session, ctx)
    r = redress_triage.detail(gw, reference)
    facts = redress_triage.markable(gw, r["person_id"]) if r["person_id"] else {}
    return page(request, "redress_request.html.j2", ctx, title=f"Redress request {reference}",
                r=r, markable=_markable_rows(facts), kinds=redress_filing.FILED_KINDS,
                fact_kinds=disputes.FACT_KINDS, attributes=disputes.ATTRIBUTES, done=done,
                error=error, plan=None)  # fmt: skip


def _markable_rows(facts: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows the mark form offers: each fact, and each attribute once (every record giving it)."""
    rows = []
    for kind, items in facts.items():
        if kind == "attribute":
            continue
        for item in items:
            rows.append({"kind": kind, **item, "value_key": f"{kind}|{item['row_id']}|"})
    for attribute in sorted({i["field"] for i in facts.get("attribute", [])}):
        values = sorted({str(i["value"]) for i in facts["attribute"] if i["field"] == attribute})
        key = f"attribute||{attribute}"
        rows.append({"kind": "attribute", "field": attribute, "row_id": "",
                     "label": ", ".join(values), "value_key": key})  # fmt: skip
    return rows


@router.post("/redress/{reference}/link")
def link_page(
    reference: str,
    ctx: PrivacyOfficer,
    session: SessionDep,
    person_id: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Link the request to a person."""
    gw = Gateway(session, ctx)
    done, error = _attempt(lambda: redress_triage.link(gw, reference, person_id.strip()))
    to = f"/redress/{quote(reference)}"
    return _redirect(to, error=error) if done is None else _redirect(to, f"Linked to {person_id}.")


@router.post("/redress/{reference}/disputes")
async def disputes_page(
    request: Request, reference: str, ctx: PrivacyOfficer, session: SessionDep
) -> Response:
    """Mark the ticked facts disputed (answering one filed item)."""
    form = await request.form()
    item = str(form.get("item") or "")
    marks = []
    for key in form.getlist("mark"):
        kind, row_id, field = [*str(key).split("|"), "", "", ""][:3]
        marks.append(
            redress_triage.Mark(kind=kind, row_id=row_id or None, field=field or None,
                         item=int(item) if item.isdigit() else None)
        )  # fmt: skip
    gw = Gateway(session, ctx)
    done, error = _attempt(lambda: redress_triage.dispute(gw, reference, marks))
    to = f"/redress/{quote(reference)}"
    if done is None:
        return _redirect(to, error=error or "tick at least one fact")
    return _redirect(to, f"{len(done.facts)} facts marked disputed.")


def _verdicts(form: Any, facts: list[dict[str, Any]]) -> list[redress.Verdict]:
    out = []
    for f in facts:
        if f["status"] != "disputed":
            continue
        choice = str(form.get(f"verdict_{f['id']}") or "")
        if choice in ("accept", "reject"):
            value = str(form.get(f"value_{f['id']}") or "").strip() or None
            out.append(redress.Verdict(fact_id=f["id"], verdict=choice, corrected_value=value))
    return out


@router.post("/redress/{reference}/decision", response_class=HTMLResponse)
async def decision_page(
    request: Request, reference: str, ctx: PrivacyOfficer, session: SessionDep
) -> Response:
    """Preview the decision's plan, or decide (the plan is applied, the letter made)."""
    form = await request.form()
    gw = Gateway(session, ctx)
    r = redress_triage.detail(gw, reference)
    reasons = str(form.get("reasons") or "")
    verdicts = _verdicts(form, r["facts"])
    if form.get("preview"):
        plan, error = _attempt(lambda: redress.plan_decision(gw, reference, verdicts, reasons))
        facts = redress_triage.markable(gw, r["person_id"]) if r["person_id"] else {}
        return page(request, "redress_request.html.j2", ctx, title=f"Redress request {reference}",
                    r=r, markable=_markable_rows(facts), kinds=redress_filing.FILED_KINDS,
                    fact_kinds=disputes.FACT_KINDS, attributes=disputes.ATTRIBUTES, done="",
                    error=error, plan=plan.to_json() if plan else None, reasons=reasons,
                    chosen={v.fact_id: v for v in verdicts},
                    status=422 if error else 200)  # fmt: skip
    done, error = _attempt(lambda: redress.decide(gw, reference, verdicts, reasons))
    to = f"/redress/{quote(reference)}"
    if done is None:
        return _redirect(to, error=error)
    return _redirect(to, f"Decided: {done['plan']['decision']}; the letter is ready.")


@router.get("/redress/{reference}/letter")
def letter_page(
    reference: str, ctx: PrivacyOfficer, session: SessionDep, format: str = "pdf"
) -> Response:
    """The newest letter (PDF; ``?format=html`` to read it in the browser)."""
    letter = letters.latest(Gateway(session, ctx), reference)
    return redress_routes.letter_response(letter, "html" if format == "html" else "pdf")
