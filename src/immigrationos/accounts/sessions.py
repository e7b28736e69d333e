"""Browser sessions, API tokens and the sign-in throttle.

Both kinds of credential are random 256-bit tokens handed to the client once; the store keeps
only their SHA-256, so a copy of the database signs nobody in. A session ends when signed out,
after ``session_idle_minutes`` without a request, or ``session_max_hours`` after sign-in. An
API token acts as its user until it expires or is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import ApiToken, User, WebSession
from immigrationos.accounts.roles import ROLES, Role
from immigrationos.accounts.service import actor_of
from immigrationos.audit.chain import emit
from immigrationos.audit.events import (
    ApiTokenCreated,
    ApiTokenRevoked,
    PurposeChosen,
    SignedOut,
)
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import AccessRefused, NotFound, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.core.settings import Settings
from immigrationos.gateway.purposes import Purpose

TOKEN_PREFIX = "immos_"
#: How often a session's last-seen time is written (not on every request: fewer writes).
TOUCH_EVERY = timedelta(seconds=30)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Signed:
    """A signed-in browser: the session row and its user."""

    web: WebSession
    user: User


def start(session: Session, user: User, client: str | None) -> tuple[str, WebSession]:
    """A new browser session for ``user``; returns the cookie token (shown only now)."""
    if user.role == Role.SYSTEM.value:
        raise AccessRefused("service accounts cannot sign in interactively")
    token, now = secrets.token_urlsafe(32), utcnow()
    web = WebSession(
        id=_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        client=(client or "")[:64] or None,
        created_at=now,
        last_seen_at=now,
    )
    session.add(web)
    session.flush()
    return token, web


def resume(session: Session, token: str, settings: Settings) -> Signed | None:
    """The live session behind a cookie token, or None (an expired one is ended, audited)."""
    web = session.get(WebSession, _digest(token))
    if web is None or web.ended_at is not None:
        return None
    user = session.get(User, web.user_id)
    now = utcnow()
    idle = now - web.last_seen_at > timedelta(minutes=settings.session_idle_minutes)
    old = now - web.created_at > timedelta(hours=settings.session_max_hours)
    if user is None or not user.active or idle or old:
        end(session, web, "idle timeout" if idle else "session expired")
        return None
    if now - web.last_seen_at > TOUCH_EVERY:
        web.last_seen_at = now
    return Signed(web, user)


def end(session: Session, web: WebSession, reason: str = "signed out") -> None:
    """End a session (audited)."""
    web.ended_at = utcnow()
    user = session.get(User, web.user_id)
    if user is not None:
        emit(
            session,
            SignedOut(object_type="users", object_ids=[user.id], reason=reason),
            actor_of(user),
        )


def choose_purpose(
    session: Session,
    signed: Signed,
    purpose: str,
    justification: str | None = None,
    case_ref: str | None = None,
    request_ref: str | None = None,
) -> Purpose:
    """Declare the purpose of the session's work; refused if the role may not work under it."""
    try:
        chosen = Purpose(purpose)
    except ValueError:
        raise ValidationFailed(f"unknown purpose {purpose!r}") from None
    role = Role(signed.user.role)
    if chosen not in ROLES[role].purposes:
        allowed = ", ".join(sorted(ROLES[role].purposes))
        raise AccessRefused(
            f"role {role.value!r} may not work under {purpose!r} (allowed: {allowed})"
        )
    web = signed.web
    web.purpose = chosen.value
    web.justification = (justification or "").strip()[:500] or None
    web.case_ref = (case_ref or "").strip()[:64] or None
    web.request_ref = (request_ref or "").strip()[:64] or None
    emit(
        session,
        PurposeChosen(
            object_type="users",
            object_ids=[signed.user.id],
            purpose=chosen.value,
            case_ref=web.case_ref,
            justification=web.justification,
        ),
        actor_of(signed.user),
    )
    return chosen


def create_token(session: Session, user: User, name: str, days: int) -> tuple[str, ApiToken]:
    """A new API token for ``user``; returns the token text (shown only now)."""
    if not name.strip():
        raise ValidationFailed("an API token needs a name saying which client uses it")
    token, now = TOKEN_PREFIX + secrets.token_urlsafe(32), utcnow()
    row = ApiToken(
        id=new_id("tok"),
        user_id=user.id,
        name=name.strip()[:100],
        token_hash=_digest(token),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    session.add(row)
    session.flush()
    emit(
        session,
        ApiTokenCreated(
            object_type="api_tokens",
            object_ids=[row.id],
            name=row.name,
            expires_at=row.expires_at.isoformat(),
        ),
        actor_of(user),
    )
    return token, row


def user_for_token(session: Session, token: str) -> User | None:
    """The active user a live API token stands for, or None."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at < now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if row.last_used_at is None or now - row.last_used_at > TOUCH_EVERY:
        row.last_used_at = now
    return user


def tokens_of(session: Session, user: User) -> list[ApiToken]:
    """A user's API tokens, newest first."""
    stmt = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    return list(session.scalars(stmt))


def revoke_token(session: Session, user: User, token_id: str) -> ApiToken:
    """Revoke one of the user's own tokens (audited)."""
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"no API token {token_id!r} of yours")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        emit(
            session, ApiTokenRevoked(object_type="api_tokens", object_ids=[row.id]), actor_of(user)
        )
    return row


class Throttle:
    """At most ``limit`` sign-in attempts per client per ``window`` seconds (in memory).

    Complements the per-account lockout: the lockout stops guessing one password, this stops
    one client trying many accounts. Per process; behind several workers each counts alone.
    """

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 if an attempt from ``client`` may go ahead now, else seconds until one may."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(client, deque())
            while seen and now - seen[0] > self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return self.window - (now - seen[0])
            seen.append(now)
            return 0.0
