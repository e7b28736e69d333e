"""Ingest is idempotent, versions changed rows, drops unshared fields and always reconciles."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import SourceDefinition, shipped_definitions
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.models import DataSharingAgreement, QuarantinedRow, SourceRecord
from immigrationos.sources.plan import BatchReport
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.DATA_INTEGRATION, "test ingest")


def _definition(
    fmt: str = "csv", allowed: tuple[str, ...] = ("rid", "name", "dob")
) -> SourceDefinition:
    return SourceDefinition.model_validate(
        {
            "id": "people",
            "name": "People",
            "format": fmt,
            "record_key": "rid",
            "fields": {"rid": "string", "name": "string", "dob": "date", "secret": "string"},
            "agreement": {
                "legal_authority": "Test authority, synthetic",
                "permitted_purposes": ["data-integration"],
                "allowed_fields": list(allowed),
                "retention_days": 30,
            },
        }
    )


def _register(runtime: Runtime, definition: SourceDefinition) -> None:
    with transaction(runtime.sessions) as session:
        register(session, definition, CTX)


def _ingest(runtime: Runtime, path: Path) -> BatchReport:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return ingest_file(gw.session, gw, "people", path)


def _records(runtime: Runtime) -> list[SourceRecord]:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return gw.search(
            SourceRecord,
            params={},
            order_by=[SourceRecord.record_key, SourceRecord.version],
            limit=1000,
        )


def _write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("rid,name,dob,secret\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_reingest_is_idempotent_and_changes_become_versions(
    runtime: Runtime, tmp_path: Path
) -> None:
    _register(runtime, _definition())
    first = _write_csv(tmp_path / "a.csv", ["1,Ana,1990-01-02,x", "2,Bo,1980-03-04,y"])
    r1 = _ingest(runtime, first)
    r2 = _ingest(runtime, first)
    assert (r1.read, r1.loaded, r1.unchanged) == (2, 2, 0)
    assert (r2.read, r2.loaded, r2.unchanged) == (2, 0, 2)
    changed = _write_csv(tmp_path / "b.csv", ["1,Ana,1990-02-01,x", "2,Bo,1980-03-04,y"])
    r3 = _ingest(runtime, changed)
    assert (r3.loaded, r3.unchanged) == (1, 1)
    records = _records(runtime)
    assert [(r.record_key, r.version) for r in records] == [("1", 1), ("1", 2), ("2", 1)]
    assert records[1].supersedes_id == records[0].id
    assert records[0].payload == {"rid": "1", "name": "Ana", "dob": "1990-01-02"}


def test_fields_outside_the_agreement_are_dropped_and_counted(
    runtime: Runtime, tmp_path: Path
) -> None:
    _register(runtime, _definition())
    report = _ingest(runtime, _write_csv(tmp_path / "a.csv", ["1,Ana,1990-01-02,x"]))
    assert report.dropped_fields == {"secret": 1}
    assert "secret" not in _records(runtime)[0].payload


def test_rows_without_a_key_are_quarantined_and_counts_reconcile(
    runtime: Runtime, tmp_path: Path
) -> None:
    _register(runtime, _definition())
    report = _ingest(runtime, _write_csv(tmp_path / "a.csv", ["1,Ana,,x", ",Bo,1980-03-04,y"]))
    assert (report.read, report.loaded, report.quarantined) == (2, 1, 1)
    assert report.reconciles


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_jsonl_and_parquet_inputs(runtime: Runtime, tmp_path: Path, fmt: str) -> None:
    _register(runtime, _definition(fmt))
    rows = [{"rid": "1", "name": "Ana", "dob": "1990-01-02", "secret": "x"}]
    path = tmp_path / f"a.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    assert _ingest(runtime, path).loaded == 1
    assert _ingest(runtime, path).unchanged == 1


def test_a_malformed_jsonl_line_is_quarantined_with_its_row(
    runtime: Runtime, tmp_path: Path
) -> None:
    _register(runtime, _definition("jsonl"))
    path = tmp_path / "a.jsonl"
    path.write_text('{"rid": "1"}\n{not json\n')
    report = _ingest(runtime, path)
    assert (report.loaded, report.quarantined) == (1, 1)
    with unit_of_work(runtime.sessions, CTX) as gw:
        (row,) = gw.search(QuarantinedRow, params={})
    assert (row.reason, row.row_number, row.raw) == ("json", 2, b"{not json\n")
    assert str(path) in row.message and "row 2" in row.message


def test_a_missing_file_is_a_clear_error(runtime: Runtime, tmp_path: Path) -> None:
    _register(runtime, _definition())
    with pytest.raises(ValidationFailed, match="no such file"):
        _ingest(runtime, tmp_path / "absent.csv")


def test_a_changed_agreement_becomes_a_new_version(runtime: Runtime) -> None:
    _register(runtime, _definition())
    _register(runtime, _definition())
    _register(runtime, _definition(allowed=("rid", "name")))
    with transaction(runtime.sessions) as session:
        versions = session.scalars(select(DataSharingAgreement.version)).all()
    assert sorted(versions) == [1, 2]


def test_every_shipped_definition_is_valid_and_tax_data_is_investigation_only() -> None:
    definitions = {d.id: d for d in shipped_definitions()}
    assert {
        "arrivals",
        "visas",
        "benefits",
        "court",
        "encounters",
        "convictions",
        "tax_addresses",
        "citizenship_evidence",
        "departures",
    } <= set(definitions)
    tax = definitions["tax_addresses"].agreement
    assert [p.value for p in tax.permitted_purposes] == ["criminal-investigation"]
    assert tax.prerequisites["bulk_requests"] == "refused"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_impossible_dates_are_quarantined_on_every_path(
    runtime: Runtime, tmp_path: Path, fmt: str
) -> None:
    """The columnar path (CSV) and the row path (JSON Lines) refuse the same dates."""
    _register(runtime, _definition(fmt))
    dates = ["2023-02-30", "2023-04-31", "2023-13-01", "2024-02-29", "2023-1-5"]
    if fmt == "csv":
        path = _write_csv(tmp_path / "a.csv", [f"{i},N,{d},x" for i, d in enumerate(dates)])
    else:
        path = tmp_path / "a.jsonl"
        path.write_text(
            "".join(
                json.dumps({"rid": str(i), "name": "N", "dob": d}) + "\n"
                for i, d in enumerate(dates)
            )
        )
    report = _ingest(runtime, path)
    assert (report.loaded, report.quarantined) == (1, 4)
    assert report.quarantine_reasons == {"date": 4}
    (record,) = _records(runtime)
    assert record.payload["dob"] == "2024-02-29"
