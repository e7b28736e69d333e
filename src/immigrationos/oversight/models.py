"""Redress: a person's representative disputes a fact; the decision is recorded with reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData


class RedressRequest(PersonalData, Base):
    """A correction request about a person's record and its decision.

    Filed by a representative from outside the agency (no account: ``filed_by`` stays empty)
    with the person's identifying details as given (``subject``) and the facts disputed as
    given (``disputed``); a privacy officer links it to a person of the index, marks the
    specific facts (:class:`DisputedFact`) and decides with reasons. ``tracking_hash`` is the
    SHA-256 of the one-time tracking code the requester was given (the code is never kept).
    """

    __tablename__ = "redress_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    requester_name: Mapped[str] = mapped_column(String(200))
    requester_contact: Mapped[str | None] = mapped_column(String(200))
    disputed: Mapped[list[Any]] = mapped_column(JSON, default=list)
    claim: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="filed")
    filed_at: Mapped[datetime] = mapped_column(default=utcnow)
    filed_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    decided_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    decision_reasons: Mapped[str | None] = mapped_column(Text)
    requester_authority: Mapped[str | None] = mapped_column(String(200))
    subject: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tracking_hash: Mapped[str | None] = mapped_column(String(64))
    linked_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    linked_at: Mapped[datetime | None] = mapped_column()
    decision: Mapped[str | None] = mapped_column(String(24))
    decision_plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DisputedFact(PersonalData, Base):
    """One fact of a person's record marked as disputed under a redress request.

    ``kind`` says what is disputed (``record_link``: "this record is not me";
    ``identifier``; ``attribute``: a name, birth date, sex or nationality as one record gives
    it; or a fact row: ``conviction``, ``admission``, ``encounter``, ``benefit``,
    ``court_case``, ``departure``, ``address``, ``status``); ``table_name`` and ``row_id``
    name the row, ``record_id`` the source record it came from. While ``disputed`` the fact
    is left out of prioritization and automated matching; ``accepted`` keeps it out for
    good (with ``corrected_value`` overriding the source's value where one is given);
    ``rejected`` lifts the exclusion.
    """

    __tablename__ = "disputed_facts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("redress_requests.id"), index=True
    )
    person_id: Mapped[str] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    table_name: Mapped[str] = mapped_column(String(48))
    row_id: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(64), index=True)
    source_id: Mapped[str | None] = mapped_column(String(64))
    field: Mapped[str | None] = mapped_column(String(48))
    disputed_value: Mapped[str | None] = mapped_column(String(200))
    claimed_value: Mapped[str | None] = mapped_column(String(200))
    corrected_value: Mapped[str | None] = mapped_column(String(200))
    item: Mapped[int | None] = mapped_column(Integer)
    """Which of the request's filed items (0-based) this fact answers."""
    status: Mapped[str] = mapped_column(String(16), default="disputed", index=True)
    marked_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()


class RedressLetter(PersonalData, Base):
    """A letter to the requester about a decision (HTML and PDF), kept as versions."""

    __tablename__ = "redress_letters"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    request_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("redress_requests.id"), index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    template_version: Mapped[str] = mapped_column(String(64))
    html: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessAlert(Base):
    """An access anomaly: one rule's finding about one user's use of personal data on one day.

    It keeps what an auditor needs to judge it: the measured value, the baseline and the
    threshold it was compared with, and the evidence (audit sequence numbers and counts).
    No personal data: it names a staff account and audit entries, never a person or a value.
    The id is derived from the rule, the user and the window, so scanning the same window again
    raises nothing new. Only a person's review (``status``, with a note) changes it.
    """

    __tablename__ = "access_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rule: Mapped[str] = mapped_column(String(32), index=True)
    user_id: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    office: Mapped[str | None] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))
    """The user's local working day the window covers (ISO date)."""
    timezone: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(index=True)
    window_end: Mapped[datetime] = mapped_column()
    measured: Mapped[float] = mapped_column()
    baseline: Mapped[float | None] = mapped_column()
    threshold: Mapped[float] = mapped_column()
    summary: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rules_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    raised_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    reviewed_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    review_note: Mapped[str | None] = mapped_column(Text)
