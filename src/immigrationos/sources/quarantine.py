"""The quarantine: list rows that could not be loaded, explain them, re-run them after a fix.

A quarantined row keeps its original bytes, so after the source's mapping is corrected
(``immos sources register`` with the fixed definition) :func:`rerun` feeds those exact bytes
through the current definition as a new batch. Rows that now load are marked ``resolved``
with the batch that loaded them; rows that still fail stay open with the new reason.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.gateway.core import Gateway
from immigrationos.sources.ingest import definition_of, ingest_file
from immigrationos.sources.models import IngestBatch, QuarantinedRow
from immigrationos.sources.plan import BatchReport

#: What each reason code means and what usually fixes it.
REASONS: dict[str, str] = {
    "encoding": "bytes that are not valid in the declared encoding; declare `encoding:` or "
    "have the source re-export as UTF-8",
    "ragged": "a different number of fields than the header; usually an unquoted delimiter "
    "inside a value",
    "csv": "not parseable as CSV (an unterminated quote)",
    "json": "a line that is not a JSON object",
    "too-long": "a value longer than the field's `max_length`",
    "formula": "a value starting with =, +, -, @ (spreadsheet formula injection); never "
    "loaded as data",
    "control-characters": "a NUL or other control character inside a value",
    "format": "a value that does not match the field's `pattern`",
    "date": "a date not in any of the field's `formats`",
    "date-range": "a date outside 1900–2100",
    "timestamp": "a timestamp that is not ISO 8601",
    "integer": "a value that is not a whole number",
    "code": "a value missing from the field's code table; add it to `codes:` if legitimate",
    "country": "not an ISO 3166 alpha-3 country code",
    "a-number": "not an A-number (A + 8 or 9 digits)",
    "nested": "expected a JSON list or object",
    "required": "a required field is empty",
    "missing-key": "a record-key field is empty",
    "duplicate-key": "the same record key appears earlier in this input with other content; "
    "the source should send one row per key",
}


@dataclass(frozen=True)
class Explanation:
    """One quarantined row explained for people."""

    row: QuarantinedRow
    meaning: str
    original: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the original bytes as text, undecodable bytes escaped)."""
        r = self.row
        return {
            "id": r.id,
            "source_id": r.source_id,
            "batch_id": r.batch_id,
            "row_number": r.row_number,
            "field": r.field,
            "reason": r.reason,
            "message": r.message,
            "status": r.status,
            "meaning": self.meaning,
            "original": self.original,
            "resolved_by_batch_id": r.resolved_by_batch_id,
        }


def list_rows(
    gateway: Gateway,
    source_id: str | None = None,
    status: str | None = "open",
    limit: int = 100,
    offset: int = 0,
) -> list[QuarantinedRow]:
    """Quarantined rows, newest first, optionally of one source and status."""
    where = []
    if source_id:
        where.append(QuarantinedRow.source_id == source_id)
    if status:
        where.append(QuarantinedRow.status == status)
    return gateway.search(
        QuarantinedRow,
        *where,
        params={"source": source_id, "status": status, "limit": limit},
        order_by=[QuarantinedRow.created_at.desc(), QuarantinedRow.row_number],
        limit=limit,
        offset=offset,
    )


def explain(gateway: Gateway, row_id: str) -> Explanation:
    """A quarantined row with what its reason means and the original bytes."""
    row = gateway.get(QuarantinedRow, row_id)
    original = row.raw.decode("utf-8", "backslashreplace")
    return Explanation(row, REASONS.get(row.reason, "see the message"), original)


@dataclass
class RerunResult:
    """What a re-run did: one batch per original batch, rows resolved, rows still failing."""

    reports: list[BatchReport]
    resolved: int
    still_failing: int


def _rebuild_input(fmt: str, rows: list[QuarantinedRow], folder: Path, header: bytes) -> Path:
    """The quarantined rows' original bytes, one per line, as an input of format ``fmt``."""
    lines = b"".join(r.raw if r.raw.endswith(b"\n") else r.raw + b"\n" for r in rows)
    path = folder / f"rerun.{fmt}"
    path.write_bytes(header + lines if fmt == "csv" else lines)
    return path


def rerun(session: Session, gateway: Gateway, source_id: str) -> RerunResult:
    """Re-validate a source's open quarantined rows under its current definition.

    Rows are re-run per original batch (a CSV batch's header comes from that batch). A row
    that now loads is marked ``resolved`` by the re-run batch; one that still fails is marked
    ``retried``, and the re-run batch quarantines it again with the current reason, so the
    open list always shows each row once, with its latest problem.
    """
    definition, _agreement = definition_of(session, source_id)
    rows = list_rows(gateway, source_id, "open", limit=1_000_000)
    result = RerunResult([], 0, 0)
    by_batch: dict[str, list[QuarantinedRow]] = {}
    for row in sorted(rows, key=lambda r: (r.batch_id, r.row_number or 0)):
        by_batch.setdefault(row.batch_id, []).append(row)
    fmt = "csv" if definition.format == "csv" else "jsonl"
    for batch_id, group in by_batch.items():
        batch = session.get(IngestBatch, batch_id)
        header = ((batch.input_header if batch else None) or "").encode(definition.encoding)
        with tempfile.TemporaryDirectory(prefix="immos-rerun-") as tmp:
            path = _rebuild_input(fmt, group, Path(tmp), header)
            report = ingest_file(session, gateway, source_id, path, format_override=fmt)
        failed = _failed_positions(gateway, report.batch_id)
        for position, row in enumerate(group, start=1):
            ok = position not in failed
            gateway.update(
                row,
                status="resolved" if ok else "retried",
                resolved_by_batch_id=report.batch_id if ok else None,
            )
            result.resolved += ok
            result.still_failing += not ok
        result.reports.append(report)
    return result


def _failed_positions(gateway: Gateway, batch_id: str) -> set[int]:
    """Row numbers (in the re-run input) that the re-run batch quarantined again."""
    stmt = select(QuarantinedRow.row_number).where(QuarantinedRow.batch_id == batch_id)
    return {
        r.row_number for r in gateway.rows(stmt, QuarantinedRow, params={"rerun-batch": batch_id})
    }
