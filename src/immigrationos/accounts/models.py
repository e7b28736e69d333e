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
