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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
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
    #: Peak memory of the process that read the input, when one did (not stored).
    reader_peak_rss_mib: float | None = None

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


def serialised(payload: dict[str, Any]) -> tuple[RawJSON, str]:
    """A payload without flags as the JSON text a record stores, and its content hash (one
    serialisation for both)."""
    text, _, digest = _serialised(payload, {})
    return text, digest


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


@dataclass
class Sighted:
    """The row path's valid outcomes serialised (key, payload, flags, hash), and for each the
    hash its key had first in this input and whether the key came before."""

    serialised: list[tuple[str, RawJSON, RawJSON, str]]
    firsts: list[str]
    repeats: list[bool]


def _serialise_rows(
    outcomes: list[Outcome], key_fields: list[str]
) -> list[tuple[str, RawJSON, RawJSON, str]]:
    """Key, payload and flags JSON and content hash of each valid outcome."""
    return [
        (
            record_key_of(o.cleaned.payload, key_fields),
            *_serialised(o.cleaned.payload, o.cleaned.flags),
        )
        for o in outcomes
        if o.cleaned is not None
    ]


def sight_rows(outcomes: list[Outcome], key_fields: list[str], seen: SeenKeys | None) -> Sighted:
    """Serialise and hash the valid outcomes, and check them against earlier rows (``seen``)."""
    serialised = _serialise_rows(outcomes, key_fields)
    firsts, repeats = _first_hashes(seen, [s[0] for s in serialised], [s[3] for s in serialised])
    return Sighted(serialised, firsts, repeats)


