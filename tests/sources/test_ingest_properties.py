"""Property tests of the ingest parsers, the validator and the pipeline's bookkeeping.

Arbitrary bytes in (non-UTF-8 bytes, quotes, delimiters, newlines, NULs, formula prefixes,
huge cells, placeholders, out-of-range numbers and dates), and always one of two outcomes per
row: a loaded record or a quarantine entry carrying the original bytes. The batch reconciles,
nothing is lost, and ingesting the same file again loads nothing.

The ingest properties run on SQLite, on a fresh database per example: a copy of one migrated
template (migrating per example would cost most of the time budget). The validator properties
need no database and run many more examples.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from immigrationos.core.errors import ValidationFailed
from immigrationos.core.settings import Settings
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.models import QuarantinedRow, SourceRecord
from immigrationos.sources.plan import BatchReport
from immigrationos.sources.registry import register
from immigrationos.sources.validate import (
    FORMULA_START,
    PLACEHOLDER_COUNTRIES,
    PLACEHOLDER_DATES,
    PLACEHOLDER_TEXT,
    RowInvalid,
    RowValidator,
)
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.DATA_INTEGRATION, "ingest property tests")
CODES = {"M": "male", "F": "female", "X": "unspecified"}
FIELDS: dict[str, Any] = {
    "rid": {"type": "string", "required": True},
    "name": "name",
    "dob": "date",
    "country": "country",
    "anum": "a_number",
    "sex": {"type": "code", "codes": CODES},
    "n": "integer",
    "seen": "timestamp",
    "note": {"type": "string", "max_length": 64},
    "tags": "nested",
    "extra": "string",  # outside the agreement: always dropped
}
COLUMNS = list(FIELDS)
SOURCE = {"csv": "props_csv", "jsonl": "props_jsonl"}

DB_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FAST_SETTINGS = settings(max_examples=120, deadline=None, database=None)


def _definition(
    fmt: str, fields: dict[str, Any] | None = None, source_id: str | None = None
) -> SourceDefinition:
    fields = FIELDS if fields is None else fields
    return SourceDefinition.model_validate(
        {
            "id": source_id or SOURCE[fmt],
            "name": f"Property test source ({fmt})",
            "format": fmt,
            "record_key": "rid",
            "fields": fields,
            "agreement": {
                "legal_authority": "Test authority, synthetic people only",
                "permitted_purposes": ["data-integration"],
                "allowed_fields": [f for f in fields if f != "extra"],
                "retention_days": 30,
            },
        }
    )


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite database with both property sources registered, to copy."""
    folder = tmp_path_factory.mktemp("template")
    path = folder / "immos.db"
    rt = open_runtime(Settings(mode="demo", data_dir=folder, database_url=f"sqlite:///{path}"))
    try:
        with transaction(rt.sessions) as session:
            register(session, _definition("csv"), CTX)
            register(session, _definition("jsonl"), CTX)
    finally:
        rt.close()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path


