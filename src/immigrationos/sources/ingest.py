"""Load a source file into immutable, versioned source records, idempotently.

Each row's id derives from the source, its key, its version and its content hash: an
unchanged row is recognised and skipped, a changed row becomes the next version (pointing at
the one it supersedes). Fields outside the agreement's allow-list are dropped and counted.
The batch report always reconciles: read = loaded + unchanged + quarantined.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from immigrationos.audit.chain import emit
from immigrationos.audit.events import BatchIngested
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.core.ids import canonical_json, content_id, new_id, sha256_hex
from immigrationos.gateway.core import Gateway
from immigrationos.sources import readers
from immigrationos.sources.models import IngestBatch, Source, SourceRecord
from immigrationos.sources.registry import agreement_in_force

Progress = Callable[[int], None]


@dataclass
class BatchReport:
    """What one ingest did; ``read == loaded + unchanged + quarantined`` always."""

    batch_id: str
    source_id: str
    read: int = 0
    loaded: int = 0
    unchanged: int = 0
    quarantined: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    dropped_fields: Counter[str] = field(default_factory=Counter)

    @property
    def reconciles(self) -> bool:
        """The invariant every batch must satisfy."""
        return self.read == self.loaded + self.unchanged + self.quarantined


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _latest_versions(
    gateway: Gateway, source_id: str, keys: list[str]
) -> dict[str, tuple[int, str, str]]:
    """For each key already stored: (latest version, its content hash, its id)."""
    latest = (
        select(SourceRecord.record_key, func.max(SourceRecord.version).label("v"))
        .where(SourceRecord.source_id == source_id, SourceRecord.record_key.in_(keys))
        .group_by(SourceRecord.record_key)
        .subquery()
    )
    stmt = (
        select(SourceRecord)
        .join(
            latest,
            (SourceRecord.record_key == latest.c.record_key) & (SourceRecord.version == latest.c.v),
        )
        .where(SourceRecord.source_id == source_id)
    )
    rows = gateway.select(
        stmt,
        SourceRecord,
        params={"source": source_id, "lookup": "latest-versions", "keys": len(keys)},
    )
    return {r.record_key: (r.version, r.content_hash, r.id) for r in rows}


def record_key_of(row: dict[str, Any], key_fields: list[str]) -> str | None:
    """The row's record key (composite keys joined with ':'), or None when a part is missing."""
    parts = [row.get(name) for name in key_fields]
    if any(p is None or str(p).strip() == "" for p in parts):
        return None
    return ":".join(str(p) for p in parts)


def _plan_chunk(
    rows: list[dict[str, Any]],
    source: Source,
    allowed: set[str],
    known: dict[str, tuple[int, str, str]],
    batch_id: str,
    report: BatchReport,
) -> list[dict[str, Any]]:
    new_rows: list[dict[str, Any]] = []
    now = utcnow()
    for row in rows:
        report.read += 1
        for name in row.keys() - allowed:
            report.dropped_fields[name] += 1
        payload = {k: v for k, v in row.items() if k in allowed}
        key = record_key_of(payload, source.record_key.split(","))
        if key is None:
            report.quarantined += 1
            report.quarantine_reasons[f"missing record key {source.record_key}"] += 1
            continue
        digest = sha256_hex(canonical_json(payload))
        previous = known.get(key)
        if previous and previous[1] == digest:
            report.unchanged += 1
            continue
        version = previous[0] + 1 if previous else 1
        record_id = content_id("rec", source.id, key, version, digest)
        new_rows.append(
            {
                "id": record_id,
                "source_id": source.id,
                "record_key": key,
                "version": version,
                "content_hash": digest,
                "payload": payload,
                "batch_id": batch_id,
                "supersedes_id": previous[2] if previous else None,
                "ingested_at": now,
            }
        )
        known[key] = (version, digest, record_id)
        report.loaded += 1
    return new_rows


def ingest_file(
    session: Session, gateway: Gateway, source_id: str, path: Path, progress: Progress | None = None
) -> BatchReport:
    """Ingest ``path`` into ``source_id`` in the caller's transaction; returns the report."""
    source = session.get(Source, source_id)
    if source is None:
        raise NotFound(f"no source {source_id!r}; register it first")
    agreement = agreement_in_force(session, source_id)
    if agreement is None:
        raise ValidationFailed(f"source {source_id!r} has no agreement; nothing may be ingested")
    batch = IngestBatch(
        id=new_id("bat"),
        source_id=source_id,
        agreement_id=agreement.id,
        input_uri=str(path),
        input_sha256=file_sha256(path),
        started_by=gateway.ctx.actor.user_id,
    )
    session.add(batch)
    session.flush()
    report = BatchReport(batch.id, source_id)
    allowed = set(agreement.allowed_fields)
    for chunk in readers.read(path, source.format):
        key_fields = source.record_key.split(",")
        keys = sorted({k for r in chunk if (k := record_key_of(r, key_fields)) is not None})
        known = _latest_versions(gateway, source_id, keys)
        gateway.insert_rows(
            SourceRecord, _plan_chunk(chunk, source, allowed, known, batch.id, report)
        )
        if progress:
            progress(len(chunk))
    _finish(batch, report)
    emit(
        session,
        BatchIngested(
            object_type="ingest_batches",
            object_ids=[batch.id],
            read=report.read,
            loaded=report.loaded,
            unchanged=report.unchanged,
            quarantined=report.quarantined,
        ),
        gateway.ctx,
    )
    return report


def _finish(batch: IngestBatch, report: BatchReport) -> None:
    if not report.reconciles:  # a bug, never an input problem: refuse to record it
        raise AssertionError(f"batch {batch.id} does not reconcile: {report}")
    batch.read_count, batch.loaded_count = report.read, report.loaded
    batch.unchanged_count, batch.quarantined_count = report.unchanged, report.quarantined
    batch.quarantine_reasons = dict(report.quarantine_reasons)
    batch.dropped_fields = dict(report.dropped_fields)
    batch.status, batch.finished_at = "finished", utcnow()