def plan_chunk(
    outcomes: list[Outcome],
    key_fields: list[str],
    source_id: str,
    batch_id: str,
    where: str,
    known: Known,
    report: BatchReport,
    seen: SeenKeys | None = None,
    sighted: Sighted | None = None,
) -> ChunkPlan:
    """Decide, without writing, what each validated row becomes.

    ``seen`` spans the blocks of one batch: a later row with the same key and other values is
    quarantined as ``duplicate-key`` (loading it would make a new version at every re-run of
    the same file); the same row again counts as unchanged. Without it, repeats are caught
    within this chunk only. ``sighted`` is :func:`sight_rows` done already (ingest does it
    ahead, in its reading thread).
    """
    plan, now = ChunkPlan(), utcnow()
    sighted = sighted or sight_rows(outcomes, key_fields, seen)
    serialised = iter(enumerate(sighted.serialised))
    for outcome in outcomes:
        report.read += 1
        cleaned = outcome.cleaned
        if cleaned is None:
            _quarantine(plan, report, batch_id, source_id, where, outcome, now)
            continue
        report.dropped_fields.update(cleaned.dropped)
        if cleaned.flags:
            report.flagged.update(cleaned.flags.keys())
        position, (key, payload_json, flags_json, digest) = next(serialised)
        if sighted.firsts[position] != digest:
            problem = Problem(
                "duplicate-key",
                key_fields[0],
                f"record key {key!r} appears earlier in this input with other values",
            )
            duplicate = outcome._replace(problem=problem)
            _quarantine(plan, report, batch_id, source_id, where, duplicate, now)
            continue
        if sighted.repeats[position]:  # the same row again: its first occurrence decided
            report.unchanged += 1
            continue
        previous = known.get(key)
        if previous and previous[1] == digest:
            report.unchanged += 1
            plan.unchanged.append(previous[2])
            continue
        version = previous[0] + 1 if previous else 1
        plan.records.append(
            {
                "id": record_id(source_id, key, version, digest),
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
        report.loaded += 1
    return plan


def _first_hashes(
    seen: SeenKeys | None, keys: list[str], digests: list[str]
) -> tuple[list[str], list[bool]]:
    """Per row: the hash its key had first in this input, and whether the key came before."""
    if seen is not None:
        return seen.first_hashes(keys, digests)
    first: dict[str, str] = {}
    repeats = []
    for key, digest in zip(keys, digests, strict=True):
        repeats.append(key in first)
        first.setdefault(key, digest)
    return [first[k] for k in keys], repeats


# -- the columnar planner ----------------------------------------------------------------------

#: Characters JSON must escape. Rows holding any go the row path, so the JSON assembled from
#: columns below is byte for byte what orjson writes for the same values.
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
#: Earlier versions of some keys (None on a source's first load: there are none).
Lookup = Callable[[list[str]], Known] | None


@dataclass
class ColumnPlan:
    """New record versions of a columnar block, column by column, with their cleaned values.

    ``records`` holds Arrow arrays (``id`` as a list: the audit entry names every id);
    ``fields`` the cleaned values of the same rows, by field name.
    """

    records: dict[str, Any]
    fields: dict[str, pa.Array]


_duckdb = threading.local()


def _duck() -> duckdb.DuckDBPyConnection:
    connection = getattr(_duckdb, "connection", None)
    if connection is None:
        connection = _duckdb.connection = duckdb.connect()
    return connection


def _release_duck() -> None:
    connection = getattr(_duckdb, "connection", None)
    if connection is not None:
        connection.close()
        del _duckdb.connection


def _sha256(texts: pa.Array, prefix: str = "", width: int = 64) -> pa.Array:
    """``prefix`` + the first ``width`` hex digits of each string's SHA-256, in DuckDB
    (vectorised C++, same bytes as UTF-8)."""
    connection = _duck()
    connection.register("texts", pa.table({"t": texts}))
    try:
        result = connection.sql(
            "SELECT $prefix || left(sha256(t), $width) AS h FROM texts",
            params={"prefix": prefix, "width": width},
        ).to_arrow_table()
    finally:
        connection.unregister("texts")
    return result["h"].combine_chunks()


def _json_text(values: pa.Array) -> pa.Array:
    if pa.types.is_integer(values.type):
        return pc.fill_null(pc.cast(values, pa.string()), "null")
    return pc.fill_null(pc.binary_join_element_wise('"', values, '"', ""), "null")


def payload_json(names: list[str], values: list[pa.Array]) -> pa.Array:
    """Each row's payload as JSON with sorted keys, assembled from the columns."""
    ordered = sorted(zip(names, values, strict=True), key=lambda pair: pair[0])
    parts = [pc.binary_join_element_wise(f'"{n}":', _json_text(v), "") for n, v in ordered]
    return pc.binary_join_element_wise("{", pc.binary_join_element_wise(*parts, ","), "}", "")


def _originals(checked: columnar.Validated) -> dict[str, pa.Array]:
    """What the source said for each placeholder field (text), in sorted field order."""
    return {
        name: pc.cast(checked.originals[name], pa.string()) for name in sorted(checked.placeholders)
    }


def _flags_escape_free(checked: columnar.Validated, n: int) -> pa.Array:
    """Rows whose placeholder originals can be written into JSON as they are."""
    hits = [
        pc.and_(checked.placeholders[name], pc.match_substring_regex(text, _NEEDS_ESCAPE))
        for name, text in _originals(checked).items()
    ]
    return pc.invert(columnar.any_of(hits, n))


def _flags_json(checked: columnar.Validated, taken: pa.Array, flagged: Counter[str]) -> pa.Array:
    """Each row's flags as JSON, as orjson writes them: "{}" for most rows, placeholders
    spelled out (``{"name":{"flag":"placeholder","value":"…"}}``) for the rest."""
    parts = []
    for name, text in _originals(checked).items():
        marked = pc.take(checked.placeholders[name], taken)
        flagged[name] += pc.sum(marked).as_py() or 0
        entry = pc.binary_join_element_wise(
            f'"{name}":{{"flag":"placeholder","value":"', pc.take(text, taken), '"},', ""
        )
        parts.append(pc.if_else(marked, entry, ""))
    if not parts:
        return pa.array(["{}"] * len(taken), pa.string())
    # Each entry ends "}," so trimming trailing commas removes exactly the last separator.
    # (Arrow's join with null_handling="skip" drops rows instead of skipping values.)
    inner = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "")
    return pc.binary_join_element_wise("{", pc.utf8_rtrim(inner, characters=","), "}", "")


def _keys(checked: columnar.Validated, values: list[pa.Array], key_fields: list[str]) -> pa.Array:
    parts = [pc.cast(values[checked.names.index(k)], pa.string()) for k in key_fields]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, ":")


def _escape_free(values: list[pa.Array]) -> pa.Array:
    strings = [v for v in values if not pa.types.is_integer(v.type)]
    hits = [pc.match_substring_regex(v, _NEEDS_ESCAPE) for v in strings]
    return pc.invert(columnar.any_of(hits, len(values[0])))


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


