"""Source systems, the agreements that allow their use, ingest batches and source records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData, Timestamped


class Source(Timestamped, Base):
    """A system records come from (arrivals, court, encounters, …), as registered."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    format: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class DataSharingAgreement(Timestamped, Base):
    """The legal basis for using a source: authority, purposes, fields, retention, prerequisites.

    Versioned: registering a changed agreement adds a version; reads use the one in force.
    """

    __tablename__ = "agreements"
    __table_args__ = (UniqueConstraint("source_id", "version"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), ForeignKey("sources.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    legal_authority: Mapped[str] = mapped_column(Text)
    permitted_purposes: Mapped[list[str]] = mapped_column(JSON)
    allowed_fields: Mapped[list[str]] = mapped_column(JSON)
    retention_days: Mapped[int] = mapped_column(Integer)
    prerequisites: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    effective_from: Mapped[date] = mapped_column()
    effective_until: Mapped[date | None] = mapped_column()
    registered_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))


class IngestBatch(Base):
    """One ingest run of one input into one source, with its reconciled report."""

    __tablename__ = "ingest_batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), ForeignKey("sources.id"), index=True)
    agreement_id: Mapped[str] = mapped_column(String(64), ForeignKey("agreements.id"))
    input_uri: Mapped[str] = mapped_column(Text)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")
    read_count: Mapped[int] = mapped_column(Integer, default=0)
    loaded_count: Mapped[int] = mapped_column(Integer, default=0)
    unchanged_count: Mapped[int] = mapped_column(Integer, default=0)
    quarantined_count: Mapped[int] = mapped_column(Integer, default=0)
    quarantine_reasons: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dropped_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))


class SourceRecord(PersonalData, Base):
    """One row of a source, immutable. A changed row becomes a new version, never an update.

    The id is derived from the source, the record's key and its content hash, so ingesting the
    same row twice finds the same id and adds nothing.
    """

    __tablename__ = "source_records"
    __table_args__ = (
        UniqueConstraint("source_id", "record_key", "version"),
        Index("ix_source_records_source_key", "source_id", "record_key"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), ForeignKey("sources.id"))
    record_key: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    batch_id: Mapped[str] = mapped_column(String(64), ForeignKey("ingest_batches.id"), index=True)
    supersedes_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("source_records.id"))
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)
