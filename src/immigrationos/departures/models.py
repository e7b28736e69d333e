"""A departure as the system recorded it, from one event, matched (or not) to a person."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData, Provenance


class Departure(PersonalData, Provenance, Base):
    """One departure event and its match: verified, review or unmatched."""

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
    document_no: Mapped[str | None] = mapped_column(String(32), index=True)
    document_country: Mapped[str | None] = mapped_column(String(3))
    document_expiry: Mapped[date | None] = mapped_column()
    match_band: Mapped[str] = mapped_column(String(16), default="unmatched")
    match_probability: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    confirms_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("departures.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