@dataclass
class _Clean:
    """A columnar block's rows that passed the vector checks, as Arrow columns."""

    rows: pa.Array  # positions in the block
    keys: pa.Array
    digests: pa.Array
    payloads: pa.Array
    flags: pa.Array
    names: list[str]
    values: list[pa.Array]
    key_field: str
    conflicts: pa.Array  # whether the key came earlier in this input with other content
    repeats: pa.Array  # whether the key came earlier in this input
    first_ids: pa.Array  # each row's record id if it is its key's version 1
    raws: dict[int, bytes]  # the original bytes of the conflicting rows, by position


@dataclass
class Prepared:
    """A block after the work that needs no database: validation, serialisation, hashing and
    the check against earlier rows of the input (:class:`SeenKeys`).

    It touches neither the session nor the report, so ingest prepares the next block in a
    background thread while the current one is written (:mod:`.pipeline`); blocks are
    prepared in input order, one at a time, so the first occurrence of a key still wins.
    """

    first_row: int
    size: int  # input rows in the block
    outcomes: list[Outcome]  # rows the row validator decided (every row of a row block)
    sighted: Sighted
    clean: _Clean | None  # rows the vector checks took (columnar blocks only)
    dropped: Counter[str] = field(default_factory=Counter)
    flagged: Counter[str] = field(default_factory=Counter)


def prepare(
    block: columnar.Block,
    validate: RowValidator,
    definition: SourceDefinition,
    seen: SeenKeys | None = None,
) -> Prepared:
    """Validate, serialise and hash a block, and check its keys against earlier rows: vector
    checks for a columnar block (the row validator for every row they doubt), the row
    validator for a row block. Blocks must be prepared in input order (``seen``). Only what
    the writer needs is kept (the block's text and unneeded columns are not), since a large
    input is prepared in another process and handed over."""
    key_fields = definition.key_fields
    if block.table is None:
        outcomes = row_outcomes(block.rows or [], validate)
        sighted = sight_rows(outcomes, key_fields, seen)
        return Prepared(block.first_row, len(outcomes), outcomes, sighted, None)
    checked = columnar.validate_table(block.table, definition)
    n = block.table.num_rows
    fast = columnar.all_of(
        [pc.invert(checked.doubt), _escape_free(checked.values), _flags_escape_free(checked, n)],
        n,
    )
    outcomes = _slow_rows(block, pc.indices_nonzero(pc.invert(fast)).to_pylist(), validate)
    serialised = _serialise_rows(outcomes, key_fields)
    flagged: Counter[str] = Counter()
    clean = _clean(checked, pc.indices_nonzero(fast), definition, flagged)
    clean.names, clean.values = _fact_fields(definition, clean.names, clean.values)
    # One check against earlier rows for the whole block; the row path's rows go first.
    firsts, repeats = _check(
        seen,
        pa.concat_arrays([pa.array([s[0] for s in serialised], pa.string()), clean.keys]),
        pa.concat_arrays([pa.array([s[3] for s in serialised], pa.string()), clean.digests]),
    )
    count = len(serialised)
    sighted = Sighted(serialised, firsts[:count].to_pylist(), repeats[:count].to_pylist())
    clean.conflicts = pc.not_equal(firsts[count:], clean.digests)
    clean.repeats = repeats[count:]
    rows = clean.rows.to_numpy()
    clean.raws = {
        int(i): _raw(block, int(rows[i]), clean, int(i))
        for i in pc.indices_nonzero(clean.conflicts).to_pylist()
    }
    dropped = Counter({name: len(clean.keys) for name in checked.dropped})
    size = block.table.num_rows
    return Prepared(block.first_row, size, outcomes, sighted, clean, dropped, flagged)


def _raw(block: columnar.Block, row: int, clean: _Clean, i: int) -> bytes:
    """A clean row's original bytes (Parquet rows have none: their payload stands in)."""
    return block.lines[row] if block.lines else clean.payloads[i].as_py().encode()


def _fact_fields(
    definition: SourceDefinition, names: list[str], values: list[pa.Array]
) -> tuple[list[str], list[pa.Array]]:
    """The cleaned columns the source's fact mappings read (the rest are in the payload)."""
    needed = {f for m in definition.facts for f in m.columns.values() if not f.startswith("=")}
    needed |= {f for m in definition.facts for f in m.require}
    kept = [(n, v) for n, v in zip(names, values, strict=True) if n in needed]
    return [n for n, _ in kept], [v for _, v in kept]


