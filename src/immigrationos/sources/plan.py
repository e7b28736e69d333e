"""Planning an ingest chunk, without writing: validation outcomes, versions and ids.

Pure functions over one chunk of rows: what validation made of each row (:class:`Outcome`,
from the row path or the columnar path), and what each becomes (:func:`plan_chunk`): a new
record version with its content-derived id, an unchanged row, or a quarantined one. The
writer (:mod:`.ingest`) only carries out a :class:`ChunkPlan`, so tests assert on plans.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from immigrationos.core.clock import utcnow
from immigrationos.core.ids import content_id
from immigrationos.sources import columnar, readers
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.seen import SeenKeys
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
    columns: ColumnPlan | None = None
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
    seen: SeenKeys | None = None,
) -> ChunkPlan:
    """Decide, without writing, what each validated row becomes; updates ``known``.

    ``seen`` spans the blocks of one batch: a later row with the same key and other values is
    quarantined as ``duplicate-key``; loading it would make a new version at every re-run of
    the same file. Without it, repeats are caught within this chunk only.
    """
    plan, now = ChunkPlan(), utcnow()
    prepared = []
    for outcome in outcomes:
        if outcome.cleaned is not None:
            key = record_key_of(outcome.cleaned.payload, key_fields)
            prepared.append((key, *_serialised(outcome.cleaned.payload, outcome.cleaned.flags)))
    firsts = iter(_first_hashes(seen, [p[0] for p in prepared], [p[3] for p in prepared]))
    serialised = iter(prepared)
    for outcome in outcomes:
        report.read += 1
        cleaned = outcome.cleaned
        if cleaned is None:
            _quarantine(plan, report, batch_id, source_id, where, outcome, now)
            continue
        report.dropped_fields.update(cleaned.dropped)
        if cleaned.flags:
            report.flagged.update(cleaned.flags.keys())
        key, payload_json, flags_json, digest = next(serialised)
        if next(firsts) != digest:
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


def _first_hashes(seen: SeenKeys | None, keys: list[str], digests: list[str]) -> list[str]:
    if seen is not None:
        return seen.first_hashes(keys, digests)
    first: dict[str, str] = {}
    return [first.setdefault(k, d) for k, d in zip(keys, digests, strict=True)]


# -- the columnar planner ----------------------------------------------------------------------

#: Characters JSON must escape. Rows holding any go the row path, so the JSON assembled from
#: columns below is byte for byte what orjson writes for the same values.
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
Lookup = Callable[[list[str]], Known]


@dataclass
class ColumnPlan:
    """New record versions of a columnar block, column by column, with their cleaned values."""

    records: dict[str, list[Any]]
    fields: dict[str, list[Any]]


_duckdb = threading.local()


def _sha256(texts: pa.Array) -> list[str]:
    """Hex SHA-256 of each string, computed in DuckDB (vectorised C++, same bytes as UTF-8)."""
    connection = getattr(_duckdb, "connection", None)
    if connection is None:
        connection = _duckdb.connection = duckdb.connect()
    connection.register("texts", pa.table({"t": texts}))
    try:
        result = connection.sql("SELECT sha256(t) AS h FROM texts").to_arrow_table()
    finally:
        connection.unregister("texts")
    hashes: list[str] = result["h"].to_pylist()
    return hashes


def _json_text(values: pa.Array) -> pa.Array:
    if pa.types.is_integer(values.type):
        return pc.fill_null(pc.cast(values, pa.string()), "null")
    return pc.fill_null(pc.binary_join_element_wise('"', values, '"', ""), "null")


def payload_json(names: list[str], values: list[pa.Array]) -> pa.Array:
    """Each row's payload as JSON with sorted keys, assembled from the columns."""
    ordered = sorted(zip(names, values, strict=True), key=lambda pair: pair[0])
    parts = [pc.binary_join_element_wise(f'"{n}":', _json_text(v), "") for n, v in ordered]
    return pc.binary_join_element_wise("{", pc.binary_join_element_wise(*parts, ","), "}", "")


def _flags_json(checked: columnar.Validated, taken: pa.Array, report: BatchReport) -> list[str]:
    """Each row's flags as JSON ("{}" for most rows; placeholders spelled out for the rest)."""
    flags: list[dict[str, Any]] = [{} for _ in range(len(taken))]
    for name, mask in checked.placeholders.items():
        marked = pc.take(mask, taken).to_pylist()
        original = pc.take(checked.originals[name], taken).to_pylist()
        for i, hit in enumerate(marked):
            if hit:
                flags[i][name] = {"flag": "placeholder", "value": original[i]}
                report.flagged[name] += 1
    return [orjson.dumps(f, option=orjson.OPT_SORT_KEYS).decode() if f else "{}" for f in flags]


def _keys(checked: columnar.Validated, values: list[pa.Array], key_fields: list[str]) -> list[str]:
    parts = [pc.cast(values[checked.names.index(k)], pa.string()) for k in key_fields]
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, ":")
    keys: list[str] = joined.to_pylist()
    return keys


def _escape_free(values: list[pa.Array]) -> pa.Array:
    strings = [v for v in values if not pa.types.is_integer(v.type)]
    hits = [pc.match_substring_regex(v, _NEEDS_ESCAPE) for v in strings]
    return (
        pc.invert(columnar.any_of(hits, len(values[0])))
        if hits
        else pa.array([True] * len(values[0]))
    )


