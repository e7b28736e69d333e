"""Account administration: list accounts, deactivate, reactivate, unlock (each audited).

Creating an account is :func:`immigrationos.accounts.service.create_user`, shared with the CLI.
Each change here is planned first (:func:`plan_change`: which fields would change, or why the
change is refused), then applied and audited as a ``user.changed`` entry naming the fields.
Nothing here reads personal data of the public: an administrator works on accounts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts import sessions
from immigrationos.accounts.models import User, WebSession
from immigrationos.accounts.roles import Role
from immigrationos.audit.chain import emit
from immigrationos.audit.events import UserChanged
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.gateway.context import AccessContext

#: What each change sets on the account. Data, so the routes and the CLI share one table.
CHANGES: dict[str, dict[str, Any]] = {
    "deactivate": {"active": False},
    "reactivate": {"active": True},
    "unlock": {"locked_until": None, "failed_logins": 0},
}


@dataclass(frozen=True)
class ChangePlan:
    """What a change would do to one account: the new values, or why it may not happen."""

    user_id: str
    change: str
    values: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None


def is_locked(user: User) -> bool:
    """True while a lockout after failed sign-ins is in force."""
    return user.locked_until is not None and user.locked_until > utcnow()


def list_users(session: Session) -> list[User]:
    """Every account, by username."""
    return list(session.scalars(select(User).order_by(User.username)).all())


def get_user(session: Session, user_id: str) -> User:
    """One account, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no account {user_id!r}")
    return user


def plan_change(user: User, change: str, ctx: AccessContext) -> ChangePlan:
    """The fields ``change`` would set on ``user`` (only those that differ), or a refusal."""
    if change not in CHANGES:
        return ChangePlan(user.id, change, refused=f"unknown change {change!r}")
    if user.role == Role.SYSTEM.value:
        return ChangePlan(user.id, change, refused="the system service account is not changed here")
    if change == "deactivate" and user.id == ctx.actor.user_id:
        return ChangePlan(user.id, change, refused="you cannot deactivate your own account")
    values = {k: v for k, v in CHANGES[change].items() if getattr(user, k) != v}
    return ChangePlan(user.id, change, values)


def change_user(session: Session, user_id: str, change: str, ctx: AccessContext) -> User:
    """Apply ``change`` to an account and audit it; a deactivation ends the account's sessions.

    A change that alters nothing (unlocking an unlocked account) is still audited, with no
    fields, so the attempt is on the record.
    """
    user = get_user(session, user_id)
    plan = plan_change(user, change, ctx)
    if plan.refused:
        raise ValidationFailed(plan.refused)
    for name, value in plan.values.items():
        setattr(user, name, value)
    if change == "deactivate":
        _end_sessions(session, user)
    session.flush()
    emit(
        session,
        UserChanged(object_type="users", object_ids=[user.id], fields=sorted(plan.values)),
        ctx,
    )
    return user


def _end_sessions(session: Session, user: User) -> None:
    """End the account's open browser sessions, so reactivating it revives none of them."""
    open_sessions = session.scalars(
        select(WebSession).where(WebSession.user_id == user.id, WebSession.ended_at.is_(None))
    ).all()
    for web in open_sessions:
        sessions.end(session, web, "account deactivated")