def _check(seen: SeenKeys | None, keys: pa.Array, digests: pa.Array) -> tuple[pa.Array, pa.Array]:
    """:meth:`SeenKeys.check`, or within these rows alone when there is no ``seen``."""
    if seen is not None:
        return seen.check(keys, digests)
    firsts, repeats = _first_hashes(None, keys.to_pylist(), digests.to_pylist())
    return pa.array(firsts, pa.string()), pa.array(repeats, pa.bool_())


def prepared_input(
    location: str | Path, definition: SourceDefinition, size: int
) -> Iterator[Prepared]:
    """Every block of an input, prepared in order (:func:`prepare`), with the record of keys
    seen so far living as long as the iteration. Picklable arguments only: ingest may run it
    in another process (:mod:`.pipeline`)."""
    validate = RowValidator(definition)
    try:
        with SeenKeys() as seen:
            for block in columnar.blocks(location, definition, size):
                yield prepare(block, validate, definition, seen)
    finally:
        _release_duck()  # this thread's (or process's) hashing connection


def plan_prepared(
    prepared: Prepared,
    definition: SourceDefinition,
    batch_id: str,
    where: str,
    lookup: Lookup,
    report: BatchReport,
) -> ChunkPlan:
    """Decide what a prepared block's rows become: the row path's outcomes one by one, the
    vector-checked rows set-based."""
    key_fields, clean = definition.key_fields, prepared.clean
    wanted = outcome_keys(prepared.outcomes, key_fields)
    if lookup is not None and clean is not None:
        wanted += clean.keys.to_pylist()
    known = lookup(sorted(set(wanted))) if lookup is not None else {}
    plan = plan_chunk(
        prepared.outcomes,
        key_fields,
        definition.id,
        batch_id,
        where,
        known,
        report,
        sighted=prepared.sighted,
    )
    if clean is None:
        return plan
    report.flagged.update(prepared.flagged)
    report.dropped_fields.update(prepared.dropped)
    _decide(plan, prepared.first_row, clean, definition.id, batch_id, where, known, report)
    return plan


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
    prepared = prepare(block, validate, definition, seen)
    return plan_prepared(prepared, definition, batch_id, where, lookup, report)


def _clean(
    checked: columnar.Validated,
    taken: pa.Array,
    definition: SourceDefinition,
    flagged: Counter[str],
) -> _Clean:
    """Keys, payload and flags JSON, content hashes and version-1 ids of the rows the vector
    checks took (first sightings are filled in by :func:`prepare`)."""
    values = [pc.take(v, taken) for v in checked.values]
    flags = _flags_json(checked, taken, flagged)
    payloads = payload_json(checked.names, values)
    keys = _keys(checked, values, definition.key_fields)
    digests, first_ids = _hashes(
        definition.id, keys, pc.binary_join_element_wise('{"f":', flags, ',"p":', payloads, "}", "")
    )
    unknown = pa.nulls(len(keys), pa.bool_())
    return _Clean(
        rows=taken,
        keys=keys,
        digests=digests,
        payloads=payloads,
        flags=flags,
        names=checked.names,
        values=values,
        key_field=definition.key_fields[0],
        conflicts=unknown,
        repeats=unknown,
        first_ids=first_ids,
        raws={},
    )


