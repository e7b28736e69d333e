"""Accounts: create users with argon2id password hashes, authenticate, and the demo roster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import User
from immigrationos.accounts.roles import Role
from immigrationos.audit.chain import emit
from immigrationos.audit.events import SignedIn, SignInFailed, UserCreated
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import AccessRefused, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.gateway.context import AccessContext, Actor

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
LOCKOUT_AFTER = 5
LOCKOUT_FOR = timedelta(minutes=15)
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def actor_of(user: User) -> Actor:
    """The audit identity of a user."""
    return Actor(user_id=user.id, username=user.username, role=Role(user.role), office=user.office)


def create_user(
    session: Session,
    username: str,
    role: Role,
    password: str | None,
    display_name: str | None = None,
    office: str | None = None,
    ctx: AccessContext | None = None,
) -> User:
    """Create an account (audited). Service accounts (role ``system``) have no password."""
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ValidationFailed(f"username {username!r} is taken")
    if role is not Role.SYSTEM and (password is None or len(password) < MIN_PASSWORD):
        raise ValidationFailed(f"a password needs at least {MIN_PASSWORD} characters")
    user = User(
        id=new_id("usr"),
        username=username,
        display_name=display_name or username,
        role=role.value,
        office=office,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    emit(
        session,
        UserCreated(object_type="users", object_ids=[user.id], username=username, role=role.value),
        ctx,
    )
    return user


def authenticate(
    session: Session, username: str, password: str, record_sign_in: bool = True
) -> User:
    """The user with these credentials; failures count towards a temporary lockout.

    Failures are always audited. Success is audited as a sign-in unless the caller
    authenticates every request (HTTP Basic), where the route's own entry names the actor.
    """
    user = session.scalar(select(User).where(User.username == username))
    now = utcnow()
    if user is None or not user.active or user.password_hash is None:
        emit(session, SignInFailed(username=username), None)
        raise AccessRefused("unknown user or wrong password")
    if user.locked_until and user.locked_until > now:
        emit(
            session,
            SignInFailed(object_type="users", object_ids=[user.id], username=username),
            None,
        )
        raise AccessRefused(f"account locked until {user.locked_until:%H:%M} UTC")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_AFTER:
            user.locked_until, user.failed_logins = now + LOCKOUT_FOR, 0
        emit(
            session,
            SignInFailed(object_type="users", object_ids=[user.id], username=username),
            None,
        )
        raise AccessRefused("unknown user or wrong password") from None
    user.failed_logins, user.locked_until = 0, None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if record_sign_in:
        emit(session, SignedIn(object_type="users", object_ids=[user.id]), actor_of(user))
    return user


@dataclass(frozen=True)
class DemoAccount:
    """A demo login printed by ``immos demo``."""

    username: str
    password: str
    role: Role
    office: str | None


DEMO_ACCOUNTS: tuple[DemoAccount, ...] = (
    DemoAccount("officer.miami", "demo-officer-pass", Role.OFFICER, "Miami"),
    DemoAccount("officer.houston", "demo-officer-pass", Role.OFFICER, "Houston"),
    DemoAccount("supervisor.miami", "demo-supervisor-pass", Role.SUPERVISOR, "Miami"),
    DemoAccount("supervisor.houston", "demo-supervisor-pass", Role.SUPERVISOR, "Houston"),
    DemoAccount("counsel", "demo-counsel-pass", Role.COUNSEL, None),
    DemoAccount("analyst", "demo-analyst-pass", Role.ANALYST, None),
    DemoAccount("privacy", "demo-privacy-pass", Role.PRIVACY_OFFICER, None),
    DemoAccount("auditor", "demo-auditor-pass", Role.AUDITOR, None),
    DemoAccount("admin", "demo-admin-pass", Role.ADMINISTRATOR, None),
)


def ensure_demo_accounts(session: Session) -> list[DemoAccount]:
    """Create the demo roster where missing (demo mode only; the caller checks the mode)."""
    for account in DEMO_ACCOUNTS:
        if session.scalar(select(User).where(User.username == account.username)) is None:
            create_user(
                session, account.username, account.role, account.password, office=account.office
            )
    return list(DEMO_ACCOUNTS)
