"""Retention: purge source records past their agreement's retention, leaving tombstones.

An agreement lets a source's records be kept for ``retention_days`` after they were ingested;
after that a record, every fact derived from it and every record link to it must go, and so
must a person who was known only from such records. Planning is separate from doing (style
lesson 4): :func:`plan_retention` only reads and counts, so a dry run, the API and tests can
show exactly what would be removed; :func:`apply_retention` carries the plan out in the
caller's transaction. A plan is criteria (source, cutoff), not a list of ids: anything
ingested after it was made is younger than its cutoff, so applying it later removes no more.

Derived tables are found from the metadata (every table with a ``source_record_id`` column),
so a new fact table is covered without a change here. A tombstone keeps the proof that a
record existed and was purged (ids, hash, times, counts) and none of its personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    delete,
    exists,
    false,
    or_,
    select,
    update,
)

from immigrationos.audit.chain import emit
from immigrationos.audit.events import AuditEvent
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound
from immigrationos.gateway.core import Gateway
from immigrationos.persons.models import Person, RecordLink
from immigrationos.resolution.models import MatchReview
from immigrationos.sources.mapping import table_model
from immigrationos.sources.models import (
    DataSharingAgreement,
    QuarantinedRow,
    Source,
    SourceRecord,
    Tombstone,
)
from immigrationos.sources.registry import agreement_in_force
from immigrationos.store.base import Base

#: Golden-record columns of a person: a cache of survivorship over linked records, so a
#: person left with no records keeps none of them.
GOLDEN_COLUMNS = ("given_name", "middle_name", "family_name", "birth_date", "sex", "nationality")
_BULK = {"synchronize_session": False}


class RetentionPurged(AuditEvent):
    """Source records past their agreement's retention were purged, leaving tombstones.

    Counts only: per source, the records, the derived rows per table and the quarantined rows
    removed; and how many persons left without records were deleted or marked purged.
    """

    action = "retention.purged"
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    persons_deleted: int = 0
    persons_marked_purged: int = 0


def derived_tables() -> list[Table]:
    """Every table of rows derived from source records, children before parents."""
    tables = reversed(Base.metadata.sorted_tables)
    return [t for t in tables if "source_record_id" in t.c]


@dataclass(frozen=True)
class SourcePlan:
    """What retention would remove from one source, and under which agreement terms."""

    source_id: str
    agreement_version: int
    retention_days: int
    cutoff: datetime
    records: int = 0
    derived: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0

    @property
    def reason(self) -> str:
        """Why the records go, as their tombstones say."""
        return (
            f"retention: agreement v{self.agreement_version} of {self.source_id} keeps "
            f"records {self.retention_days} days"
        )

    def expired(self) -> ColumnElement[bool]:
        """Which source records are past retention (every version judged by its own age)."""
        return and_(
            SourceRecord.source_id == self.source_id, SourceRecord.ingested_at < self.cutoff
        )

    def expired_ids(self) -> Select[Any]:
        """The ids of those records, as a subquery."""
        return select(SourceRecord.id).where(self.expired())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source_id": self.source_id,
            "agreement_version": self.agreement_version,
            "retention_days": self.retention_days,
            "cutoff": self.cutoff.isoformat(),
            "records": self.records,
            "derived": dict(self.derived),
            "quarantined": self.quarantined,
        }


@dataclass(frozen=True)
class RetentionPlan:
    """What a retention run would purge, per source, as of ``now``."""

    now: datetime
    sources: tuple[SourcePlan, ...]
    persons_left_without_records: int = 0

    @property
    def empty(self) -> bool:
        """Whether the run would remove nothing at all."""
        return not any(s.records or s.quarantined for s in self.sources)

    def expired(self) -> ColumnElement[bool]:
        """Source records past retention in any planned source."""
        return or_(*(s.expired() for s in self.sources)) if self.sources else false()

    def describe(self) -> str:
        """The plan for people: per source, its terms and what would go."""
        lines = [f"retention plan as of {self.now.isoformat(timespec='seconds')}:"]
        lines += [_describe_source(s) for s in self.sources] or ["  no source has an agreement"]
        lines.append(f"  persons left without any record: {self.persons_left_without_records}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "now": self.now.isoformat(),
            "sources": [s.as_dict() for s in self.sources],
            "persons_left_without_records": self.persons_left_without_records,
        }


def _describe_source(plan: SourcePlan) -> str:
    derived = ", ".join(f"{t} {n}" for t, n in plan.derived.items()) or "none"
    return (
        f"  {plan.source_id}: agreement v{plan.agreement_version} keeps records "
        f"{plan.retention_days} days; expired: ingested before "
        f"{plan.cutoff.isoformat(timespec='seconds')}\n"
        f"    {plan.records} records; derived rows: {derived}; "
        f"{plan.quarantined} quarantined rows"
    )


@dataclass(frozen=True)
class SourcePurge:
    """What retention removed from one source."""

    source_id: str
    records: int
    derived: dict[str, int]
    quarantined: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the audit event's per-source counts)."""
        return {"records": self.records, "derived": self.derived, "quarantined": self.quarantined}


