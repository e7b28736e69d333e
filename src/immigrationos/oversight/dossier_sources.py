"""The dossier's data sections: sources under their agreements, and attributes absent by design.

Article 10 asks where the data comes from and under which terms; the answer is the registered
sources, each agreement in force (authority, purposes, fields, retention, prerequisites) and
what ingest did with the rows. The other half of the answer is what the system never holds:
the prohibited attributes, checked now against the live schema, the registered sources'
fields, the feature catalogue and every registered policy rather than asserted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from immigrationos.core.clock import utcnow
from immigrationos.priority.catalogue import FEATURES, PROHIBITED, prohibited_reason
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.models import DataSharingAgreement, IngestBatch, Source, Tombstone

#: Names of never-held attributes, as the schema test spells them (tests/store/test_schema.py).
NEVER_HELD = re.compile(
    r"race|ethnic|religio|faith|sexual|orientation|gender_identity|political|opinion|"
    r"speech|social|twitter|facebook|instagram|tiktok|associat|affiliat|gang|tribe|caste"
)


# -- sources and agreements -------------------------------------------------------------------


def _agreement(a: DataSharingAgreement, today: date, users: dict[str, str]) -> dict[str, Any]:
    until = a.effective_until
    return {
        "id": a.id,
        "version": a.version,
        "legal_authority": a.legal_authority,
        "permitted_purposes": sorted(a.permitted_purposes),
        "allowed_fields": list(a.allowed_fields),
        "purpose_fields": dict(a.purpose_fields or {}),
        "retention_days": a.retention_days,
        "prerequisites": dict(a.prerequisites or {}),
        "effective_from": a.effective_from.isoformat(),
        "effective_until": until.isoformat() if until is not None else None,
        "effective_today": a.effective_from <= today and (until is None or today < until),
        "registered_by": users.get(a.registered_by or "", a.registered_by),
        "registered_at": a.created_at.isoformat(timespec="seconds"),
    }


def _ingest_row(
    n: int = 0,
    read: int | None = 0,
    loaded: int | None = 0,
    unchanged: int | None = 0,
    quarantined: int | None = 0,
    last: Any = None,
) -> dict[str, Any]:
    """One source's ingest totals (sums are None over no rows on some backends)."""
    return {
        "batches": int(n or 0),
        "read": int(read or 0),
        "loaded": int(loaded or 0),
        "unchanged": int(unchanged or 0),
        "quarantined": int(quarantined or 0),
        "last_finished_at": last.isoformat(timespec="seconds") if last else None,
        "quarantine_reasons": {},
    }


def _batch_totals(session: Session) -> dict[str, dict[str, Any]]:
    """Ingest totals per source, with the quarantine reasons summed over its batches."""
    b = IngestBatch
    sums = select(
        b.source_id,
        func.count(),
        func.sum(b.read_count),
        func.sum(b.loaded_count),
        func.sum(b.unchanged_count),
        func.sum(b.quarantined_count),
        func.max(b.finished_at),
    ).group_by(b.source_id)
    rows = session.execute(sums).all()
    totals = {sid: _ingest_row(n, r, lo, u, q, last) for sid, n, r, lo, u, q, last in rows}
    for sid, by_reason in session.execute(select(b.source_id, b.quarantine_reasons)).all():
        bucket: dict[str, int] = totals[sid]["quarantine_reasons"]
        for reason, n in (by_reason or {}).items():
            bucket[reason] = bucket.get(reason, 0) + int(n)
    return totals


def _agreement_versions(session: Session) -> dict[str, list[DataSharingAgreement]]:
    """Each source's agreements, oldest version first (the last is the one in force)."""
    versions: dict[str, list[DataSharingAgreement]] = defaultdict(list)
    by_version = select(DataSharingAgreement).order_by(DataSharingAgreement.version)
    for a in session.scalars(by_version):
        versions[a.source_id].append(a)
    return versions


def _tombstones(session: Session) -> dict[str, int]:
    stmt = select(Tombstone.source_id, func.count()).group_by(Tombstone.source_id)
    return dict(session.execute(stmt).all())


def _source(
    s: Source, agreement: dict[str, Any] | None, versions: int, ingest: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "format": s.format,
        "active": s.active,
        "agreement": agreement,
        "agreement_versions": versions,
        "ingest": ingest,
    }


def sources_section(session: Session, users: dict[str, str]) -> dict[str, Any]:
    """Every registered source, its agreement in force, ingest totals and retention purges."""
    today = utcnow().date()
    agreements = _agreement_versions(session)
    totals = _batch_totals(session)
    tombstones = _tombstones(session)
    rows = []
    for s in session.scalars(select(Source).order_by(Source.id)):
        versions = agreements.get(s.id, [])
        agreement = _agreement(versions[-1], today, users) if versions else None
        row = _source(s, agreement, len(versions), totals.get(s.id) or _ingest_row())
        rows.append({**row, "tombstones": int(tombstones.get(s.id, 0))})
    shipped = sorted(d.id for d in shipped_definitions())
    registered = {r["id"] for r in rows}
    return {
        "sources": rows,
        "shipped": shipped,
        "not_registered": [s for s in shipped if s not in registered],
    }


def permitted_purposes(session: Session) -> dict[str, frozenset[str]]:
    """The purposes each source's newest agreement permits."""
    versions = _agreement_versions(session)
    return {sid: frozenset(v[-1].permitted_purposes) for sid, v in versions.items()}


# -- attributes absent by design --------------------------------------------------------------


def _schema_names(session: Session) -> set[str]:
    """Every table and column name of the live database."""
    inspector = inspect(session.connection())
    names = set()
    for table in inspector.get_table_names():
        names.add(table)
        names.update(c["name"] for c in inspector.get_columns(table))
    return names


def _source_fields(session: Session) -> set[str]:
    fields: set[str] = set()
    for (definition,) in session.execute(select(Source.definition)):
        fields.update((definition or {}).get("fields", {}))
    return fields


def prohibited_section(session: Session, policies: list[dict[str, Any]]) -> dict[str, Any]:
    """The attributes no policy may use, and where each was looked for (and not found)."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for name, reason in PROHIBITED.items():
        by_reason[reason].append(name)
    names = _schema_names(session)
    fields = _source_fields(session)
    checks = {
        "schema_columns": sorted(n for n in names if NEVER_HELD.search(n)),
        "source_fields": sorted(f for f in fields if NEVER_HELD.search(f)),
        "catalogue_features": sorted(f for f in FEATURES if prohibited_reason(f)),
        "policy_features": sorted({f for p in policies for f in p["prohibited_features"]}),
    }
    return {
        "attributes": [{"reason": r, "names": sorted(n)} for r, n in by_reason.items()],
        "checks": checks,
        "violations": sum(len(v) for v in checks.values()),
        "schema_tables_and_columns_checked": len(names),
    }
