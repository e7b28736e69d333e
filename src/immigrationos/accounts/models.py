"""Users and roles. A user holds exactly one role, so separation of duties is structural."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.store.base import Base, Timestamped


class RoleRow(Base):
    """A role of ``docs/glossary.md`` (seeded by the migrations from :mod:`.roles`)."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str] = mapped_column(String(500))
    reads_personal_data: Mapped[bool] = mapped_column(Boolean)


class User(Timestamped, Base):
    """A person (or service) who signs in. Passwords are stored only as argon2id hashes."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32), ForeignKey("roles.name"))
    office: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()


class WebSession(Base):
    """A browser sign-in. The cookie holds a random token; only its SHA-256 is stored here.

    The purpose the user works under lives on the session so every page shows it and every
    read records it; it can change at any time (audited) without signing in again.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    user_id: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str | None] = mapped_column(String(40))
    justification: Mapped[str | None] = mapped_column(String(500))
    case_ref: Mapped[str | None] = mapped_column(String(64))
    request_ref: Mapped[str | None] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()


class ApiToken(Base):
    """A bearer token for a machine client, acting as the user who created it.

    Shown once at creation; only its SHA-256 is stored. Expires, and can be revoked.
    """

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