@dataclass(frozen=True)
class RetentionResult:
    """What a retention run removed."""

    purged_at: datetime
    sources: tuple[SourcePurge, ...]
    persons_deleted: int = 0
    persons_marked_purged: int = 0
    supersedes_cleared: int = 0

    @property
    def records(self) -> int:
        """Source records purged in all sources."""
        return sum(s.records for s in self.sources)

    def describe(self) -> str:
        """The result for people."""
        lines = [f"retention run at {self.purged_at.isoformat(timespec='seconds')}:"]
        for s in self.sources:
            derived = ", ".join(f"{t} {n}" for t, n in s.derived.items()) or "none"
            lines.append(f"  {s.source_id}: purged {s.records} records, tombstones left")
            lines.append(f"    derived rows: {derived}; {s.quarantined} quarantined rows")
        lines.append(
            f"  persons deleted: {self.persons_deleted}; marked purged (still referenced): "
            f"{self.persons_marked_purged}"
        )
        lines.append(f"  newer versions unlinked from purged ones: {self.supersedes_cleared}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "purged_at": self.purged_at.isoformat(),
            "sources": {s.source_id: s.as_dict() for s in self.sources},
            "persons_deleted": self.persons_deleted,
            "persons_marked_purged": self.persons_marked_purged,
            "supersedes_cleared": self.supersedes_cleared,
        }


def _params(now: datetime, source_id: str | None, step: str) -> dict[str, Any]:
    return {"retention-run": now.isoformat(), "source": source_id, "step": step}


# --- planning -------------------------------------------------------------------------------


def _agreements(gateway: Gateway, source_id: str | None) -> list[DataSharingAgreement]:
    session = gateway.session
    if source_id is not None and session.get(Source, source_id) is None:
        raise NotFound(f"no source {source_id!r}")
    ids = [source_id] if source_id else session.scalars(select(Source.id).order_by(Source.id))
    found = (agreement_in_force(session, s) for s in ids)
    return [a for a in found if a is not None]


def _plan_source(gateway: Gateway, agreement: DataSharingAgreement, now: datetime) -> SourcePlan:
    cutoff = now - timedelta(days=agreement.retention_days)
    plan = SourcePlan(agreement.source_id, agreement.version, agreement.retention_days, cutoff)
    params = _params(now, plan.source_id, "plan")
    records = gateway.count(SourceRecord, plan.expired(), params=params)
    quarantined = gateway.count(
        QuarantinedRow,
        QuarantinedRow.source_id == plan.source_id,
        QuarantinedRow.created_at < cutoff,
        params=params,
    )
    derived = _count_derived(gateway, plan, params) if records else {}
    return replace(plan, records=records, derived=derived, quarantined=quarantined)


def _count_derived(gateway: Gateway, plan: SourcePlan, params: dict[str, Any]) -> dict[str, int]:
    counts = {}
    for table in derived_tables():
        where = table.c.source_record_id.in_(plan.expired_ids())
        counts[table.name] = gateway.count(table_model(table.name), where, params=params)
    return {name: n for name, n in counts.items() if n}


def _orphans(plan: RetentionPlan) -> Select[Any]:
    """Persons whose every active record link points to an expired record."""
    expired = select(SourceRecord.id).where(plan.expired())
    active = RecordLink.unlinked_at.is_(None)
    touched = select(RecordLink.person_id).where(active, RecordLink.source_record_id.in_(expired))
    kept = select(RecordLink.person_id).where(active, RecordLink.source_record_id.not_in(expired))
    return select(Person.id).where(Person.id.in_(touched), Person.id.not_in(kept))