def _hashes(source_id: str, keys: pa.Array, contents: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each row's content hash and its record id as version 1 (:func:`record_id`), in one
    DuckDB pass."""
    connection = _duck()
    connection.register("contents", pa.table({"k": keys, "t": contents}))
    try:
        result = connection.sql(
            "SELECT d, 'rec-' || left(sha256($source || chr(31) || k || chr(31) || '1' "
            "|| chr(31) || d), 24) AS id FROM (SELECT k, sha256(t) AS d FROM contents)",
            params={"source": source_id},
        ).to_arrow_table()
    finally:
        connection.unregister("contents")
    return result["d"].combine_chunks(), result["id"].combine_chunks()


def _record_ids(source_id: str, keys: pa.Array, versions: pa.Array, digests: pa.Array) -> pa.Array:
    """:func:`record_id` over columns."""
    if not len(keys):
        return pa.array([], pa.string())
    text = pc.binary_join_element_wise(source_id, keys, versions, digests, "\x1f")
    return _sha256(text, "rec-", 24)


def outcome_keys(outcomes: list[Outcome], key_fields: list[str]) -> list[str]:
    """The record keys of the outcomes that passed validation."""
    return [record_key_of(o.cleaned.payload, key_fields) for o in outcomes if o.cleaned]


def _decide(
    plan: ChunkPlan,
    first_row: int,
    clean: _Clean,
    source_id: str,
    batch_id: str,
    where: str,
    known: Known,
    report: BatchReport,
) -> None:
    """Versioning decisions for clean rows, set-based: repeats and conflicts were found by one
    join when the block was prepared (:class:`SeenKeys`); only rows whose keys have stored
    versions are looked at one by one."""
    now = utcnow()
    report.read += len(clean.keys)
    for i in pc.indices_nonzero(clean.conflicts).to_pylist():
        _duplicate(plan, report, first_row, clean, i, source_id, batch_id, where, now)
    again = pc.and_(clean.repeats, pc.invert(clean.conflicts))  # the same row: decided already
    report.unchanged += pc.sum(again).as_py() or 0
    fresh = pc.indices_nonzero(pc.invert(clean.repeats))
    new, versions, supersedes = _against_known(plan, clean, fresh, known, report)
    count = len(new)

    if known:
        ids = _record_ids(
            source_id,
            pc.take(clean.keys, new),
            pc.cast(versions, pa.string()),
            pc.take(clean.digests, new),
        )
    else:  # a first load: every new row is version 1
        ids = pc.take(clean.first_ids, new)
    # Written in the order of their ids: each block's keys then go into the id index (and
    # the facts', whose ids extend the record's) in order, not scattered over it.
    order = pc.sort_indices(ids)
    new, ids = pc.take(new, order), pc.take(ids, order)
    versions, supersedes = pc.take(versions, order), pc.take(supersedes, order)

    def chosen(column: pa.Array) -> pa.Array:
        return pc.take(column, new)

    keys, digests = chosen(clean.keys), chosen(clean.digests)
    report.loaded += count
    plan.columns = ColumnPlan(
        records={
            "id": ids.to_pylist(),
            "source_id": pa.array([source_id] * count, pa.string()),
            "record_key": keys,
            "version": versions,
            "content_hash": digests,
            "payload": chosen(clean.payloads),
            "flags": chosen(clean.flags),
            "row_number": pc.add(chosen(clean.rows), first_row),
            "batch_id": pa.array([batch_id] * count, pa.string()),
            "supersedes_id": supersedes,
            "ingested_at": [now] * count,
        },
        fields={name: chosen(v) for name, v in zip(clean.names, clean.values, strict=True)},
    )


def _against_known(
    plan: ChunkPlan, clean: _Clean, fresh: pa.Array, known: Known, report: BatchReport
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Which first-seen rows are new versions (positions, versions, superseded ids); rows
    whose key is stored with the same content are unchanged."""
    if not known:  # a first load: every first-seen row is version 1
        count = len(fresh)
        return fresh, pa.repeat(pa.scalar(1, pa.int64()), count), pa.nulls(count, pa.string())
    new: list[int] = []
    versions: list[int] = []
    supersedes: list[str | None] = []
    positions = fresh.to_pylist()
    keys = pc.take(clean.keys, fresh).to_pylist()
    digests = pc.take(clean.digests, fresh).to_pylist()
    for i, key, digest in zip(positions, keys, digests, strict=True):
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
    return (
        pa.array(new, pa.int64()),
        pa.array(versions, pa.int64()),
        pa.array(supersedes, pa.string()),
    )


def _duplicate(
    plan: ChunkPlan,
    report: BatchReport,
    first_row: int,
    clean: _Clean,
    i: int,
    source_id: str,
    batch_id: str,
    where: str,
    now: datetime,
) -> None:
    """Quarantine a clean row whose key came earlier in the input with other content."""
    key = clean.keys[i].as_py()
    row = clean.rows[i].as_py()
    problem = Problem(
        "duplicate-key",
        clean.key_field,
        f"record key {key!r} appears earlier in this input with other values",
    )
    outcome = Outcome(first_row + row, clean.raws[i], None, problem)
    _quarantine(plan, report, batch_id, source_id, where, outcome, now)
