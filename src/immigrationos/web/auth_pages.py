"""Signing in and out, choosing the purpose of one's work, the account page, the start page.

Sign-in is throttled per client address (``sign_in_attempts_per_minute``) on top of the
account lockout; the session cookie is HttpOnly, SameSite=Lax, and Secure whenever the
request came over TLS. A role with a single purpose has it chosen at sign-in; others choose on
the purpose page, which every page links to from its purpose banner.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from immigrationos.accounts import sessions
from immigrationos.accounts.models import User
from immigrationos.accounts.roles import ROLES, Role
from immigrationos.accounts.service import authenticate
from immigrationos.api.deps import SESSION_COOKIE, access, get_runtime
from immigrationos.audit.chain import emit
from immigrationos.audit.events import SignInThrottled
from immigrationos.core.errors import AccessRefused, ImmosError, ValidationFailed
from immigrationos.gateway.context import AccessContext
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction
from immigrationos.web.render import page, purpose_label

router = APIRouter(include_in_schema=False)
#: Signed in, purpose chosen or not: these pages are where one chooses it, or leaves.
SignedIn = Annotated[AccessContext, Depends(access(needs_purpose=False))]
Working = Annotated[AccessContext, Depends(access())]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _safe_next(target: str | None) -> str:
    """Only local paths: a crafted ``next`` must not send the user to another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    """The sign-in form."""
    return page(request, "login.html.j2", title="Sign in", next=_safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    runtime: RuntimeDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next_page: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    """Check the password, start a session and set its cookie."""
    target = _safe_next(next_page)
    wait = request.app.state.sign_in_throttle.allow(_client(request))
    if wait:
        with transaction(runtime.sessions) as session:
            emit(session, SignInThrottled(username=username[:64]), None)
        message = f"Too many sign-in attempts from this address; try again in {int(wait) + 1} s."
        response = page(request, "login.html.j2", title="Sign in", next=target, error=message)
        response.status_code = 429
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    error, token = None, ""
    with transaction(runtime.sessions) as session:
        try:
            user = authenticate(session, username, password)
            token, web = sessions.start(session, user, _client(request))
            purposes = ROLES[Role(user.role)].purposes
            if len(purposes) == 1:
                (only,) = purposes
                sessions.choose_purpose(session, sessions.Signed(web, user), only)
        except AccessRefused as exc:  # caught inside: the failure's count is committed
            error = str(exc)
    if error:
        response = page(request, "login.html.j2", title="Sign in", next=target, error=error)
        response.status_code = 401
        return response
    redirect = RedirectResponse(target, status_code=303)
    redirect.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=runtime.settings.session_max_hours * 3600,
        path="/",
    )
    return redirect


@router.post("/logout")
def logout(request: Request, ctx: SignedIn, runtime: RuntimeDep) -> Response:
    """End the session and clear its cookie (a token or password caller has none to end)."""
    if getattr(request.state, "web", None) is not None:
        with transaction(runtime.sessions) as session:
            sessions.end(session, session.merge(request.state.web))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _signed(session: Session, request: Request) -> sessions.Signed:
    if getattr(request.state, "web", None) is None:
        raise ValidationFailed(
            "the purpose is chosen per browser session; API clients send X-Immos-Purpose"
        )
    web = session.merge(request.state.web)
    user = session.get(User, web.user_id)
    assert user is not None
    return sessions.Signed(web, user)


@router.get("/purpose", response_class=HTMLResponse)
def purpose_form(request: Request, ctx: SignedIn, next: str = "/") -> HTMLResponse:
    """Choose the purpose of the work (and the case and reason), shown on every page."""
    return _purpose_page(request, ctx, _safe_next(next), None)


def _purpose_page(
    request: Request, ctx: AccessContext, target: str, error: str | None
) -> HTMLResponse:
    spec = ROLES[ctx.actor.role]
    choices = [(p.value, purpose_label(p)) for p in sorted(spec.purposes)]
    return page(
        request,
        "purpose.html.j2",
        ctx,
        status=400 if error else 200,
        title="Purpose of your work",
        choices=choices,
        next=target,
        error=error,
    )


@router.post("/purpose", response_class=HTMLResponse)
def choose_purpose(
    request: Request,
    ctx: SignedIn,
    runtime: RuntimeDep,
    purpose: Annotated[str, Form()],
    justification: Annotated[str, Form()] = "",
    case_ref: Annotated[str, Form()] = "",
    request_ref: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Record the chosen purpose on the session (audited) and go on."""
    target = _safe_next(next)
    try:
        with transaction(runtime.sessions) as session:
            sessions.choose_purpose(
                session, _signed(session, request), purpose, justification, case_ref, request_ref
            )
    except ImmosError as exc:
        return _purpose_page(request, ctx, target, str(exc))
    return RedirectResponse(target, status_code=303)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, ctx: Working) -> HTMLResponse:
    """The start page: the role, what it is for, and the pages it works in."""
    return page(request, "home.html.j2", ctx, title="Start")


def _account_page(
    request: Request, ctx: AccessContext, runtime: Runtime, created: str | None
) -> HTMLResponse:
    with transaction(runtime.sessions) as session:
        user = session.get(User, ctx.actor.user_id)
        assert user is not None
        tokens = [
            {
                "id": t.id,
                "name": t.name,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "last_used_at": t.last_used_at,
                "revoked": t.revoked_at is not None,
            }
            for t in sessions.tokens_of(session, user)
        ]
    return page(
        request, "account.html.j2", ctx, title="Your account", tokens=tokens, created=created
    )


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, ctx: SignedIn, runtime: RuntimeDep) -> HTMLResponse:
    """The account page: who you are, your session, your API tokens."""
    return _account_page(request, ctx, runtime, None)


@router.post("/account/tokens", response_class=HTMLResponse)
def create_token(
    request: Request, ctx: SignedIn, runtime: RuntimeDep, name: Annotated[str, Form()]
) -> HTMLResponse:
    """Create an API token and show it once."""
    with transaction(runtime.sessions) as session:
        user = session.get(User, ctx.actor.user_id)
        assert user is not None
        token, _row = sessions.create_token(session, user, name, runtime.settings.api_token_days)
    return _account_page(request, ctx, runtime, token)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, ctx: SignedIn, runtime: RuntimeDep, token_id: str) -> Response:
    """Revoke one of your API tokens."""
    with transaction(runtime.sessions) as session:
        user = session.get(User, ctx.actor.user_id)
        assert user is not None
        sessions.revoke_token(session, user, token_id)
    return RedirectResponse("/account", status_code=303)
