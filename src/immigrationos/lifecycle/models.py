"""Cases and what happens to them: events, documents, action requests and approvals.

A case's state changes only through events; action requests wait for a different user's
approval; documents are immutable versions identified by their content hash.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
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
    remembered_state: Mapped[str | None] = mapped_column(String(32))
    """The state a citizenship review interrupted, to return to if the claim is rejected."""
    opened_reason: Mapped[str | None] = mapped_column(Text)
    table_version: Mapped[str | None] = mapped_column(String(32))


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
    request_id: Mapped[str | None] = mapped_column(String(40))
    custody_from: Mapped[str | None] = mapped_column(String(24))
    custody_to: Mapped[str | None] = mapped_column(String(24))
    checks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """The guard checks as they stood when the step was applied."""


class CaseCondition(PersonalData, Base):
    """A legal condition beside the state: a stay, an appeal, a protection grant, a claim.

    Guards read conditions (a pending appeal stays removal; a protection grant bars one
    country). They are opened and ended only by transitions, each end kept with its event.
    """

    __tablename__ = "case_conditions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    country: Mapped[str | None] = mapped_column(String(3))
    form: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    opened_event_id: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column()
    ended_event_id: Mapped[str | None] = mapped_column(String(64))


class CaseDeadline(PersonalData, Base):
    """A time limit on a case; the scheduler applies each one exactly once when it falls due."""

    __tablename__ = "case_deadlines"
    __table_args__ = (Index("ix_case_deadlines_status_due", "status", "due_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="open")
    rule: Mapped[str] = mapped_column(Text)
    """How the due time was computed (start, count, roll), in words."""
    created_event_id: Mapped[str | None] = mapped_column(String(64))
    applied_at: Mapped[datetime | None] = mapped_column()
    applied_event_id: Mapped[str | None] = mapped_column(String(64))


class Document(PersonalData, Base):
    """A rendered legal document version; never edited, superseded by a new version."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    person_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, default=1)
    template_version: Mapped[str] = mapped_column(String(64))
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
    document_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    checks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """Guard checks at request time."""
    decided_at: Mapped[datetime | None] = mapped_column()
    executed_at: Mapped[datetime | None] = mapped_column()
    executed_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    outcome: Mapped[str | None] = mapped_column(Text)


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
    role: Mapped[str | None] = mapped_column(String(32))


class EnforcementOperation(PersonalData, Base):
    """A planned operation grouping action requests; every target is re-checked at approval
    and again at execution, and a blocked target drops out with the reason."""

    __tablename__ = "enforcement_operations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    office: Mapped[str | None] = mapped_column(String(64))
    planned_for: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="draft")
    justification: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    executed_at: Mapped[datetime | None] = mapped_column()
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TravelDocument(PersonalData, Base):
    """A travel document asked of a destination's consulate: requested, issued or refused."""

    __tablename__ = "travel_documents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    country: Mapped[str] = mapped_column(String(3))
    consulate: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="requested")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    requested_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    document_no: Mapped[str | None] = mapped_column(String(40))
    valid_until: Mapped[date | None] = mapped_column()


class RemovalFlight(Base):
    """A removal flight (charter or commercial seats): no personal data until seats are taken."""

    __tablename__ = "removal_flights"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    carrier: Mapped[str] = mapped_column(String(64))
    flight_no: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(64))
    destination: Mapped[str] = mapped_column(String(3))
    departs_at: Mapped[datetime] = mapped_column()
    capacity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    created_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    departed_at: Mapped[datetime | None] = mapped_column()


class FlightSeat(PersonalData, Base):
    """A case's seat on a removal flight, with every passenger check as it stood."""

    __tablename__ = "flight_seats"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    flight_id: Mapped[str] = mapped_column(String(40), ForeignKey("removal_flights.id"), index=True)
    case_id: Mapped[str] = mapped_column(String(40), ForeignKey("cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="assigned")
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    checks: Mapped[list[Any]] = mapped_column(JSON, default=list)
