"""Persons of the index and what attaches directly to them.

A person is what entity resolution concluded from linked source records; its golden-record
columns are a cache of survivorship over those records, each value's provenance in ``golden``.
Citizenship is never overwritten silently: :class:`CitizenshipChange` records every change.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData, Provenance, Timestamped


class Person(PersonalData, Timestamped, Base):
    """One resolved person. ``merged_into_id`` redirects an id retired by a merge."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    merged_into_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"))
    given_name: Mapped[str | None] = mapped_column(String(200))
    middle_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    birth_date: Mapped[date | None] = mapped_column()
    sex: Mapped[str | None] = mapped_column(String(1))
    nationality: Mapped[str | None] = mapped_column(String(3))
    citizenship_status: Mapped[str] = mapped_column(String(24), default="unknown")
    golden: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    index_version: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RecordLink(PersonalData, Base):
    """A source record's membership in a person, with the match evidence behind it."""

    __tablename__ = "record_links"
    __table_args__ = (UniqueConstraint("source_record_id", "person_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_record_id: Mapped[str] = mapped_column(String(64), ForeignKey("source_records.id"))
    person_id: Mapped[str] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    match_probability: Mapped[float | None] = mapped_column(Float)
    match_weight: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str | None] = mapped_column(String(64))
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)
    unlinked_at: Mapped[datetime | None] = mapped_column()


class Identifier(PersonalData, Provenance, Base):
    """An identifier seen for a person: A-number, passport, admission no., FIN, ITIN, court case."""

    __tablename__ = "identifiers"
    __table_args__ = (Index("ix_identifiers_kind_value", "kind", "value"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    value: Mapped[str] = mapped_column(String(64))
    issuing_country: Mapped[str | None] = mapped_column(String(3))
    valid_from: Mapped[date | None] = mapped_column()
    valid_until: Mapped[date | None] = mapped_column()


class StatusEpisode(PersonalData, Provenance, Base):
    """A span in one immigration status (visitor, student, LPR, TPS, DACA, asylum pending, …)."""

    __tablename__ = "status_episodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    basis: Mapped[str | None] = mapped_column(String(64))
    started_on: Mapped[date | None] = mapped_column()
    ended_on: Mapped[date | None] = mapped_column()


class CitizenshipChange(PersonalData, Base):
    """Every change of a person's citizenship status, with who made it and on what evidence."""

    __tablename__ = "citizenship_changes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
