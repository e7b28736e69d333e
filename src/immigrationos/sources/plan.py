"""Planning an ingest chunk, without writing: validation outcomes, versions and ids.

Pure functions over one chunk of rows: what validation made of each row (:class:`Outcome`,
from the row path or the columnar path), and what each becomes (:func:`plan_chunk`): a new
record version with its content-derived id, an unchanged row, or a quarantined one. The
writer (:mod:`.ingest`) only carries out a :class:`ChunkPlan`, so tests assert on plans.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from immigrationos.core.clock import utcnow
from immigrationos.core.ids import content_id
from immigrationos.sources import columnar, readers
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.validate import Cleaned, Problem, RowInvalid, RowValidator
from immigrationos.store.bulk import RawJSON


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
    flagged: Counter[str] = field(default_factory=Counter)
    derived: Counter[str] = field(default_factory=Counter)

    @property
    def reconciles(self) -> bool:
        """The invariant every batch must satisfy."""
        return self.read == self.loaded + self.unchanged + self.quarantined


@dataclass
class ChunkPlan:
    """What one chunk will write: new record versions, quarantine rows, and what they touch."""

    records: list[dict[str, Any]] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


Known = dict[str, tuple[int, str, str]]  # record key → (latest version, content hash, id)


def content_hash(payload: dict[str, Any], flags: dict[str, Any]) -> str:
    """The hash a record version is known by: its cleaned values and what was set aside."""
    return _serialised(payload, flags)[2]


def _serialised(payload: dict[str, Any], flags: dict[str, Any]) -> tuple[RawJSON, RawJSON, str]:
    """Payload and flags as JSON text, and the content hash over both (one serialisation)."""
    p = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    f = orjson.dumps(flags, option=orjson.OPT_SORT_KEYS) if flags else b"{}"
    digest = hashlib.sha256(b'{"f":' + f + b',"p":' + p + b"}").hexdigest()
    return RawJSON(p.decode()), RawJSON(f.decode()), digest


def record_key_of(payload: dict[str, Any], key_fields: list[str]) -> str:
    """A row's record key (composite keys joined with ':')."""
    if len(key_fields) == 1:
        return str(payload[key_fields[0]])
    return ":".join(str(payload[k]) for k in key_fields)


class Outcome(NamedTuple):
    """What validation made of one input row: cleaned values, or the problem refusing it."""

    number: int
    raw: bytes
    cleaned: Cleaned | None
    problem: Problem | None


def record_id(source_id: str, key: str, version: int, digest: str) -> str:
    """A record version's id: derived from its source, key, version and content hash."""
    text = f"{source_id}\x1f{key}\x1f{version}\x1f{digest}".encode()
    return "rec-" + hashlib.sha256(text).hexdigest()[:24]


def row_outcomes(rows: list[readers.RawRow], validate: RowValidator) -> list[Outcome]:
    """Validate rows one at a time (the reference path)."""
    out = []
    for row in rows:
        if row.problem is not None or row.values is None:
            out.append(Outcome(row.number, row.raw, None, row.problem))
            continue
        try:
            out.append(Outcome(row.number, row.raw, validate(row.values), None))
        except RowInvalid as invalid:
            out.append(Outcome(row.number, row.raw, None, invalid.problem))
    return out


def block_outcomes(
    block: columnar.Block, validate: RowValidator, definition: SourceDefinition
) -> list[Outcome]:
    """Validate a block as columns; rows the vector checks doubt go to the row validator."""
    if block.table is None:
        return row_outcomes(block.rows or [], validate)
    table = block.table
    checked = columnar.validate_table(table, definition)
    doubt = checked.doubt.to_pylist()
    columns = [a.to_pylist() for a in checked.values]
    placeholders = {
        n: (m.to_pylist(), checked.originals[n].to_pylist())
        for n, m in checked.placeholders.items()
    }
    dropped = list(checked.dropped)
    out = []
    for i, values in enumerate(zip(*columns, strict=True)):
        number = block.first_row + i
        if doubt[i]:
            row = {c: table[c][i].as_py() for c in table.column_names}
            row = {c: (None if v == "" else v) for c, v in row.items()}
            raw = block.lines[i] if block.lines else readers.json_bytes(row)
            out.extend(row_outcomes([readers.RawRow(number, row, raw, None)], validate))
            continue
        flags = {
            n: {"flag": "placeholder", "value": original[i]}
            for n, (mask, original) in placeholders.items()
            if mask[i]
        }
        raw = block.lines[i] if block.lines else b""
        out.append(
            Outcome(
                number,
                raw,
                Cleaned(dict(zip(checked.names, values, strict=True)), flags, dropped),
                None,
            )
        )
    return out


def _quarantine(
    plan: ChunkPlan,
    report: BatchReport,
    batch_id: str,
    source_id: str,
    where: str,
    outcome: Outcome,
    now: datetime,
) -> None:
    problem = outcome.problem
    assert problem is not None
    report.quarantined += 1
    report.quarantine_reasons[problem.reason] += 1
    plan.quarantined.append(
        {
            "id": content_id("qr", batch_id, outcome.number),
            "batch_id": batch_id,
            "source_id": source_id,
            "row_number": outcome.number,
            "field": problem.field,
            "reason": problem.reason,
            "message": f"{where}: row {outcome.number}: {problem.message}",
            "raw": outcome.raw,
            "status": "open",
            "created_at": now,
        }
    )


def plan_chunk(
    outcomes: list[Outcome],
    key_fields: list[str],
    source_id: str,
    batch_id: str,
    where: str,
    known: Known,
    report: BatchReport,
    seen: dict[str, str] | None = None,
) -> ChunkPlan:
    """Decide, without writing, what each validated row becomes; updates ``known``.

    ``seen`` (record key -> content hash of its first row in this input) spans the blocks of
    one batch: a later row with the same key and other values is quarantined as
    ``duplicate-key``; loading it would make a new version at every re-run of the same file.
    """
    plan, now = ChunkPlan(), utcnow()
    seen = {} if seen is None else seen
    for outcome in outcomes:
        report.read += 1
        cleaned = outcome.cleaned
        if cleaned is None:
            _quarantine(plan, report, batch_id, source_id, where, outcome, now)
            continue
        report.dropped_fields.update(cleaned.dropped)
        if cleaned.flags:
            report.flagged.update(cleaned.flags.keys())
        key = record_key_of(cleaned.payload, key_fields)
        payload_json, flags_json, digest = _serialised(cleaned.payload, cleaned.flags)
        if seen.setdefault(key, digest) != digest:
            problem = Problem(
                "duplicate-key",
                key_fields[0],
                f"record key {key!r} appears earlier in this input with other values",
            )
            duplicate = outcome._replace(problem=problem)
            _quarantine(plan, report, batch_id, source_id, where, duplicate, now)
            continue
        previous = known.get(key)
        if previous and previous[1] == digest:
            report.unchanged += 1
            plan.unchanged.append(previous[2])
            continue
        version = previous[0] + 1 if previous else 1
        new_id_ = record_id(source_id, key, version, digest)
        plan.records.append(
            {
                "id": new_id_,
                "source_id": source_id,
                "record_key": key,
                "version": version,
                "content_hash": digest,
                "payload": payload_json,
                "flags": flags_json,
                "row_number": outcome.number,
                "batch_id": batch_id,
                "supersedes_id": previous[2] if previous else None,
                "ingested_at": now,
            }
        )
        plan.payloads.append(cleaned.payload)
        if previous:
            plan.superseded.append(previous[2])
        known[key] = (version, digest, new_id_)
        report.loaded += 1
    return plan