def _slow_rows(block: columnar.Block, rows: list[int], validate: RowValidator) -> list[Outcome]:
    table = block.table
    assert table is not None
    outcomes = []
    for i in rows:
        row = {c: table[c][i].as_py() for c in table.column_names}
        row = {c: (None if v == "" else v) for c, v in row.items()}
        raw = block.lines[i] if block.lines else readers.json_bytes(row)
        outcomes.extend(
            row_outcomes([readers.RawRow(block.first_row + i, row, raw, None)], validate)
        )
    return outcomes


def plan_columns(
    block: columnar.Block,
    validate: RowValidator,
    definition: SourceDefinition,
    batch_id: str,
    where: str,
    lookup: Lookup,
    report: BatchReport,
    seen: SeenKeys | None,
) -> ChunkPlan:
    """Plan a columnar block: vector work for clean rows, the row path for every other row."""
    assert block.table is not None
    checked = columnar.validate_table(block.table, definition)
    n = block.table.num_rows
    fast = pc.and_(pc.invert(checked.doubt), _escape_free(checked.values))
    taken = pc.indices_nonzero(fast)
    slow = sorted(set(range(n)) - set(taken.to_pylist()))
    outcomes = _slow_rows(block, slow, validate)
    key_fields = definition.key_fields
    values = [pc.take(v, taken) for v in checked.values]
    keys = _keys(checked, values, key_fields)
    known = lookup(sorted(set(keys) | set(outcome_keys(outcomes, key_fields))))
    plan = plan_chunk(outcomes, key_fields, definition.id, batch_id, where, known, report, seen)
    flags = _flags_json(checked, taken, report)
    payloads = payload_json(checked.names, values)
    digests = _sha256(
        pc.binary_join_element_wise(
            '{"f":', pa.array(flags, pa.string()), ',"p":', payloads, "}", ""
        )
    )
    for name in checked.dropped:
        report.dropped_fields[name] += len(keys)
    _decide(
        plan,
        block,
        taken.to_pylist(),
        keys,
        digests,
        payloads.to_pylist(),
        flags,
        values,
        checked.names,
        definition.id,
        batch_id,
        where,
        known,
        report,
        seen,
    )
    return plan


def outcome_keys(outcomes: list[Outcome], key_fields: list[str]) -> list[str]:
    """The record keys of the outcomes that passed validation."""
    return [record_key_of(o.cleaned.payload, key_fields) for o in outcomes if o.cleaned]


def _decide(
    plan: ChunkPlan,
    block: columnar.Block,
    rows: list[int],
    keys: list[str],
    digests: list[str],
    payloads: list[str],
    flags: list[str],
    values: list[pa.Array],
    names: list[str],
    source_id: str,
    batch_id: str,
    where: str,
    known: Known,
    report: BatchReport,
    seen: SeenKeys | None,
) -> None:
    """Versioning decisions for clean rows (cheap per row), then their columns in one go."""
    now = utcnow()
    new: list[int] = []
    versions: list[int] = []
    supersedes: list[str | None] = []
    report.read += len(keys)
    firsts = _first_hashes(seen, keys, digests)
    for i, (key, digest) in enumerate(zip(keys, digests, strict=True)):
        if firsts[i] != digest:
            number = block.first_row + rows[i]
            problem = Problem(
                "duplicate-key",
                names[0] if names else None,
                f"record key {key!r} appears earlier in this input with other values",
            )
            raw = block.lines[rows[i]] if block.lines else payloads[i].encode()
            _quarantine(
                plan, report, batch_id, source_id, where, Outcome(number, raw, None, problem), now
            )
            continue
        previous = known.get(key)
        if previous and previous[1] == digest:
            report.unchanged += 1
            plan.unchanged.append(previous[2])
            continue
        new.append(i)
        versions.append(previous[0] + 1 if previous else 1)
        supersedes.append(previous[2] if previous else None)
        if previous:
            plan.superseded.append(previous[2])
    ids = _record_ids(source_id, [keys[i] for i in new], versions, [digests[i] for i in new])
    for position, i in enumerate(new):
        known[keys[i]] = (versions[position], digests[i], ids[position])
    report.loaded += len(new)
    index = pa.array(new, pa.int64())
    plan.columns = ColumnPlan(
        records={
            "id": ids,
            "source_id": [source_id] * len(new),
            "record_key": [keys[i] for i in new],
            "version": versions,
            "content_hash": [digests[i] for i in new],
            "payload": [RawJSON(payloads[i]) for i in new],
            "flags": [RawJSON(flags[i]) for i in new],
            "row_number": [block.first_row + rows[i] for i in new],
            "batch_id": [batch_id] * len(new),
            "supersedes_id": supersedes,
            "ingested_at": [now] * len(new),
        },
        fields={name: pc.take(v, index).to_pylist() for name, v in zip(names, values, strict=True)},
    )


def _record_ids(
    source_id: str, keys: list[str], versions: list[int], digests: list[str]
) -> list[str]:
    texts = pa.array(
        [
            f"{source_id}\x1f{k}\x1f{v}\x1f{d}"
            for k, v, d in zip(keys, versions, digests, strict=True)
        ],
        pa.string(),
    )
    return ["rec-" + h[:24] for h in _sha256(texts)] if keys else []
