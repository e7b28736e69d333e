"""Declarative base, column types and mixins shared by every model.

Conventions: string primary keys (content-derived where the content allows), timezone-aware
UTC timestamps on every backend, JSON columns for structured detail, and a ``PersonalData``
marker on every table that holds data about a person, which the gateway enforces.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Date, DateTime, ForeignKey, MetaData, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from immigrationos.core.clock import utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the backend keeps.

    SQLite has no time zones and returns naive values; PostgreSQL returns the session's zone.
    Normalising here keeps hashes, comparisons and JSON output identical across backends.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a timezone-aware UTC time is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every ImmigrationOS table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        date: Date(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[Any]: JSON(),
        str: String(),
    }


class PersonalData:
    """Marker: rows of this table describe a person; only the gateway may read or write them."""

    __personal_data__: ClassVar[bool] = True


class Timestamped:
    """When the row was created in this system."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Provenance:
    """Where a fact came from: the source record it was derived from, and when it was seen.

    Every ontology fact carries this so lineage can answer "which rows said so?", and so the
    gateway can refuse to serve a fact for a purpose its source's agreement forbids.
    """

    @declared_attr
    def source_record_id(cls) -> Mapped[str | None]:
        return mapped_column(
            String(64), ForeignKey("source_records.id", ondelete="RESTRICT"), index=True
        )

    @declared_attr
    def source_id(cls) -> Mapped[str | None]:
        return mapped_column(String(64), ForeignKey("sources.id"), index=True)

    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


def is_personal(model: type[Any]) -> bool:
    """Whether a mapped class holds personal data (and so must pass through the gateway)."""
    return bool(getattr(model, "__personal_data__", False))
