"""The set-based ingest path: same answers as the row path, deferred indexes, the read-ahead."""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources import columnar, ingest
from immigrationos.sources.definition import SourceDefinition, shipped_definitions
from immigrationos.sources.pipeline import Prefetch, ProcessPrefetch, ReaderUnavailable
from immigrationos.sources.plan import BatchReport, plan_chunk, plan_columns, row_outcomes
from immigrationos.sources.registry import register
from immigrationos.sources.seen import SeenKeys
from immigrationos.sources.validate import RowValidator
from immigrationos.store import bulk
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.DATA_INTEGRATION, "test fast path")
ARRIVALS = next(d for d in shipped_definitions() if d.id == "arrivals")
HEADER = (
    "admission_no,family_name,given_name,birth_date,sex,nationality,passport_no,"
    "passport_country,class_of_admission,mode,port,admitted_on,admitted_until\n"
)
#: Clean rows, placeholders (flags), a placeholder whose original needs JSON escaping, a row
#: the vector checks doubt, an impossible date and a key repeated with other content.
ROWS = [
    "00000000001,Nguyễn,Lan,1984-04-15,F,VNM,A31415926,VNM,B2,air,JFK,2001-05-31,2001-11-27",
    "00000000002,Kozlov,Ivan,1978-03-09,M,RUS,XXX,RUS,LPR,air,IAH,2018-04-19,",
    "00000000003,UNKNOWN,Ana,1990-01-01,F,XXX,NA NA,UNK,F1,sea,MIA,2019-02-01,2019-08-01",
    '00000000004,"FNU\t",Bo,1990-01-01,F,MEX,N0000000,MEX,F1,land,SAN,2019-02-01,',
    "00000000005,=cmd(),Cy,1990-01-01,F,MEX,N1234567,MEX,F1,land,SAN,2019-02-01,",
    "00000000006,Diaz,Eva,1990-01-01,F,MEX,N1234568,MEX,F1,land,SAN,2023-02-30,",
    "00000000001,Other,Lan,1984-04-15,F,VNM,A31415926,VNM,B2,air,JFK,2001-05-31,2001-11-27",
]


def _records_by_path(path: Path, definition: SourceDefinition) -> tuple[Any, Any]:
    """The records and quarantine rows the columnar planner and the row planner make."""
    validate = RowValidator(definition)
    (block,) = list(columnar.csv_blocks(path, definition, 100))
    assert block.table is not None, "the test input must take the columnar path"
    columns = plan_columns(
        block, validate, definition, "bat-1", "in.csv", None, BatchReport("b", "s"), SeenKeys()
    )
    assert columns.columns is not None
    fast = columns.columns.records
    vector = {
        (
            fast["id"][i],
            fast["content_hash"][i].as_py(),
            fast["payload"][i].as_py(),
            fast["flags"][i].as_py(),
        )
        for i in range(len(fast["id"]))
    }
    vector |= {(r["id"], r["content_hash"], r["payload"], r["flags"]) for r in columns.records}
    rows = next(iter(columnar.row_blocks(path, definition, 100))).rows or []
    reference = plan_chunk(
        row_outcomes(rows, validate),
        definition.key_fields,
        definition.id,
        "bat-1",
        "in.csv",
        {},
        BatchReport("b", "s"),
    )
    by_row = {(r["id"], r["content_hash"], r["payload"], r["flags"]) for r in reference.records}
    quarantined = [
        sorted((q["row_number"], q["reason"], q["message"]) for q in plan.quarantined)
        for plan in (columns, reference)
    ]
    return (vector, by_row), quarantined


def test_the_columnar_planner_makes_the_row_planners_records(tmp_path: Path) -> None:
    """Ids, hashes, payload and flags JSON (placeholders spelled out) byte for byte."""
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    (vector, by_row), (fast_quarantine, row_quarantine) = _records_by_path(path, ARRIVALS)
    assert vector == by_row
    assert len(vector) == 4
    assert any('"placeholder"' in flags and "NA NA" in flags for *_, flags in vector)
    assert fast_quarantine == row_quarantine
    assert [reason for _, reason, _ in fast_quarantine] == ["formula", "date", "duplicate-key"]


def _people() -> SourceDefinition:
    return SourceDefinition.model_validate(
        {
            "id": "people",
            "name": "People",
            "format": "csv",
            "record_key": "rid",
            "fields": {"rid": "string", "name": "string"},
            "agreement": {
                "legal_authority": "Test authority, synthetic",
                "permitted_purposes": ["data-integration"],
                "allowed_fields": ["rid", "name"],
                "retention_days": 30,
            },
        }
    )


def _ingest(runtime: Runtime, source: str, path: Path, chunk_rows: int = 25_000) -> BatchReport:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return ingest.ingest_file(gw.session, gw, source, path, chunk_rows=chunk_rows)