@pytest.fixture(scope="module")
def fresh(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A factory of fresh databases (a copy of the template each), closed afterwards."""
    opened: list[Runtime] = []
    counter = itertools.count()

    def make() -> tuple[Runtime, Path]:
        while opened:  # one example at a time: the previous example's database is done
            opened.pop().close()
        folder = tmp_path_factory.mktemp(f"example{next(counter)}")
        path = folder / "immos.db"
        shutil.copyfile(template, path)
        url = f"sqlite:///{path}"
        rt = open_runtime(Settings(mode="demo", data_dir=folder, database_url=url), upgrade=False)
        opened.append(rt)
        return rt, folder

    yield make
    for rt in opened:
        rt.close()


def _ingest(rt: Runtime, source_id: str, path: Path) -> BatchReport:
    with unit_of_work(rt.sessions, CTX) as gw:
        return ingest_file(gw.session, gw, source_id, path, chunk_rows=7)


@dataclass
class Stored:
    records: list[SourceRecord]
    quarantined: list[QuarantinedRow]


def _stored(rt: Runtime, batch_id: str) -> Stored:
    with unit_of_work(rt.sessions, CTX) as gw:
        records = gw.select(
            select(SourceRecord).where(SourceRecord.batch_id == batch_id),
            SourceRecord,
            params={"batch": batch_id},
        )
        quarantined = gw.select(
            select(QuarantinedRow).where(QuarantinedRow.batch_id == batch_id),
            QuarantinedRow,
            params={"batch": batch_id},
        )
    return Stored(records, quarantined)


def _check_batch(report: BatchReport, stored: Stored, data: bytes, path: Path) -> None:
    """Reconciles; every row is a record or a quarantine entry; quarantine keeps the bytes."""
    assert report.reconciles, report
    assert len(stored.records) == report.loaded
    assert len(stored.quarantined) == report.quarantined
    numbers = [r.row_number for r in stored.records] + [q.row_number for q in stored.quarantined]
    assert len(set(numbers)) == len(numbers), "a row number was both loaded and quarantined"
    assert set(numbers) <= set(range(1, report.read + 1))
    # rows neither stored nor quarantined are exactly the ones counted as unchanged
    assert report.read - len(numbers) == report.unchanged
    for q in stored.quarantined:
        assert q.raw and q.raw in data, (q.row_number, q.raw[:80])
        assert q.message.startswith(f"{path}: row {q.row_number}: "), q.message
        assert q.reason and report.quarantine_reasons[q.reason] > 0
    for r in stored.records:
        assert "extra" not in r.payload
        for name, flag in r.flags.items():
            assert flag["flag"] == "placeholder"
            assert r.payload.get(name) is None, (name, r.payload)
        orjson.dumps(r.payload)


def _check_reingest(first: BatchReport, second: BatchReport) -> None:
    """The same file again: nothing new, every loaded row unchanged, quarantine repeated."""
    assert second.reconciles, second
    assert second.read == first.read
    assert second.loaded == 0, (first, second)
    assert second.unchanged == first.loaded + first.unchanged
    assert second.quarantined == first.quarantined
    assert second.quarantine_reasons == first.quarantine_reasons


# --------------------------------------------------------------------------- inputs

#: Values that exercise one check each: placeholders, formulas, encodings, ranges, sizes.
TRICKY: list[bytes] = [
    b"", b" ", b"NA NA", b"na  na", b"UNKNOWN", b"unknown", b"XXX", b"N/A", b"1900-01-01",
    b"9999-12-31", b"0", b"-", b'=HYPERLINK("http://example.invalid","x")', b"+1", b"@SUM(A1)",
    b"-cmd", b"\t=1", b"1990-02-03", b"03/02/1990", b"1850-01-01", b"USA", b"usa", b"ZZZ",
    b"A012345678", b"12345678", b"A-0123-45678", b"000000000", "١٢٣٤٥٦٧٨٩".encode(),
    b"M", b"Q", b"42", b"99999999999999999999", b"-9223372036854775809", b"1_000",
    b"2020-01-01T10:00:00Z", b"2020-01-01T10:00:00", b"0001-01-01T00:00:00+01:00",
    b"9999-12-31T23:59:59-01:00", b"[1, 2]", b'{"a": [1]}', b"[NaN]", b"[Infinity]",
    b"[99999999999999999999]", b"[" * 300 + b"]" * 300, b'["\\ud800"]', b"not json",
    b"Jos\xe9", b"\xff\xfe", b"caf\xc3\xa9", b"\xef\xbb\xbfAna", b"a\x00b", b"x" * 70,
    b"y" * 600, b"z" * 20_000, b'"', b",", b";", b"\n", b"\r\n", b"\r", b"Ana  Maria",
]  # fmt: skip
TRICKY_TEXT = [t.decode("utf-8", "surrogateescape") for t in TRICKY]
#: Key cells that must never load (so generated keys stay unique among loaded rows).
BAD_KEYS = [b"", b"  ", b"NA NA", b"=1+1", b"\xff", b"a\x00", b"k" * 600]

cells = st.one_of(
    st.sampled_from(TRICKY),
    st.binary(max_size=12),
    st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


def _csv_cell(cell: bytes) -> bytes:
    if any(c in cell for c in (b",", b'"', b"\n", b"\r")):
        return b'"' + cell.replace(b'"', b'""') + b'"'
    return cell


@st.composite
def csv_rows(draw: st.DrawFn, width: int, index: int) -> list[bytes]:
    """One row of cells; its key starts ``R{index}-`` unless it is a key that never loads."""
    if draw(st.integers(0, 9)) == 0:  # ragged
        count = draw(st.integers(1, width + 3).filter(lambda c: c != width))
        return [draw(cells) for _ in range(count)]
    key = draw(st.one_of(st.sampled_from(BAD_KEYS), cells.map(lambda c: b"R%d-" % index + c)))
    return [key] + [draw(cells) for _ in range(width - 1)]


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, int]:
    """A CSV file (correctly quoted, so its row count is known) and that count."""
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    header = draw(st.permutations(COLUMNS))
    count = draw(st.integers(0, 12))
    lines = [b",".join(h.encode() for h in header)]
    for index in range(1, count + 1):
        row = draw(csv_rows(len(header), index))
        line = b",".join(_csv_cell(c) for c in row)
        lines.append(line if line else b'""')  # a lone empty cell is a row, not a blank line
    ending = newline if draw(st.booleans()) or count == 0 else b""
    return newline.join(lines) + ending, count


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(TRICKY_TEXT),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
#: Whole lines the JSONL reader must survive (each one row, none blank).
TRICKY_LINES: list[bytes] = [
    b"{not json", b"[1, 2]", b'"a string"', b"null", b"42", b"{}", b'{"rid": null}',
    b'{"rid": "R0-big", "n": ' + b"9" * 4400 + b"}",
    b'{"rid": "R0-deep", "tags": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"rid": "R0-nan", "tags": [NaN]}', b'{"rid": "Jos\xe9"}', b"\xef\xbb\xbf{}",
    b'{"rid": "R0-dup", "rid": "R0-dup2"}', b"\x00",
]  # fmt: skip


@st.composite
def jsonl_lines(draw: st.DrawFn, index: int) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.sampled_from(TRICKY_LINES))
    if kind == 1:
        line = draw(st.binary(min_size=1, max_size=30)).replace(b"\n", b" ")
        return line if line.strip() else b"?" + line
    key = draw(
        st.one_of(
            st.sampled_from(BAD_KEYS).map(lambda k: k.decode("utf-8", "surrogateescape")),
            st.text(max_size=8).map(lambda t: f"R{index}-{t}"),
        )
    )
    obj: dict[str, Any] = {"rid": key}
    for name in draw(st.lists(st.sampled_from(COLUMNS[1:]), unique=True)):
        obj[name] = draw(json_values)
    obj.update(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)))
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def jsonl_files(draw: st.DrawFn) -> tuple[bytes, int]:
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    count = draw(st.integers(0, 12))
    lines = [draw(jsonl_lines(index)) for index in range(1, count + 1)]
    blank = draw(st.sampled_from([b"", b"\n", b"  \n"]))  # blank lines are not rows
    return newline.join(lines) + newline + blank, count


# --------------------------------------------------------------------------- ingest


def _run_twice(fresh: Any, fmt: str, data: bytes) -> tuple[BatchReport, Stored, Path]:
    rt, folder = fresh()
    path = folder / f"input.{fmt}"
    path.write_bytes(data)
    first = _ingest(rt, SOURCE[fmt], path)
    stored = _stored(rt, first.batch_id)
    _check_batch(first, stored, data, path)
    second = _ingest(rt, SOURCE[fmt], path)
    _check_batch(second, _stored(rt, second.batch_id), data, path)
    _check_reingest(first, second)
    return first, stored, path


@DB_SETTINGS
@given(generated=csv_files())
def test_csv_rows_all_load_or_quarantine_and_reingest_is_idempotent(
    fresh: Any, generated: tuple[bytes, int]
) -> None:
    data, count = generated
    first, stored, _ = _run_twice(fresh, "csv", data)
    assert first.read == count
    assert first.unchanged == 0  # keys are unique: every row is new in a fresh database
    numbers = {r.row_number for r in stored.records} | {q.row_number for q in stored.quarantined}
    assert numbers == set(range(1, count + 1))
    for record in stored.records:
        assert record.record_key.startswith(f"R{record.row_number}-"), record.record_key


@DB_SETTINGS
@given(generated=jsonl_files())
def test_jsonl_lines_all_load_or_quarantine_and_reingest_is_idempotent(
    fresh: Any, generated: tuple[bytes, int]
) -> None:
    data, count = generated
    first, stored, _ = _run_twice(fresh, "jsonl", data)
    assert first.read == count
    numbers = {r.row_number for r in stored.records} | {q.row_number for q in stored.quarantined}
    assert numbers <= set(range(1, count + 1))
    assert len(numbers) == count - first.unchanged
    for record in stored.records:
        assert record.record_key.startswith(f"R{record.row_number}-") or (
            record.record_key.startswith("R0-")
        ), record.record_key


def test_every_tricky_value_in_every_column_loads_or_is_quarantined(fresh: Any) -> None:
    """The edge corpus, deterministically: one row per (column, value), the rest valid."""
    valid = dict(name=b"Ana Lima", dob=b"1990-01-02", country=b"BRA", anum=b"A012345678")
    valid.update(sex=b"F", n=b"7", seen=b"2020-01-01T10:00:00Z", note=b"ok", tags=b"[1]")
    lines = [b",".join(c.encode() for c in COLUMNS)]
    for column in range(1, len(COLUMNS)):
        for value in TRICKY:
            row = [b"R%d-" % len(lines), *(valid.get(c, b"") for c in COLUMNS[1:])]
            row[column] = value
            lines.append(b",".join(_csv_cell(c) for c in row))
    data = b"\n".join(lines) + b"\n"
    first, _, _ = _run_twice(fresh, "csv", data)
    assert first.read == len(lines) - 1 and first.unchanged == 0
    assert first.loaded >= len(COLUMNS) - 1  # each column takes some of the corpus as valid


def test_every_tricky_json_line_loads_or_is_quarantined(fresh: Any) -> None:
    lines = [b'{"rid": "R1-ok", "name": "Ana Lima"}', *TRICKY_LINES]
    data = b"\n".join(lines) + b"\n"
    first, _, _ = _run_twice(fresh, "jsonl", data)
    assert first.read == len(lines)


chaos = st.lists(
    st.one_of(
        st.binary(max_size=16),
        st.sampled_from(TRICKY),
        st.sampled_from([b",", b'"', b"\n", b"\r\n", b"\r", b"\x00", b'""', b'",']),
    ),
    max_size=30,
).map(b"".join)


@DB_SETTINGS
@given(body=chaos)
def test_csv_of_arbitrary_bytes_reconciles_and_loses_nothing(fresh: Any, body: bytes) -> None:
    """Unbalanced quotes, stray CRs, NULs: the reader decides the rows; none may vanish."""
    data = b",".join(c.encode() for c in COLUMNS) + b"\n" + body
    _run_twice(fresh, "csv", data)


@DB_SETTINGS
@given(body=chaos)
def test_jsonl_of_arbitrary_bytes_reconciles_and_loses_nothing(fresh: Any, body: bytes) -> None:
    first, _, _ = _run_twice(fresh, "jsonl", body)
    assert first.read == sum(1 for line in body.split(b"\n") if line.strip())


@DB_SETTINGS
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(["1", "2"]), st.sampled_from(["Ana", "Bo", "Cy"])),
        min_size=1,
        max_size=6,
    )
)
def test_reingest_is_idempotent_when_a_key_repeats_in_the_file(
    fresh: Any, rows: list[tuple[str, str]]
) -> None:
    """Two rows with one key in one input must not make a new version at every re-ingest."""
    header = ",".join(COLUMNS)
    lines = [f"{rid},{name}" + "," * (len(COLUMNS) - 2) for rid, name in rows]
    _run_twice(fresh, "csv", ("\n".join([header, *lines]) + "\n").encode())


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"rid": "a_number", "name": "string"}, "12345678,Ana"),
        ({"rid": "name", "name": "string"}, "Ana  Maria,Ana"),
        ({"rid": "date", "name": "string"}, "20200131,Ana"),
        ({"rid": "country", "name": "string"}, "usa,Ana"),
    ],
)
def test_reingest_is_idempotent_when_the_key_needs_cleaning(
    runtime: Runtime, tmp_path: Path, fields: dict[str, Any], line: str
) -> None:
    """The stored key is the cleaned one; looking it up by the raw value finds nothing."""
    with transaction(runtime.sessions) as session:
        register(session, _definition("csv", fields, "props"), CTX)
    source = tmp_path / "input.csv"
    source.write_text(f"rid,name\n{line}\n")
    first = _ingest(runtime, "props", source)
    second = _ingest(runtime, "props", source)
    assert (first.loaded, first.quarantined) == (1, 0)
    assert (second.loaded, second.unchanged) == (0, 1)


def test_a_file_in_the_wrong_shape_is_refused_whole(fresh: Any) -> None:
    rt, folder = fresh()
    path = folder / "input.csv"
    path.write_bytes(";".join(COLUMNS).encode() + b"\nR1-;Ana\n")
    with pytest.raises(ValidationFailed, match=re.escape("delimiter: ';'")):
        _ingest(rt, SOURCE["csv"], path)


# --------------------------------------------------------------------------- validator alone

TYPES = ["string", "name", "date", "timestamp", "integer", "code", "country", "a_number", "nested"]
SPECS: dict[str, Any] = {
    "string": {"type": "string", "max_length": 64},
    "code": {"type": "code", "codes": CODES},
    "date": {"type": "date", "formats": ["%Y-%m-%d", "%d/%m/%Y"]},
}
VALIDATORS = {
    kind: RowValidator(_definition("csv", {"rid": "string", "v": SPECS.get(kind, kind)}, "props"))
    for kind in TYPES
}
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _formed(kind: str, value: Any) -> None:
    """Assert ``value`` has the documented cleaned form of ``kind``."""
    json.dumps(value, allow_nan=False)  # standard JSON, storable on every backend
    orjson.dumps(value)  # what the content hash is computed with
    if kind in ("string", "name", "code"):
        assert isinstance(value, str) and value
        assert value == value.strip() and "\x00" not in value
        value.encode("utf-8")
        assert value[0] not in FORMULA_START
        assert re.sub(r"\s+", " ", value.upper()) not in PLACEHOLDER_TEXT
        if kind == "string":
            assert len(value) <= 64
        if kind == "name":
            assert not re.search(r"\s\s", value)
        if kind == "code":
            assert value in CODES.values()
    elif kind == "date":
        assert isinstance(value, str) and _ISO_DATE.fullmatch(value), value
        parsed = date.fromisoformat(value)
        assert 1900 <= parsed.year <= 2100 and value not in PLACEHOLDER_DATES
    elif kind == "timestamp":
        moment = datetime.fromisoformat(value)
        assert moment.utcoffset() == timedelta(0), value
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool)
    elif kind == "country":
        assert isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value), value
        assert value not in PLACEHOLDER_COUNTRIES
    elif kind == "a_number":
        assert isinstance(value, str) and re.fullmatch(r"A[0-9]{9}", value), value
        assert value != "A000000000"
    elif kind == "nested":
        assert isinstance(value, list | dict)


def _outcome(kind: str, value: Any) -> None:
    """Either a cleaned value of the documented form, a flagged placeholder, or a refusal."""
    try:
        cleaned = VALIDATORS[kind]({"rid": "k", "v": value})
    except RowInvalid as invalid:
        assert invalid.problem.field == "v", invalid.problem
        assert invalid.problem.message.startswith("field v: "), invalid.problem
        assert invalid.problem.reason
        return
    assert cleaned.payload["rid"] == "k"
    if "v" in cleaned.flags:
        assert cleaned.payload["v"] is None
        assert cleaned.flags["v"]["flag"] == "placeholder"
    elif cleaned.payload["v"] is not None:
        _formed(kind, cleaned.payload["v"])


text_inputs = st.one_of(
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=20),
    st.text(alphabet="0123456789-/ATZ:+. ", max_size=26),
    st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape")),
)


@pytest.mark.parametrize("kind", TYPES)
@FAST_SETTINGS
@given(value=text_inputs)
def test_any_text_cleans_to_the_documented_form_or_is_refused_naming_the_field(
    kind: str, value: str
) -> None:
    _outcome(kind, value)


@pytest.mark.parametrize("kind", TYPES)
@FAST_SETTINGS
@given(value=json_values)
def test_any_json_value_cleans_to_the_documented_form_or_is_refused_naming_the_field(
    kind: str, value: Any
) -> None:
    _outcome(kind, value)


#: JSON values (as JSON Lines rows carry them) that sit on the edges of each check.
TRICKY_JSON: list[Any] = [
    2**63, -(2**63) - 1, 10**30, float("nan"), float("inf"), -0.0, 1.5, True, False, 0,
    [2**64], {"a": [float("nan")]}, ["\ud800"], [[[[[[]]]]]], {"\u0000": 1}, "",
]  # fmt: skip


@pytest.mark.parametrize("kind", TYPES)
def test_every_tricky_value_cleans_to_the_documented_form_or_is_refused(kind: str) -> None:
    """The whole corpus of edge values through each check; every failure listed at once."""
    failures = []
    for value in [*TRICKY_TEXT, *TRICKY_JSON]:
        try:
            _outcome(kind, value)
        except Exception as exc:  # collected, then reported together
            failures.append(f"{value!r:.50}: {type(exc).__name__}: {exc}"[:160])
    assert not failures, "\n".join(failures)


#: The placeholders the issue names, per type (dates also have placeholder dates).
PLACEHOLDER_TYPES = ["string", "name", "code", "date", "country", "a_number"]


@st.composite
def placeholders(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(PLACEHOLDER_TYPES))
    choices = ["NA NA", "UNKNOWN", "XXX"] + (sorted(PLACEHOLDER_DATES) if kind == "date" else [])
    if kind in ("string", "name", "code"):
        choices += sorted(PLACEHOLDER_TEXT)
    word = draw(st.sampled_from(choices))
    word = "".join(c.lower() if draw(st.booleans()) else c for c in word)
    if kind in ("string", "name", "code"):
        word = word.replace(" ", draw(st.sampled_from([" ", "  ", "\t", "\u00a0"])))
    pad = st.sampled_from(["", " ", "  ", "\t"])
    return kind, draw(pad) + word + draw(pad)


@FAST_SETTINGS
@given(case=placeholders())
def test_placeholders_are_flagged_and_never_in_the_payload(case: tuple[str, str]) -> None:
    kind, value = case
    cleaned = VALIDATORS[kind]({"rid": "k", "v": value})
    assert cleaned.payload["v"] is None
    assert cleaned.flags == {"v": {"flag": "placeholder", "value": value}}
    assert value not in cleaned.payload.values()
