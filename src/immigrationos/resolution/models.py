"""What entity resolution stores: models, runs (person-index versions), reviews and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData


class ResolutionModel(Base):
    """A trained matching model: Splink parameters, thresholds, blocking analysis, training."""

    __tablename__ = "resolution_models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    trained_at: Mapped[datetime] = mapped_column(default=utcnow)
    trained_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    origin: Mapped[str] = mapped_column(String(32), default="trained")
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ResolutionRun(Base):
    """One resolution run; its id is the version of the person index it produced."""

    __tablename__ = "resolution_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(40), ForeignKey("resolution_models.id"))
    backend: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")
    records: Mapped[int] = mapped_column(Integer, default=0)
    pairs: Mapped[int] = mapped_column(Integer, default=0)
    persons: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))


class MatchReview(PersonalData, Base):
    """A pair of records in the uncertain band, waiting for (or holding) a human decision.

    A decision is kept for good: ``match`` is a must-link and ``non-match`` a cannot-link on
    every later run; ``unsure`` leaves the pair to the model (below the link weight, apart).
    """

    __tablename__ = "match_reviews"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_l: Mapped[str] = mapped_column(String(64), ForeignKey("source_records.id"), index=True)
    record_r: Mapped[str] = mapped_column(String(64), ForeignKey("source_records.id"), index=True)
    match_weight: Mapped[float] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column()
    run_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("resolution_runs.id"))
    model_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PersonEvent(PersonalData, Base):
    """A change in the person index: created, merged (with redirect), split, or relinked.

    A split that separates a case from some of its person's records sets ``needs_review``
    and holds the case (``cases.identity_hold``) until someone reviews the event.
    """

    __tablename__ = "person_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(40), ForeignKey("resolution_runs.id"))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    person_id: Mapped[str] = mapped_column(String(40), index=True)
    related_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    case_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewed_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column()
    at: Mapped[datetime] = mapped_column(default=utcnow)
