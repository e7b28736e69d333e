"""Malformed input, one kind at a time: each bad row is quarantined with a reason, a message
naming the file, the row and the field, and the bytes exactly as the file held them; the good
rows around it load. A file that cannot be read as declared is refused whole, leaving nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.models import IngestBatch, QuarantinedRow, SourceRecord
from immigrationos.sources.plan import BatchReport
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.DATA_INTEGRATION, "malformed input tests")
HEADER = "rid,name,dob,sex,anum,country"
GOOD = "1,Ana Lima,1990-01-02,F,A012345678,BRA"


def _definition(fmt: str = "csv") -> SourceDefinition:
    return SourceDefinition.model_validate(
        {
            "id": "people",
            "name": "People",
            "format": fmt,
            "record_key": "rid",
            "fields": {
                "rid": {"type": "string", "required": True},
                "name": {"type": "name", "required": True},
                "dob": "date",
                "sex": {"type": "code", "codes": ["M", "F", "X"]},
                "anum": "a_number",
                "country": "country",
            },
            "agreement": {
                "legal_authority": "Test authority, synthetic people only",
                "permitted_purposes": ["data-integration"],
                "allowed_fields": ["rid", "name", "dob", "sex", "anum", "country"],
                "retention_days": 30,
            },
        }
    )


@pytest.fixture
def people(runtime: Runtime) -> Runtime:
    """The runtime with the ``people`` source registered."""
    with transaction(runtime.sessions) as session:
        register(session, _definition(), CTX)
    return runtime


@pytest.fixture
def people_jsonl(runtime: Runtime) -> Runtime:
    with transaction(runtime.sessions) as session:
        register(session, _definition("jsonl"), CTX)
    return runtime


def _ingest(runtime: Runtime, path: Path) -> BatchReport:
    with unit_of_work(runtime.sessions, CTX) as gw:
        report = ingest_file(gw.session, gw, "people", path)
    assert report.reconciles, report
    return report


def _quarantined(runtime: Runtime) -> list[QuarantinedRow]:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return gw.search(QuarantinedRow, params={}, order_by=[QuarantinedRow.row_number])


def _records(runtime: Runtime) -> list[SourceRecord]:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return gw.search(SourceRecord, params={}, order_by=[SourceRecord.row_number])


def _csv(path: Path, *rows: bytes) -> tuple[Path, list[bytes]]:
    """Write HEADER and ``rows`` (each ending in a newline); return the path and the lines."""
    lines = [row + b"\n" for row in rows]
    path.write_bytes(HEADER.encode() + b"\n" + b"".join(lines))
    return path, lines


def _one_bad_row(
    runtime: Runtime, path: Path, lines: list[bytes], number: int, reason: str, field: str | None
) -> QuarantinedRow:
    """The file loaded all but row ``number``, which is quarantined as described."""
    report = _ingest(runtime, path)
    assert (report.read, report.loaded, report.quarantined) == (len(lines), len(lines) - 1, 1)
    assert report.quarantine_reasons == {reason: 1}
    [row] = _quarantined(runtime)
    assert (row.row_number, row.reason, row.field, row.status) == (number, reason, field, "open")
    assert row.message.startswith(f"{path}: row {number}: "), row.message
    if field is not None:
        assert f"field {field}" in row.message, row.message
    assert row.raw == lines[number - 1]
    assert [r.row_number for r in _records(runtime)] == [
        n for n in range(1, len(lines) + 1) if n != number
    ]
    return row


def test_a_latin1_row_in_a_utf8_file_is_quarantined_with_its_bytes(
    people: Runtime, tmp_path: Path
) -> None:
    path, lines = _csv(
        tmp_path / "people.csv",
        GOOD.encode(),
        "2,José Núñez,1980-03-04,M,,MEX".encode("latin-1"),
        b"3,Bo Chen,1970-05-06,X,,CHN",
    )
    row = _one_bad_row(people, path, lines, 2, "encoding", "name")
    assert "b'\\xe9'" in row.message and "encoding:" in row.message, row.message
    assert row.raw == "2,José Núñez,1980-03-04,M,,MEX\n".encode("latin-1")


def test_a_file_with_another_delimiter_is_refused_whole_with_the_fix(
    people: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(HEADER.replace(",", ";") + "\n" + GOOD.replace(",", ";") + "\n")
    with pytest.raises(ValidationFailed) as refused:
        _ingest(people, path)
    message = str(refused.value)
    assert str(path) in message and "delimiter: ';'" in message, message
    assert "nothing was loaded" in message
    with transaction(people.sessions) as session:
        assert session.scalar(select(func.count()).select_from(IngestBatch)) == 0
    assert _records(people) == [] and _quarantined(people) == []


def test_a_ragged_row_is_quarantined_and_the_others_load(people: Runtime, tmp_path: Path) -> None:
    path, lines = _csv(
        tmp_path / "people.csv",
        GOOD.encode(),
        b"2,Bo Chen,1970-05-06",
        b"3,Cy Diaz,1960-07-08,M,,USA",
    )
    row = _one_bad_row(people, path, lines, 2, "ragged", None)
    assert "has 3 fields; the header has 6" in row.message


def test_a_row_with_too_many_fields_is_ragged_too(people: Runtime, tmp_path: Path) -> None:
    path, lines = _csv(tmp_path / "people.csv", GOOD.encode(), b"2,Bo,1970-05-06,M,,USA,extra")
    row = _one_bad_row(people, path, lines, 2, "ragged", None)
    assert "has 7 fields" in row.message


def test_a_huge_field_is_quarantined_as_too_long(people: Runtime, tmp_path: Path) -> None:
    huge = b"2,Bo " + b"x" * 100_000 + b",1970-05-06,M,,USA"
    path, lines = _csv(tmp_path / "people.csv", GOOD.encode(), huge)
    row = _one_bad_row(people, path, lines, 2, "too-long", "name")
    assert "100,003 characters (limit 512)" in row.message, row.message
    assert len(row.raw) == len(huge) + 1


@pytest.mark.parametrize(
    "cell",
    [
        b'"=HYPERLINK(""http://example.invalid/x"",""click"")"',
        b"+1",
        b"@SUM(A1:A9)",
        b"=1+1",
        b" =cmd",
    ],
)
def test_a_spreadsheet_formula_is_quarantined(people: Runtime, tmp_path: Path, cell: bytes) -> None:
    path, lines = _csv(tmp_path / "people.csv", GOOD.encode(), b"2," + cell + b",1970-05-06,M,,")
    row = _one_bad_row(people, path, lines, 2, "formula", "name")
    assert "spreadsheet formulas are not accepted" in row.message, row.message


def test_bad_json_lines_are_quarantined_and_the_others_load(
    people_jsonl: Runtime, tmp_path: Path
) -> None:
    good = {"rid": "1", "name": "Ana Lima", "dob": "1990-01-02"}
    lines = [
        json.dumps(good).encode() + b"\n",
        b'{"rid": "2", "name": "Bo\n',  # malformed: the object never closes
        b'["3", "Cy"]\n',  # JSON, but not an object
        b'"a string"\n',
        json.dumps({**good, "rid": "5"}).encode() + b"\n",
    ]
    path = tmp_path / "people.jsonl"
    path.write_bytes(b"".join(lines))
    report = _ingest(people_jsonl, path)
    assert (report.read, report.loaded, report.quarantined) == (5, 2, 3)
    assert report.quarantine_reasons == {"json": 3}
    rows = _quarantined(people_jsonl)
    assert [(r.row_number, r.reason, r.field) for r in rows] == [
        (2, "json", None),
        (3, "json", None),
        (4, "json", None),
    ]
    for row in rows:
        assert row.message.startswith(f"{path}: row {row.row_number}: "), row.message
        assert row.raw == lines[row.row_number - 1]
    assert "not JSON" in rows[0].message
    assert "not a JSON object" in rows[1].message and "not a JSON object" in rows[2].message
    assert [r.row_number for r in _records(people_jsonl)] == [1, 5]


def test_a_non_utf8_json_line_is_quarantined_as_encoding(
    people_jsonl: Runtime, tmp_path: Path
) -> None:
    lines = [b'{"rid": "1", "name": "Ana"}\n', '{"rid": "2", "name": "José"}\n'.encode("latin-1")]
    path = tmp_path / "people.jsonl"
    path.write_bytes(b"".join(lines))
    report = _ingest(people_jsonl, path)
    assert (report.loaded, report.quarantine_reasons) == (1, {"encoding": 1})
    [row] = _quarantined(people_jsonl)
    assert row.message.startswith(f"{path}: row 2: ") and row.raw == lines[1]


@pytest.mark.parametrize(
    ("cells", "reason", "field", "says"),
    [
        (b"2,Bo Chen,1970-13-45,M,,", "date", "dob", "'1970-13-45' is not a date"),
        (b"2,Bo Chen,05/06/1970,M,,", "date", "dob", "'05/06/1970' is not a date"),
        (b"2,Bo Chen,1850-05-06,M,,", "date-range", "dob", "outside 1900"),
        (b"2,Bo Chen,1970-05-06,Q,,", "code", "sex", "'Q' is not in the code table (F, M, X)"),
        (b"2,Bo Chen,1970-05-06,M,B12345,", "a-number", "anum", "is not an A-number"),
        (b"2,Bo Chen,1970-05-06,M,A1234567890,", "a-number", "anum", "is not an A-number"),
        (b"2,Bo Chen,1970-05-06,M,,US", "country", "country", "ISO 3166 alpha-3"),
        (b"2,,1970-05-06,M,,", "required", "name", "required, missing"),
        (b"2,   ,1970-05-06,M,,", "required", "name", "required, missing"),
        (b",Bo Chen,1970-05-06,M,,", "required", "rid", "required, missing"),
    ],
)
def test_a_value_that_fails_its_check_is_quarantined_naming_the_field(
    people: Runtime, tmp_path: Path, cells: bytes, reason: str, field: str, says: str
) -> None:
    path, lines = _csv(tmp_path / "people.csv", GOOD.encode(), cells, b"3,Cy Diaz,,,,")
    row = _one_bad_row(people, path, lines, 2, reason, field)
    assert row.message.startswith(f"{path}: row 2: field {field}: "), row.message
    assert says in row.message, row.message


PLACEHOLDER_CASES: list[tuple[str, str]] = [
    ("name", "NA NA"),
    ("name", "UNKNOWN"),
    ("name", "XXX"),
    ("name", "na  na"),
    ("sex", "UNKNOWN"),
    ("sex", "XXX"),
    ("dob", "1900-01-01"),
    ("dob", "UNKNOWN"),
    ("country", "XXX"),
    ("country", "UNKNOWN"),
    ("anum", "UNKNOWN"),
    ("anum", "XXX"),
    ("anum", "NA NA"),
    ("anum", "000000000"),
]


@pytest.mark.parametrize(("field", "value"), PLACEHOLDER_CASES)
def test_a_placeholder_loads_flagged_and_is_never_in_the_payload(
    people: Runtime, tmp_path: Path, field: str, value: str
) -> None:
    row: dict[str, Any] = {
        "rid": "2",
        "name": "Bo Chen",
        "dob": "1970-05-06",
        "sex": "M",
        "anum": "A012345678",
        "country": "CHN",
        field: value,
    }
    line = ",".join(row[c] for c in HEADER.split(",")).encode()
    path, _ = _csv(tmp_path / "people.csv", GOOD.encode(), line)
    report = _ingest(people, path)
    assert (report.loaded, report.quarantined) == (2, 0), report.quarantine_reasons
    assert report.flagged == {field: 1}
    record = _records(people)[1]
    assert record.flags == {field: {"flag": "placeholder", "value": value}}
    assert record.payload[field] is None
    assert value not in record.payload.values()


def test_every_placeholder_the_issue_names_in_one_row(people: Runtime, tmp_path: Path) -> None:
    path, _ = _csv(tmp_path / "people.csv", b"2,NA NA,1900-01-01,UNKNOWN,,XXX")
    report = _ingest(people, path)
    assert (report.loaded, report.quarantined) == (1, 0)
    [record] = _records(people)
    assert record.payload == {
        "rid": "2",
        "name": None,
        "dob": None,
        "sex": None,
        "anum": None,
        "country": None,
    }
    assert record.flags == {
        "name": {"flag": "placeholder", "value": "NA NA"},
        "dob": {"flag": "placeholder", "value": "1900-01-01"},
        "sex": {"flag": "placeholder", "value": "UNKNOWN"},
        "country": {"flag": "placeholder", "value": "XXX"},
    }


def test_a_placeholder_key_is_quarantined_not_loaded(people: Runtime, tmp_path: Path) -> None:
    path, lines = _csv(tmp_path / "people.csv", GOOD.encode(), b"UNKNOWN,Bo Chen,,,,")
    row = _one_bad_row(people, path, lines, 2, "missing-key", "rid")
    assert "the record key is missing" in row.message


def test_every_kind_of_bad_row_in_one_file_is_accounted_for(
    people: Runtime, tmp_path: Path
) -> None:
    """Nothing silently dropped: each row is a record or a quarantine entry, in order."""
    path, lines = _csv(
        tmp_path / "people.csv",
        GOOD.encode(),
        "2,José,,,,".encode("latin-1"),
        b"3,Bo",
        b"4,=1+1,,,,",
        b"5,Cy," + b"9" * 600 + b",,,",
        b"6,Di,1970-05-06,Q,,",
        b"7,Ed,,,B1,",
        b"8,,,,,",
        b'9,"Fay\nSmith",,,,',  # a quoted newline: one row over two lines
        b"10,NA NA,,,,",
    )
    report = _ingest(people, path)
    assert (report.read, report.loaded, report.quarantined) == (10, 3, 7)
    quarantined = _quarantined(people)
    assert [(q.row_number, q.reason) for q in quarantined] == [
        (2, "encoding"),
        (3, "ragged"),
        (4, "formula"),
        (5, "date"),
        (6, "code"),
        (7, "a-number"),
        (8, "required"),
    ]
    for q in quarantined:
        assert q.raw == lines[q.row_number - 1]
        assert q.message.startswith(f"{path}: row {q.row_number}: ")
    records = _records(people)
    assert [r.row_number for r in records] == [1, 9, 10]
    assert records[1].payload["name"] == "Fay Smith"  # a name's whitespace is collapsed