def plan_retention(
    gateway: Gateway, now: datetime | None = None, source_id: str | None = None
) -> RetentionPlan:
    """What a retention run would purge as of ``now``; reads and counts only (audited)."""
    now = now or utcnow()
    sources = tuple(_plan_source(gateway, a, now) for a in _agreements(gateway, source_id))
    plan = RetentionPlan(now, sources)
    if not any(s.records for s in sources):
        return plan
    orphans = gateway.count(
        Person, Person.id.in_(_orphans(plan)), params=_params(now, source_id, "plan")
    )
    return replace(plan, persons_left_without_records=orphans)


# --- applying -------------------------------------------------------------------------------


def _detach(gateway: Gateway, doomed: Select[Any], params: dict[str, Any]) -> None:
    """Unlink surviving facts from facts about to go (a departure confirming another)."""
    tables = {t.name: t for t in derived_tables()}
    for table in tables.values():
        for fk in table.foreign_keys:
            target = fk.column.table
            if target.name not in tables or not fk.parent.nullable:
                continue
            gone = select(target.c.id).where(target.c.source_record_id.in_(doomed))
            stmt = update(table).where(fk.parent.in_(gone), table.c.source_record_id.not_in(doomed))
            # keyed by column, not name, so the gateway's audit can name the field
            stmt = stmt.values({fk.parent: None}).execution_options(**_BULK)
            gateway.execute(stmt, table_model(table.name), params=params)


def _delete_dependents(
    gateway: Gateway, doomed: Select[Any], params: dict[str, Any]
) -> dict[str, int]:
    """Rows computed from records or facts about to go that carry no source record of their
    own (a match review of a purged record, an overstay assessment of a purged admission):
    they go with them."""
    derived = {t.name: t for t in derived_tables()}
    removed: dict[str, int] = {}
    reviews: Table = MatchReview.__table__  # type: ignore[assignment]  # a purged record's pair
    stmt = delete(reviews).where(
        or_(reviews.c.record_l.in_(doomed), reviews.c.record_r.in_(doomed))
    )
    removed[reviews.name] = gateway.execute(
        stmt.execution_options(**_BULK), MatchReview, params=params
    )
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in derived:
            continue
        for fk in table.foreign_keys:
            target = derived.get(fk.column.table.name)
            if target is None:
                continue
            gone = select(target.c.id).where(target.c.source_record_id.in_(doomed))
            stmt = delete(table).where(fk.parent.in_(gone)).execution_options(**_BULK)
            count = gateway.execute(stmt, table_model(table.name), params=params)
            removed[table.name] = removed.get(table.name, 0) + count
    return removed


def _delete_derived(gateway: Gateway, plan: SourcePlan, params: dict[str, Any]) -> dict[str, int]:
    doomed = plan.expired_ids()
    _detach(gateway, doomed, params)
    removed = _delete_dependents(gateway, doomed, params)
    for table in derived_tables():  # children before parents (court facts chain by FK)
        stmt = delete(table).where(table.c.source_record_id.in_(doomed)).execution_options(**_BULK)
        removed[table.name] = gateway.execute(stmt, table_model(table.name), params=params)
    return {name: n for name, n in removed.items() if n}


def _delete_quarantine(gateway: Gateway, plan: SourcePlan, params: dict[str, Any]) -> int:
    stmt = delete(QuarantinedRow).where(
        QuarantinedRow.source_id == plan.source_id, QuarantinedRow.created_at < plan.cutoff
    )
    return gateway.execute(stmt.execution_options(**_BULK), QuarantinedRow, params=params)


