"""Source systems, the agreements that allow their use, ingest batches and source records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
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
    purpose_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retention_days: Mapped[int] = mapped_column(Integer)
    prerequisites: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    effective_from: Mapped[date] = mapped_column()
    effective_until: Mapped[date | None] = mapped_column()
    registered_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))


class IngestBatch(Base):
    """One ingest run of one input into one source, with its reconciled report."""

    __tablename__ = "ingest_batches"
    # What a source record's key refers to: its batch, and through it its source.
    __table_args__ = (Index("ix_ingest_batches_id_source_id", "id", "source_id", unique=True),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), ForeignKey("sources.id"), index=True)
    agreement_id: Mapped[str] = mapped_column(String(64), ForeignKey("agreements.id"))
    input_uri: Mapped[str] = mapped_column(Text)
    input_sha256: Mapped[str | None] = mapped_column(String(64))
    input_header: Mapped[str | None] = mapped_column(Text)
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

    The id is derived from the source, the record's key, its version and its content hash, so
    ingesting the same row twice finds the same id and adds nothing. ``payload`` holds the
    validated values (dates in ISO form, codes mapped, names split); values that cannot serve
    as evidence (placeholders such as "NA NA") are left out of it and listed in ``flags`` with
    what the source said.
    """

    __tablename__ = "source_records"
    __table_args__ = (
        # The unique (source, key, version) index also serves lookups by (source, key).
        UniqueConstraint("source_id", "record_key", "version"),
        # One key, not one to the batch and one to the source: a record's source is its
        # batch's source (which the batch's own key holds to ``sources``). PostgreSQL checks
        # a key with one query per inserted row, and two of them were about half the time a
        # bulk load of records took on the server (docs/benchmarks-ingest.md).
        ForeignKeyConstraint(
            ["batch_id", "source_id"], ["ingest_batches.id", "ingest_batches.source_id"]
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    flags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    row_number: Mapped[int | None] = mapped_column(Integer)
    batch_id: Mapped[str] = mapped_column(String(64), index=True)
    supersedes_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("source_records.id"))
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)


class QuarantinedRow(PersonalData, Base):
    """A row that could not be loaded: why, where, and the bytes exactly as the source sent them.

    Nothing is dropped silently. After a mapping fix, ``immos sources quarantine rerun``
    validates the original bytes again; a row that now loads is marked resolved by that batch.
    """

    __tablename__ = "quarantined_rows"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), ForeignKey("ingest_batches.id"), index=True)
    source_id: Mapped[str] = mapped_column(String(64), ForeignKey("sources.id"), index=True)
    row_number: Mapped[int | None] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(48), index=True)
    message: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolved_by_batch_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("ingest_batches.id")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tombstone(Base):
    """What remains of a record purged at the end of its retention: no personal data at all."""

    __tablename__ = "tombstones"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), ForeignKey("sources.id"), index=True)
    batch_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(64))
    ingested_at: Mapped[datetime] = mapped_column()
    purged_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(200))
    derived_removed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DisclosureRequest(PersonalData, Base):
    """A per-request authorization to use a source whose agreement demands one (tax data).

    It names one person and their address, the periods, the statutory authority and the
    reason, and only its requester may use it, for the purpose it was made under.
    """

    __tablename__ = "disclosure_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), ForeignKey("sources.id"), index=True)
    agreement_id: Mapped[str] = mapped_column(String(64), ForeignKey("agreements.id"))
    purpose: Mapped[str] = mapped_column(String(48))
    requested_by: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"))
    investigation: Mapped[str] = mapped_column(String(100))
    subject: Mapped[dict[str, Any]] = mapped_column(JSON)
    periods: Mapped[list[Any]] = mapped_column(JSON)
    statutory_authority: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