def test_an_identical_row_in_a_later_block_counts_as_unchanged(
    runtime: Runtime, tmp_path: Path
) -> None:
    """A first load meeting the same row again blocks later adds nothing and reconciles."""
    with transaction(runtime.sessions) as session:
        register(session, _people(), CTX)
    path = tmp_path / "people.csv"
    path.write_text("rid,name\nR1,Ana\nR2,Bo\nR3,Cy\nR1,Ana\nR2,Bob\n")
    report = _ingest(runtime, "people", path, chunk_rows=2)
    assert (report.read, report.loaded, report.unchanged, report.quarantined) == (5, 3, 1, 1)
    assert report.quarantine_reasons == {"duplicate-key": 1}
    again = _ingest(runtime, "people", path, chunk_rows=2)
    assert (again.loaded, again.unchanged, again.quarantined) == (0, 4, 1)


def _indexes(runtime: Runtime, tables: list[str]) -> dict[str, list[Any]]:
    """Each table's indexes and foreign keys, as the database reports them."""
    with runtime.engine.connect() as connection:
        inspector = inspect(connection)
        return {
            t: sorted(
                [(i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(t)]
                + [
                    (str(k["name"]), k["referred_table"], tuple(k["constrained_columns"]))
                    for k in inspector.get_foreign_keys(t)
                ]
                + [
                    (str(u["name"]), "unique", tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(t)
                ],
                key=repr,
            )
            for t in tables
        }


def test_a_large_first_load_rebuilds_every_index_it_dropped(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain indexes (and on PostgreSQL unique constraints and the foreign keys between
    them) of empty tables are dropped for a large load and rebuilt as they were; tables that
    already hold rows keep theirs."""
    tables = ["source_records", "admissions", "identifiers"]
    before = _indexes(runtime, tables)
    dropped: list[list[str]] = []
    original = bulk.drop_secondary_indexes

    def recording(connection: Any, names: list[str]) -> list[str]:
        dropped.append(sorted(names))
        return original(connection, names)

    monkeypatch.setattr(ingest, "DEFER_INDEXES_BYTES", 0)
    monkeypatch.setattr(bulk, "drop_secondary_indexes", recording)
    with transaction(runtime.sessions) as session:
        register(session, ARRIVALS, CTX)
    path = tmp_path / "arrivals.csv"
    path.write_text(HEADER + "\n".join(ROWS[:3]) + "\n", encoding="utf-8")
    report = _ingest(runtime, "arrivals", path)
    assert report.loaded == 3 and report.derived["admissions"] == 3
    assert dropped == [sorted(tables)]
    assert _indexes(runtime, tables) == before
    path.write_text(HEADER + "\n".join(ROWS[3:4]) + "\n", encoding="utf-8")
    _ingest(runtime, "arrivals", path)
    assert dropped[-1] == []  # every table holds rows now: nothing dropped
    assert _indexes(runtime, tables) == before


def test_seen_keys_tell_first_sightings_repeats_and_conflicts() -> None:
    with SeenKeys() as seen:
        first, repeat = seen.check(pa.array(["a", "b", "a"]), pa.array(["1", "2", "3"]))
        assert first.to_pylist() == ["1", "2", "1"]
        assert repeat.to_pylist() == [False, False, True]
        first, repeat = seen.check(pa.array(["b", "c", "c"]), pa.array(["2", "4", "4"]))
        assert first.to_pylist() == ["2", "4", "4"]
        assert repeat.to_pylist() == [True, False, True]


def test_prefetch_yields_in_order_and_raises_the_producers_error() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("bad block")

    received = []
    with pytest.raises(ValueError, match="bad block"), Prefetch(items(), depth=2) as ahead:
        received.extend(ahead)
    assert received == [0, 1, 2, 3, 4]


def test_prefetch_stops_reading_when_the_consumer_stops() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(1_000):
            produced.append(i)
            yield i

    with Prefetch(items(), depth=2) as ahead:
        for item in ahead:
            if item == 3:
                break
    assert len(produced) <= 3 + 1 + 2 + 1  # consumed, the queue's depth, one in hand
    assert not [t for t in threading.enumerate() if t.name == "immos-ingest-read"]


def _numbers(count: int, fail_at: int | None = None) -> Iterator[int]:
    """A producer for the process tests (module level: a spawned process imports it)."""
    for i in range(count):
        if i == fail_at:
            raise ValueError(f"bad block {i}")
        yield i


def _dies(count: int) -> Iterator[int]:
    os._exit(3)  # a process that cannot start
    yield count


def test_a_reading_process_yields_in_order_and_raises_its_error() -> None:
    with ProcessPrefetch(_numbers, (4,)) as ahead:
        assert list(ahead) == [0, 1, 2, 3]
    assert ahead.peak_rss_mib is not None and ahead.peak_rss_mib > 0
    received = []
    with pytest.raises(ValueError, match="bad block 2"), ProcessPrefetch(_numbers, (9, 2)) as ahead:
        received.extend(ahead)
    assert received == [0, 1]


def _main_module(_: int) -> Iterator[tuple[str | None, bool]]:
    main = sys.modules["__main__"]
    yield getattr(main, "__file__", None), "__mp_main__" in sys.modules


def _endless(_: int) -> Iterator[int]:
    i = 0
    while True:
        yield i
        i += 1


def test_a_reading_process_does_not_run_the_callers_main_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multiprocessing's spawn ran the caller's ``__main__`` script again in the child: for
    ``immos`` the whole command line, 2.8 s before the first block."""
    marker = tmp_path / "ran"
    script = tmp_path / "main_script.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", main)
    with ProcessPrefetch(_main_module, (0,)) as ahead:
        assert list(ahead) == [(None, False)]
    assert not marker.exists()


def test_a_reading_process_stops_when_the_consumer_stops() -> None:
    with ProcessPrefetch(_endless, (0,)) as ahead:
        for item in ahead:
            if item == 3:
                break
    # It stopped by itself (a broken pipe), rather than being killed after the grace period.
    assert ahead._process is not None and ahead._process.returncode == 0


def test_a_reading_process_that_cannot_start_is_reported_before_anything_is_consumed() -> None:
    with pytest.raises(ReaderUnavailable), ProcessPrefetch(_dies, (1,)) as ahead:
        list(ahead)


def test_a_large_file_read_by_a_process_loads_as_a_thread_reads_it(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records loaded through the process path (large files) are the ones the thread path
    makes: re-reading the file by a thread finds every one unchanged."""
    with transaction(runtime.sessions) as session:
        register(session, ARRIVALS, CTX)
    path = tmp_path / "arrivals.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    monkeypatch.setattr(ingest, "READ_AHEAD_PROCESS_BYTES", 0)
    by_process = _ingest(runtime, "arrivals", path, chunk_rows=3)
    assert by_process.reader_peak_rss_mib is not None
    assert (by_process.loaded, by_process.quarantined) == (4, 3)
    monkeypatch.setattr(ingest, "READ_AHEAD_PROCESS_BYTES", 1 << 60)
    by_thread = _ingest(runtime, "arrivals", path, chunk_rows=3)
    assert by_thread.reader_peak_rss_mib is None
    assert (by_thread.loaded, by_thread.unchanged, by_thread.quarantined) == (0, 4, 3)


def test_a_dropped_unique_constraint_checks_every_row_when_it_is_added_back(
    runtime: Runtime,
) -> None:
    """What a large load drops is added back in its transaction, checked over the whole table:
    a repeated (source, key, version) fails the load instead of being committed."""
    with transaction(runtime.sessions) as session:
        register(session, ARRIVALS, CTX)
    with runtime.engine.connect() as connection:
        rebuild = bulk.drop_unique_constraints(connection, ["source_records"])
        connection.rollback()
    if runtime.engine.dialect.name == "sqlite":
        assert rebuild == []  # SQLite cannot drop a constraint: it stays, checked per row
        return
    assert rebuild == [
        'ALTER TABLE source_records ADD CONSTRAINT "uq_source_records_source_id" '
        "UNIQUE (source_id, record_key, version)"
    ]
    with runtime.engine.connect() as connection:
        batch = connection.exec_driver_sql(
            "INSERT INTO ingest_batches (id, source_id, agreement_id, input_uri, status, "
            "read_count, loaded_count, unchanged_count, quarantined_count, quarantine_reasons, "
            "dropped_fields, started_at) SELECT 'bat-t', 'arrivals', id, 'x', 'running', 0, 0, "
            "0, 0, '{}', '{}', now() FROM agreements WHERE source_id = 'arrivals' RETURNING id"
        ).scalar_one()
        bulk.drop_unique_constraints(connection, ["source_records"])
        for record_id in ("rec-1", "rec-2"):  # the same source, key and version twice
            connection.exec_driver_sql(
                "INSERT INTO source_records (id, source_id, record_key, version, content_hash, "
                "payload, flags, batch_id, ingested_at) VALUES "
                f"('{record_id}', 'arrivals', 'K', 1, 'h', '{{}}', '{{}}', '{batch}', now())"
            )
        with pytest.raises(IntegrityError, match="uq_source_records_source_id"):
            bulk.recreate_indexes(connection, rebuild)
        connection.rollback()
    assert "uq_source_records_source_id" in str(_indexes(runtime, ["source_records"]))