def _tombstones(gateway: Gateway, plan: SourcePlan, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Tombstone rows for a source's expired records (read before anything is removed)."""
    columns = (SourceRecord.id, SourceRecord.batch_id, SourceRecord.content_hash)
    stmt = select(*columns, SourceRecord.ingested_at).where(plan.expired())
    rows = gateway.rows(stmt, SourceRecord, params=params)
    return [
        {
            "id": r.id,
            "source_id": plan.source_id,
            "batch_id": r.batch_id,
            "content_hash": r.content_hash,
            "ingested_at": r.ingested_at,
            "reason": plan.reason,
        }
        for r in rows
    ]


def _write_tombstones(
    gateway: Gateway,
    rows: list[dict[str, Any]],
    derived: dict[str, int],
    plan: SourcePlan,
    now: datetime,
) -> None:
    """Insert tombstones; one left by an earlier purge of the same id is replaced."""
    if not rows:
        return
    purged_at, params = utcnow(), _params(now, plan.source_id, "tombstones")
    stmt = delete(Tombstone).where(Tombstone.id.in_(plan.expired_ids()))
    gateway.execute(stmt.execution_options(**_BULK), Tombstone, params=params)
    rows = [{**r, "purged_at": purged_at, "derived_removed": derived} for r in rows]
    gateway.insert_rows(Tombstone, rows)


def _purge_source(gateway: Gateway, plan: SourcePlan, now: datetime) -> SourcePurge:
    """Remove a source's derived rows and old quarantine, and tombstone its records."""
    params = _params(now, plan.source_id, "purge")
    tombstones = _tombstones(gateway, plan, params) if plan.records else []
    derived = _delete_derived(gateway, plan, params) if plan.records else {}
    quarantined = _delete_quarantine(gateway, plan, params) if plan.quarantined else 0
    _write_tombstones(gateway, tombstones, derived, plan, now)
    return SourcePurge(plan.source_id, len(tombstones), derived, quarantined)


def _unreferenced() -> list[ColumnElement[bool]]:
    """Conditions true of a person no row of any table points at."""
    persons = Person.__table__
    conditions: list[ColumnElement[bool]] = []
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column is persons.c.id:
                other = table.alias() if table is persons else table
                conditions.append(~exists().where(other.c[fk.parent.name] == persons.c.id))
    return conditions


def _settle_persons(gateway: Gateway, ids: list[str], params: dict[str, Any]) -> tuple[int, int]:
    """Delete persons left without records; one still referenced is marked purged instead."""
    if not ids:
        return 0, 0
    for table in derived_tables():  # facts no longer supported by a linked record
        if "person_id" in table.c and table.c.person_id.nullable:
            stmt = update(table).where(table.c.person_id.in_(ids)).values({table.c.person_id: None})
            gateway.execute(stmt.execution_options(**_BULK), table_model(table.name), params=params)
    unreferenced = delete(Person).where(Person.id.in_(ids), *_unreferenced())
    deleted = gateway.execute(unreferenced.execution_options(**_BULK), Person, params=params)
    cleared: dict[str, Any] = {name: None for name in GOLDEN_COLUMNS}
    marked = update(Person).where(Person.id.in_(ids)).values(status="purged", golden={}, **cleared)
    return deleted, gateway.execute(marked.execution_options(**_BULK), Person, params=params)


def _delete_records(gateway: Gateway, plan: RetentionPlan, now: datetime) -> int:
    """Unlink newer versions from purged ones, then delete the records; how many unlinked."""
    expired = select(SourceRecord.id).where(plan.expired())
    unlink = update(SourceRecord).where(SourceRecord.supersedes_id.in_(expired), ~plan.expired())
    unlink = unlink.values(supersedes_id=None).execution_options(**_BULK)
    cleared = gateway.execute(unlink, SourceRecord, params=_params(now, None, "unlink-versions"))
    for source in (s for s in plan.sources if s.records):
        stmt = delete(SourceRecord).where(source.expired()).execution_options(**_BULK)
        gateway.execute(stmt, SourceRecord, params=_params(now, source.source_id, "records"))
    return cleared


def apply_retention(gateway: Gateway, plan: RetentionPlan) -> RetentionResult:
    """Carry out a plan in the caller's transaction; every delete is audited, then the run."""
    params = _params(plan.now, None, "persons")
    orphans: list[str] = []
    if any(s.records for s in plan.sources):
        orphans = [r.id for r in gateway.rows(_orphans(plan), Person, params=params)]
    purges = tuple(_purge_source(gateway, s, plan.now) for s in plan.sources)
    deleted, marked = _settle_persons(gateway, orphans, params)
    cleared = _delete_records(gateway, plan, plan.now)
    result = RetentionResult(utcnow(), purges, deleted, marked, cleared)
    event = RetentionPurged(
        object_type="source_records",
        sources={p.source_id: p.as_dict() for p in purges},
        persons_deleted=deleted,
        persons_marked_purged=marked,
    )
    emit(gateway.session, event, gateway.ctx)
    return result
