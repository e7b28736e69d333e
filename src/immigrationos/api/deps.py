"""Authentication and authorization, declared once per route as a dependency.

``Depends(access(...))`` authenticates the caller (HTTP Basic for now; sessions and tokens
come with the web application), reads the declared purpose from ``X-Immos-Purpose``, checks
the role may work under it and the route's allowed roles, and hands the route an
:class:`~immigrationos.gateway.context.AccessContext`. Refusals are audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.orm import Session

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

basic = HTTPBasic(
    auto_error=False, description="Username and password of an ImmigrationOS account."
)


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


def access(*roles: Role, purposes: tuple[Purpose, ...] = ()) -> Callable[..., AccessContext]:
    """A dependency admitting ``roles`` (all when empty), optionally only under ``purposes``."""

    def dependency(
        request: Request,
        runtime: Annotated[Runtime, Depends(get_runtime)],
        credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)],
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
        if credentials is None:
            raise HTTPException(401, "sign in required", {"WWW-Authenticate": "Basic"})
        try:
            with transaction(runtime.sessions) as session:
                user = authenticate(
                    session, credentials.username, credentials.password, record_sign_in=False
                )
        except AccessRefused as exc:
            raise HTTPException(401, str(exc), {"WWW-Authenticate": "Basic"}) from None
        actor = actor_of(user)
        operation = f"{request.method} {request.url.path}"
        if roles and actor.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise _refuse(
                runtime,
                f"role {actor.role.value!r} may not use this route (allowed: {allowed})",
                operation,
                actor,
            )
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
            return AccessContext(
                actor, purpose, x_immos_justification, x_immos_case, x_immos_request
            )
        except AccessRefused as exc:
            raise _refuse(runtime, str(exc), operation, actor) from None

    return dependency


def _default_purpose(role: Role) -> str:
    """A role with a single natural purpose may omit the header."""
    return {
        Role.AUDITOR: Purpose.OVERSIGHT_AUDIT,
        Role.ADMINISTRATOR: Purpose.SYSTEM_ADMINISTRATION,
        Role.PRIVACY_OFFICER: Purpose.DATA_INTEGRATION,
        Role.ANALYST: Purpose.STATISTICS,
    }.get(role, Purpose.CASE_PROCESSING).value
