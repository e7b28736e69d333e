"""Departures: the events that establish them, their matches, and what they changed.

- :class:`Departure`: one departure event as recorded, matched (or not) to a person;
- :class:`InboxEntry`: the inbox keyed by event id, written in the same transaction as the
  effects, which is what makes processing exactly-once under redelivery;
- :class:`DeadLetter`: an event that could not be read, with the reason and the bytes as sent;
- :class:`OverstayAssessment`: the overstay outcome of one admission as of a date, kept as
  history (a late departure record revises an earlier figure, never overwrites it).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData, Provenance


class Departure(PersonalData, Provenance, Base):
    """One departure event and its match: verified, review or unmatched.

    ``confirms_id`` links a manifest or land exit to the self-reported departure it confirms;
    a self-report itself changes nothing until confirmed. ``review_*`` record a person's
    decision on a departure the matcher left for review.
    """

    __tablename__ = "departures"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    reported_at: Mapped[datetime | None] = mapped_column()
    port: Mapped[str | None] = mapped_column(String(64))
    carrier: Mapped[str | None] = mapped_column(String(64))
    flight: Mapped[str | None] = mapped_column(String(16))
    document_type: Mapped[str | None] = mapped_column(String(16))
    document_no: Mapped[str | None] = mapped_column(String(32))
    document_country: Mapped[str | None] = mapped_column(String(3))
    document_expiry: Mapped[date | None] = mapped_column()
    match_band: Mapped[str] = mapped_column(String(16), default="unmatched")
    match_probability: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    confirms_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("departures.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    review_status: Mapped[str | None] = mapped_column(String(16), index=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    review_reason: Mapped[str | None] = mapped_column(Text)


class InboxEntry(Base):
    """An event processed: its id, when, through which transport, and what it changed."""

    __tablename__ = "departure_inbox"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    departure_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    transport: Mapped[str] = mapped_column(String(16))
    band: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column()
    processed_at: Mapped[datetime] = mapped_column(index=True)
    lag_ms: Mapped[float] = mapped_column(Float)
    """Milliseconds from receipt (or publication, over NATS) to commit."""
    effects: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class DeadLetter(Base):
    """An event that could not be read or validated: the reason and the bytes as received."""

    __tablename__ = "departure_dead_letters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str | None] = mapped_column(String(64), index=True)
    transport: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)


class OverstayAssessment(PersonalData, Base):
    """The overstay outcome of one admission as of a date (domain.md §4).

    Outcomes: ``departed-on-time``, ``departed-late`` (out-of-country overstay),
    ``no-departure-record`` (suspected in-country overstay), ``not-an-overstay`` (an
    extension, change or adjustment filed in time), ``in-status`` (the stay has not ended).
    A new row is written when an admission's outcome changes; the row it revises gets
    ``superseded_at``. An assessment is a revisable statistical inference, never an action.
    """

    __tablename__ = "overstay_assessments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    admission_id: Mapped[str] = mapped_column(String(64), ForeignKey("admissions.id"), index=True)
    person_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    as_of: Mapped[date] = mapped_column(index=True)
    outcome: Mapped[str] = mapped_column(String(24), index=True)
    class_of_admission: Mapped[str] = mapped_column(String(8))
    nationality: Mapped[str | None] = mapped_column(String(3))
    admitted_on: Mapped[date] = mapped_column()
    admitted_until: Mapped[date | None] = mapped_column()
    fiscal_year: Mapped[int | None] = mapped_column(Integer, index=True)
    """The fiscal year (October to September) in which the authorized stay ended."""
    departure_id: Mapped[str | None] = mapped_column(String(64))
    departed_on: Mapped[date | None] = mapped_column()
    days_over: Mapped[int | None] = mapped_column(Integer)
    basis: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The evidence: departure record, benefit filed, and why the outcome is what it is."""
    assessed_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(index=True)
