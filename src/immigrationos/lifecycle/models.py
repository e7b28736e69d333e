"""Cases and what happens to them: events, documents, action requests and approvals.

A case's state changes only through events; action requests wait for a different user's
approval; documents are immutable versions identified by their content hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData, Timestamped


class EnforcementCase(PersonalData, Timestamped, Base):
    """One case about one person, from lead to removal or closure; custody runs beside it."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    state: Mapped[str] = mapped_column(String(32), default="LEAD")
    track: Mapped[str] = mapped_column(String(32), default="removal-240")
    custody: Mapped[str] = mapped_column(String(24), default="not-detained")
    office: Mapped[str | None] = mapped_column(String(64), index=True)
    assigned_to: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    opened_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column()
    identity_hold: Mapped[str | None] = mapped_column(Text)
    """Set when entity resolution split this case's person: no step until reviewed."""
    version: Mapped[int] = mapped_column(Integer, default=1)


class CaseEvent(PersonalData, Base):
    """Something that happened to a case: a transition, a note, a deadline applied."""

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Document(PersonalData, Base):
    """A rendered legal document version; never edited, superseded by a new version."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    person_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    template_version: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    content_sha256: Mapped[str] = mapped_column(String(64))
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    supersedes_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("documents.id"))
    created_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActionRequest(PersonalData, Base):
    """An enforcement action one user asks for; it takes effect only once another approves."""

    __tablename__ = "action_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    operation_id: Mapped[str | None] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    justification: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()


class Approval(PersonalData, Base):
    """A supervisor's decision on a request, with the guard checks as they stood at that moment."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("action_requests.id"), index=True
    )
    decision: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    justification: Mapped[str] = mapped_column(Text)
    guard_checks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column()
