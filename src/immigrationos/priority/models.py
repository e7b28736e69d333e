"""Policies, runs, scores and overrides as stored.

A policy version is immutable once registered (its text and hash are kept); adopting it is a
second person's act, recorded. A run ties one policy version to one person-index version and
date; each score keeps the rules that fired and the evidence records behind them, and the legal
blocks found at run time. Overrides are a person's decision, with a justification, never a
silent edit of a score.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from immigrationos.core.clock import utcnow
from immigrationos.store.base import Base, PersonalData


class PriorityPolicy(Base):
    """One version of a priority policy: its text, who registered it, who adopted it."""

    __tablename__ = "priority_policies"

    id: Mapped[str] = mapped_column(String(96), primary_key=True)
    """``name@version``."""
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[str] = mapped_column(String(24))
    title: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    effective_from: Mapped[date] = mapped_column()
    effective_until: Mapped[date | None] = mapped_column()
    source_document: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approval_record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="registered")
    """registered → adopted → retired (when another version of the same policy is adopted)."""
    registered_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    adopted_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    adopted_at: Mapped[datetime | None] = mapped_column()
    adoption_note: Mapped[str | None] = mapped_column(Text)


class PriorityRun(Base):
    """One evaluation of a policy version over one person-index version, as of a date."""

    __tablename__ = "priority_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    policy_id: Mapped[str] = mapped_column(String(96), ForeignKey("priority_policies.id"))
    index_version: Mapped[str | None] = mapped_column(String(64))
    as_of: Mapped[date] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    run_by: Mapped[str | None] = mapped_column(String(40), ForeignKey("users.id"))
    persons: Mapped[int] = mapped_column(Integer, default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Persons per tier, leads, actionable leads, blocked leads."""
    unavailable: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Features the policy names that were unknown in this run, and why."""
    seconds: Mapped[float | None] = mapped_column(Float)


class PriorityScore(PersonalData, Base):
    """A person's tier and score in one run, with the rules, evidence and blocks behind it."""

    __tablename__ = "priority_scores"
    __table_args__ = (
        # Only leads are ever listed on a worklist, so only leads are indexed: a run writes
        # the index entries of its leads, not of every person (docs/benchmarks.md).
        Index("ix_priority_scores_worklist", "run_id", "office", "actionable", "tier_rank",
              sqlite_where=text("lead = 1"), postgresql_where=text("lead")),
        # SQLite: the rows are stored in the key's b-tree, not beside it, so a run's million
        # rows are written once instead of twice (migration 0011). PostgreSQL: one partition
        # per run, loaded on its own and attached, its keys checked once (migration 0012;
        # store.bulk.insert_partition; docs/benchmarks.md).
        {"sqlite_with_rowid": False, "postgresql_partition_by": "LIST (run_id)"},
    )  # fmt: skip

    run_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("priority_runs.id"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(String(40), ForeignKey("persons.id"), primary_key=True)
    tier: Mapped[str] = mapped_column(String(48))
    tier_rank: Mapped[int] = mapped_column(Integer)
    lead: Mapped[bool] = mapped_column(Boolean)
    actionable: Mapped[bool] = mapped_column(Boolean)
    """A lead with no legal block at run time (re-checked whenever it is shown)."""
    score: Mapped[float] = mapped_column(Float)
    rules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """The ids of the rules that fired, in the policy's order."""
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Per fired rule, the records behind it (``{t, id, src, d}``: table, id, source, date);
    :func:`immigrationos.priority.evaluate.evidence_items` gives them as one list."""
    blocks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    office: Mapped[str | None] = mapped_column(String(64))
    nationality: Mapped[str | None] = mapped_column(String(3))
    age_band: Mapped[str | None] = mapped_column(String(8))


class PriorityOverride(PersonalData, Base):
    """A person's decision to raise or lower someone's tier, with the reason; audited."""

    __tablename__ = "priority_overrides"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(40), ForeignKey("persons.id"), index=True)
    policy_name: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(40), ForeignKey("priority_runs.id"))
    from_tier: Mapped[str] = mapped_column(String(48))
    to_tier: Mapped[str] = mapped_column(String(48))
    direction: Mapped[str] = mapped_column(String(8))
    """raise or lower."""
    justification: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(40), ForeignKey("users.id"))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column()
