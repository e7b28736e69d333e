"""Redress: a person's representative disputes a fact; the decision is recorded with reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData


class RedressRequest(PersonalData, Base):
    """A correction request about a person's record and its decision."""

    __tablename__ = "redress_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
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
