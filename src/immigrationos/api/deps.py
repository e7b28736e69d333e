"""Authentication and authorization, declared once per route as a dependency.

``Depends(access(...))`` authenticates the caller (an API token, HTTP Basic, or the browser
session cookie with its CSRF token on every change), takes the declared purpose (the
``X-Immos-Purpose`` header, or the one the browser session chose), checks the role may work
under it and the route's allowed roles, and hands the route an
:class:`~immigrationos.gateway.context.AccessContext`. Refusals are audited. Pages and API
routes use the same dependencies; only the shape of a refusal differs (see ``web.errors``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import (
    APIKeyCookie,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from sqlalchemy.orm import Session

from immigrationos.accounts import sessions
from immigrationos.accounts.models import WebSession
from immigrationos.accounts.roles import Role
from immigrationos.accounts.service import actor_of, authenticate
from immigrationos.audit.chain import emit
from immigrationos.audit.events import AccessDenied
from immigrationos.core.errors import AccessRefused
from immigrationos.gateway.context import AccessContext, Actor
from immigrationos.gateway.core import Refused
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

SESSION_COOKIE = "immos_session"
CSRF_HEADER = "X-CSRF-Token"

basic = HTTPBasic(
    auto_error=False, description="Username and password of an ImmigrationOS account."
)
bearer = HTTPBearer(
    auto_error=False,
    description="An API token (`immos_…`) created on the account page or with "
    "`immos users token`; acts as its user.",
)
cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The browser session cookie set by signing in at `/login`. Requests that "
    "change anything must also send the session's CSRF token (header `X-CSRF-Token`, or the "
    "form field `csrf_token`).",
)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class PurposeNeeded(HTTPException):
    """A browser session has not declared the purpose of its work yet (pages only)."""

    def __init__(self) -> None:
        super().__init__(409, "choose the purpose of your work first")


def get_runtime(request: Request) -> Runtime:
    """The runtime the app was created with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def db_session(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Iterator[Session]:
    """A transaction owned by the request: committed when the route returns, else rolled back.

    A refusal raised inside the route rolls the work back and is then audited on its own.
    """
    try:
        with transaction(runtime.sessions) as session:
            yield session
    except Refused as refusal:
        with transaction(runtime.sessions) as session:
            emit(session, refusal.audit_event(), refusal.ctx)
        raise


def _refuse(
    runtime: Runtime, message: str, operation: str, actor: Actor, status: int = 403
) -> HTTPException:
    with transaction(runtime.sessions) as session:
        emit(session, AccessDenied(operation=operation, reason=message), actor)
    return HTTPException(status_code=status, detail=message)


async def _form_csrf(request: Request) -> str | None:
    """The ``csrf_token`` field of a submitted HTML form (parsed once; routes reuse it)."""
    if request.method not in UNSAFE:
        return None
    kind = request.headers.get("content-type", "")
    if not kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    value = (await request.form()).get("csrf_token")
    return value if isinstance(value, str) else None


def _caller(
    request: Request,
    runtime: Runtime,
    basic_credentials: HTTPBasicCredentials | None,
    bearer_credentials: HTTPAuthorizationCredentials | None,
    session_token: str | None,
    form_csrf: str | None,
) -> tuple[Actor, WebSession | None]:
    """Who is calling: by API token, password (HTTP Basic) or browser session, in that order."""
    challenge = {"WWW-Authenticate": "Basic"}
    refused: str | None = None
    with transaction(runtime.sessions) as session:
        if bearer_credentials is not None:
            user = sessions.user_for_token(session, bearer_credentials.credentials)
            if user is not None:
                return actor_of(user), None
            refused = "unknown, expired or revoked API token"
        elif basic_credentials is not None:
            try:
                user = authenticate(
                    session,
                    basic_credentials.username,
                    basic_credentials.password,
                    record_sign_in=False,
                )
                return actor_of(user), None
            except AccessRefused as exc:  # caught inside: the failure's count is committed
                refused = str(exc)
        signed = (
            sessions.resume(session, session_token, runtime.settings)
            if session_token and refused is None
            else None
        )
        if signed is not None:
            session.flush()
            session.expunge(signed.web)
    # raised outside the transaction, so a failure's audit entry and counts are committed
    if refused is not None:
        raise HTTPException(401, refused, challenge)
    if signed is None:
        raise HTTPException(401, "sign in required", challenge)
    if request.method in UNSAFE:
        sent = request.headers.get(CSRF_HEADER) or form_csrf or ""
        if not secrets.compare_digest(sent, signed.web.csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token; reload the page")
    request.state.web = signed.web
    return actor_of(signed.user), signed.web


def access(
    *roles: Role, purposes: tuple[Purpose, ...] = (), needs_purpose: bool = True
) -> Callable[..., AccessContext]:
    """A dependency admitting ``roles`` (all when empty), optionally only under ``purposes``.

    The same dependency guards an API route and the page built on it. A browser session
    works under the purpose chosen on the purpose page; other callers declare it per request.
    """

    def dependency(
        request: Request,
        runtime: Annotated[Runtime, Depends(get_runtime)],
        basic_credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
        bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        session_token: Annotated[str | None, Depends(cookie)],
        form_csrf: Annotated[str | None, Depends(_form_csrf)],
        x_immos_purpose: Annotated[
            str | None,
            Header(description="The purpose of this work, from the controlled vocabulary."),
        ] = None,
        x_immos_justification: Annotated[
            str | None, Header(description="Why this access is needed (kept in the audit log).")
        ] = None,
        x_immos_case: Annotated[
            str | None, Header(description="The case (or investigation) this work is for.")
        ] = None,
        x_immos_request: Annotated[
            str | None,
            Header(description="A disclosure request id, for sources that demand one per use."),
        ] = None,
    ) -> AccessContext:
        actor, web = _caller(
            request, runtime, basic_credentials, bearer_credentials, session_token, form_csrf
        )
        operation = f"{request.method} {request.url.path}"
        if roles and actor.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise _refuse(
                runtime,
                f"role {actor.role.value!r} may not use this route (allowed: {allowed})",
                operation,
                actor,
            )
        if web is not None and not x_immos_purpose:
            if web.purpose is None and needs_purpose and not request.url.path.startswith("/api/"):
                raise PurposeNeeded()
            x_immos_purpose = web.purpose
            x_immos_justification = x_immos_justification or web.justification
            x_immos_case = x_immos_case or web.case_ref
            x_immos_request = x_immos_request or web.request_ref
        purpose_text = x_immos_purpose or _default_purpose(actor.role)
        try:
            purpose = Purpose(purpose_text)
        except ValueError:
            raise HTTPException(
                400,
                f"unknown purpose {purpose_text!r}; one of: " + ", ".join(p.value for p in Purpose),
            ) from None
        if purposes and purpose not in purposes:
            raise _refuse(
                runtime,
                f"purpose {purpose.value!r} does not permit this route "
                f"(needs one of: {', '.join(p.value for p in purposes)})",
                operation,
                actor,
            )
        try:
            ctx = AccessContext(
                actor, purpose, x_immos_justification, x_immos_case, x_immos_request
            )
        except AccessRefused as exc:
            raise _refuse(runtime, str(exc), operation, actor) from None
        request.state.ctx = ctx
        return ctx

    # What the route admits, for the authorization matrix test and the docs (read-only).
    dependency.immos_roles = roles  # type: ignore[attr-defined]
    dependency.immos_purposes = purposes  # type: ignore[attr-defined]
    return dependency


def _default_purpose(role: Role) -> str:
    """A role with a single natural purpose may omit the header."""
    return {
        Role.AUDITOR: Purpose.OVERSIGHT_AUDIT,
        Role.ADMINISTRATOR: Purpose.SYSTEM_ADMINISTRATION,
        Role.PRIVACY_OFFICER: Purpose.DATA_INTEGRATION,
        Role.ANALYST: Purpose.STATISTICS,
    }.get(role, Purpose.CASE_PROCESSING).value
