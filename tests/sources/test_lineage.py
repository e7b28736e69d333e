"""Lineage names, for every value, the field, record, row, batch and ingest time behind it."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from immigrationos.audit.models import AuditEntry
from immigrationos.cli.lineage import app as lineage_cli
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound
from immigrationos.facts.models import Admission
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Identifier, Person, RecordLink
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.lineage import (
    CONSTANT,
    NOT_MAPPED,
    NOT_RECORDED,
    PARENT,
    RESOLVED,
    FactLineage,
    ValueLineage,
    fact_lineage,
    nested_path,
    person_lineage,
)
from immigrationos.sources.models import SourceRecord
from immigrationos.sources.plan import BatchReport
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.DATA_INTEGRATION, "test lineage")
HEADER = (
    "admission_no,given_name,family_name,coa,port,entered,stay_until,passport_no,passport_country"
)
ANA = "10000000001,Ana,Silva,B2,JFK,2026-01-05,2026-07-04,P1234567,BRA"
BO = "10000000002,Bo,Lee,F1,LAX,2026-02-01,,X9876543,XXX"
AGREEMENT = {
    "legal_authority": "Test authority, synthetic",
    "permitted_purposes": ["data-integration"],
    "retention_days": 30,
}


def _arrivals() -> SourceDefinition:
    """The shape of arrivals.yaml, with source fields named unlike the columns they feed."""
    fields: dict[str, Any] = {
        "admission_no": {"type": "string", "required": True},
        "given_name": "name",
        "family_name": "name",
        "coa": {"type": "string", "required": True},
        "port": "string",
        "entered": {"type": "date", "required": True},
        "stay_until": "date",
        "passport_no": "string",
        "passport_country": "country",
    }
    admissions = {"admission_no": "admission_no", "class_of_admission": "coa", "port": "port"}
    admissions |= {"admitted_on": "entered", "admitted_until": "stay_until"}
    admission_no = {"kind": "=admission_no", "value": "admission_no"}
    passport = {"kind": "=passport", "value": "passport_no", "issuing_country": "passport_country"}
    return SourceDefinition.model_validate(
        {
            "id": "entries",
            "name": "Entries",
            "format": "csv",
            "record_key": "admission_no",
            "fields": fields,
            "agreement": {**AGREEMENT, "allowed_fields": list(fields)},
            "facts": [
                {"table": "admissions", "columns": admissions},
                {"table": "identifiers", "name": "id-admission", "columns": admission_no},
                {"table": "identifiers", "name": "id-passport", "columns": passport},
            ],
        }
    )


def _court() -> SourceDefinition:
    fields: dict[str, Any] = {
        "case_no": {"type": "string", "required": True},
        "charge": "string",
        "proceedings": "nested",
    }
    return SourceDefinition.model_validate(
        {
            "id": "court_test",
            "name": "Court",
            "format": "jsonl",
            "record_key": "case_no",
            "fields": fields,
            "agreement": {**AGREEMENT, "allowed_fields": list(fields)},
            "facts": [{"table": "court_cases", "deriver": "court"}],
        }
    )


def _register(runtime: Runtime, definition: SourceDefinition) -> None:
    with transaction(runtime.sessions) as session:
        register(session, definition, CTX)


def _ingest(runtime: Runtime, source: str, path: Path) -> BatchReport:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return ingest_file(gw.session, gw, source, path)


def _csv(path: Path, *rows: str) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def _record(gw: Gateway, key: str, version: int = 1) -> SourceRecord:
    where = (SourceRecord.record_key == key, SourceRecord.version == version)
    (record,) = gw.search(SourceRecord, *where, params={"test": key})
    return record


def _fact(runtime: Runtime, table: str, key: str, suffix: str, version: int = 1) -> FactLineage:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return fact_lineage(gw, table, f"{_record(gw, key, version).id}/{suffix}")


def _by_column(values: list[ValueLineage]) -> dict[str, ValueLineage]:
    return {v.column: v for v in values}


@pytest.fixture
def arrivals(runtime: Runtime, tmp_path: Path) -> tuple[Path, BatchReport]:
    """The test source registered and two rows ingested."""
    _register(runtime, _arrivals())
    path = _csv(tmp_path / "entries.csv", ANA, BO)
    return path, _ingest(runtime, "entries", path)


def test_an_admission_names_each_field_record_row_batch_and_ingest_time(
    runtime: Runtime, arrivals: tuple[Path, BatchReport]
) -> None:
    path, report = arrivals
    with unit_of_work(runtime.sessions, CTX) as gw:
        record = _record(gw, "10000000002")
        lineage = fact_lineage(gw, "admissions", f"{record.id}/admissions")
    values = _by_column(lineage.values)
    assert set(values) == {
        "person_id",
        "admission_no",
        "class_of_admission",
        "mode",
        "port",
        "admitted_on",
        "admitted_until",
    }
    fields = {c: (v.value, v.from_field) for c, v in values.items()}
    assert fields["class_of_admission"] == ("F1", "coa")
    assert fields["admitted_on"] == (date(2026, 2, 1), "entered")
    assert fields["admitted_until"] == (None, "stay_until")
    assert fields["mode"] == (None, NOT_MAPPED)
    assert fields["person_id"] == (None, RESOLVED) and values["person_id"].record is None
    rec = lineage.record
    assert rec is not None and values["port"].record == rec
    assert (rec.source_id, rec.source_name, rec.record_id) == ("entries", "Entries", record.id)
    assert (rec.record_key, rec.record_version, rec.row_number) == ("10000000002", 1, 2)
    assert (rec.batch_id, rec.batch_input_uri) == (report.batch_id, str(path))
    assert rec.ingested_at == record.ingested_at == lineage.first_seen_at


def test_constants_and_set_aside_values_are_named(
    runtime: Runtime, arrivals: tuple[Path, BatchReport]
) -> None:
    passport = _by_column(_fact(runtime, "identifiers", "10000000002", "id-passport").values)
    assert (passport["kind"].value, passport["kind"].from_field) == ("passport", CONSTANT)
    assert (passport["value"].value, passport["value"].from_field) == ("X9876543", "passport_no")
    country = passport["issuing_country"]
    assert (country.value, country.from_field) == (None, "passport_country")
    assert country.note is not None and "'XXX'" in country.note
    admission_no = _by_column(_fact(runtime, "identifiers", "10000000001", "id-admission").values)
    assert admission_no["kind"].from_field == CONSTANT
    assert admission_no["value"].record is not None
    assert admission_no["value"].record.row_number == 1


def test_a_changed_row_gives_the_new_fact_lineage_to_version_two(
    runtime: Runtime, arrivals: tuple[Path, BatchReport], tmp_path: Path
) -> None:
    changed = _csv(tmp_path / "changed.csv", BO, ANA.replace(",B2,", ",B1,"))
    second = _ingest(runtime, "entries", changed)
    lineage = _fact(runtime, "admissions", "10000000001", "admissions", version=2)
    assert _by_column(lineage.values)["class_of_admission"].value == "B1"
    rec = lineage.record
    assert rec is not None
    assert (rec.record_version, rec.row_number) == (2, 2)
    assert (rec.batch_id, rec.batch_input_uri) == (second.batch_id, str(changed))
    with unit_of_work(runtime.sessions, CTX) as gw:
        old = _record(gw, "10000000001", 1).id
    assert rec.supersedes_id == old
    with pytest.raises(NotFound), unit_of_work(runtime.sessions, CTX) as gw:
        fact_lineage(gw, "admissions", f"{old}/admissions")  # retired with its version
    unchanged = _fact(runtime, "admissions", "10000000002", "admissions")
    assert unchanged.record is not None and unchanged.record.batch_id == arrivals[1].batch_id
    assert unchanged.last_seen_at and unchanged.first_seen_at
    assert unchanged.last_seen_at > unchanged.first_seen_at


def _make_person(gw: Gateway) -> tuple[str, str]:
    ana, bo = _record(gw, "10000000001").id, _record(gw, "10000000002").id
    golden = {
        "given_name": {"value": "Ana", "source_record_id": ana},
        "family_name": {"value": "Silva", "source_record_id": ana, "field": "family_name"},
    }
    gw.add(Person(id="per-lineage", given_name="Ana", middle_name="Maria", golden=golden))
    gw.add(
        RecordLink(
            id="lnk-ana", source_record_id=ana, person_id="per-lineage", method="deterministic",
            match_probability=0.99,
        ),
        RecordLink(
            id="lnk-bo", source_record_id=bo, person_id="per-lineage", method="probabilistic",
            match_probability=0.4, unlinked_at=utcnow(),
        ),
    )  # fmt: skip
    gw.update(gw.get(Admission, f"{ana}/admissions"), person_id="per-lineage")
    gw.update(gw.get(Identifier, f"{ana}/id-passport"), person_id="per-lineage")
    return ana, bo


def test_person_lineage_lists_golden_sources_linked_records_and_facts(
    runtime: Runtime, arrivals: tuple[Path, BatchReport]
) -> None:
    with unit_of_work(runtime.sessions, CTX) as gw:
        ana, _bo = _make_person(gw)
    with unit_of_work(runtime.sessions, CTX) as gw:
        lineage = person_lineage(gw, "per-lineage")
    golden = _by_column(lineage.golden)
    assert set(golden) == {"given_name", "family_name", "middle_name"}
    given = golden["given_name"]
    assert (given.value, given.from_field) == ("Ana", "given_name")
    assert given.record is not None
    assert (given.record.record_id, given.record.source_id) == (ana, "entries")
    assert (given.record.batch_id, given.record.row_number) == (arrivals[1].batch_id, 1)
    assert golden["middle_name"].from_field == NOT_RECORDED
    assert golden["middle_name"].record is None
    links = [(k.link_id, k.method, k.record.record_id if k.record else None) for k in lineage.links]
    assert links == [("lnk-ana", "deterministic", ana)]
    facts = {(f.table, f.fact_id) for f in lineage.facts}
    assert facts == {("admissions", f"{ana}/admissions"), ("identifiers", f"{ana}/id-passport")}
    assert all(f.record and f.record.record_id == ana for f in lineage.facts)


@pytest.mark.parametrize(
    ("table", "fact_id", "message"),
    [
        ("nope", "x", "no fact table 'nope'"),
        ("persons", "x", "no fact table 'persons'"),
        ("admissions", "rec-missing/admissions", "rec-missing/admissions"),
    ],
)
def test_unknown_tables_and_facts_are_not_found(
    runtime: Runtime, table: str, fact_id: str, message: str
) -> None:
    with pytest.raises(NotFound, match=message), unit_of_work(runtime.sessions, CTX) as gw:
        fact_lineage(gw, table, fact_id)


def test_an_unknown_person_is_not_found(runtime: Runtime) -> None:
    missing = pytest.raises(NotFound, match="no person 'per-nobody'")
    with missing, unit_of_work(runtime.sessions, CTX) as gw:
        person_lineage(gw, "per-nobody")


def test_lineage_reads_are_audited(runtime: Runtime, arrivals: tuple[Path, BatchReport]) -> None:
    with unit_of_work(runtime.sessions, CTX) as gw:
        ana, _bo = _make_person(gw)
    with transaction(runtime.sessions) as session:
        before = session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    _fact(runtime, "admissions", "10000000001", "admissions")
    with unit_of_work(runtime.sessions, CTX) as gw:
        person_lineage(gw, "per-lineage")
    with transaction(runtime.sessions) as session:
        entries = session.scalars(select(AuditEntry).where(AuditEntry.seq > before)).all()
    reads = {(e.object_type, tuple(e.object_ids)) for e in entries if e.action == "record.read"}
    assert ("admissions", (f"{ana}/admissions",)) in reads
    assert ("source_records", (ana,)) in reads
    assert ("persons", ("per-lineage",)) in reads
    searched = {
        e.object_type: e
        for e in entries
        if e.action == "records.searched" and (e.search_params or {}).get("lineage") == "person"
    }
    assert {"record_links", "admissions", "identifiers", "source_records"} <= set(searched)
    assert searched["record_links"].object_ids == ["lnk-ana"]
    assert all(e.purpose == "data-integration" for e in entries)


def test_a_court_hearing_names_its_nested_path(runtime: Runtime, tmp_path: Path) -> None:
    _register(runtime, _court())
    hearings = [
        {"date": "2026-02-01", "type": "master"},
        {"date": "2026-03-01", "time": "13:30", "type": "merits", "location": "Court 1"},
    ]
    proceeding: dict[str, Any] = {"kind": "240", "opened_on": "2026-01-01", "hearings": hearings}
    proceeding["decision"] = {"type": "removal", "decided_on": "2026-03-01", "judge": "J"}
    row = {"case_no": "IC000000001", "charge": "212(a)(6)", "proceedings": [proceeding]}
    path = tmp_path / "court.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    _ingest(runtime, "court_test", path)
    hearing = _by_column(_fact(runtime, "hearings", "IC000000001", "court_cases/p0/h1").values)
    assert hearing["hearing_type"].from_field == "proceedings[0].hearings[1].type"
    assert hearing["hearing_type"].value == "merits"
    assert hearing["scheduled_at"].from_field.startswith("proceedings[0].hearings[1].date")
    assert hearing["proceeding_id"].from_field == PARENT
    decision = _by_column(
        _fact(runtime, "court_decisions", "IC000000001", "court_cases/p0/d").values
    )
    assert decision["decided_on"].from_field == "proceedings[0].decision.decided_on"
    assert decision["details"].value == {"judge": "J"}
    case = _by_column(_fact(runtime, "court_cases", "IC000000001", "court_cases").values)
    assert case["charge"].from_field == "charge"


def test_a_deriver_without_listed_paths_says_nested() -> None:
    assert nested_path("other", "hearings", "court_cases/p0/h1", "location") == (
        "nested (other deriver)"
    )
    assert nested_path("court", "hearings", "court_cases", "location") == "nested (court deriver)"


def test_the_cli_prints_a_table_and_json(env_settings: Path, tmp_path: Path) -> None:
    rt = open_runtime()
    try:
        _register(rt, _arrivals())
        _ingest(rt, "entries", _csv(tmp_path / "entries.csv", ANA))
        with unit_of_work(rt.sessions, CTX) as gw:
            fact = f"{_record(gw, '10000000001').id}/admissions"
    finally:
        rt.close()
    runner = CliRunner()
    shown = runner.invoke(lineage_cli, ["fact", "admissions", fact])
    assert shown.exit_code == 0, shown.output
    assert "coa" in shown.output and "entered" in shown.output
    as_json = runner.invoke(lineage_cli, ["fact", "admissions", fact, "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["record"]["record_key"] == "10000000001"
    assert datetime.fromisoformat(data["record"]["ingested_at"]).tzinfo is not None
    missing = runner.invoke(lineage_cli, ["person", "per-nobody"])
    assert missing.exit_code == 1 and "no person" in missing.output
