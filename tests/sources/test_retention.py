"""Retention purges records past their agreement's term, leaves tombstones, cascades, audits.

Timeline of every test: three visitors ingested at T0; ten days later visitor 2 changes
(version 2) and visitor 4 arrives; at T0 + 31 days the T0 versions are past the agreement's
30 days and the later ones are not.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from immigrationos.audit.chain import verify
from immigrationos.audit.models import AuditEntry
from immigrationos.cli import retention as retention_cli
from immigrationos.core.clock import frozen_at
from immigrationos.core.errors import NotFound
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import (
    CitizenshipChange,
    Identifier,
    Person,
    RecordLink,
    StatusEpisode,
)
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import SourceDefinition, shipped_definitions
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.mapping import table_model
from immigrationos.sources.models import SourceRecord, Tombstone
from immigrationos.sources.registry import register
from immigrationos.sources.retention import (
    RetentionPlan,
    RetentionResult,
    apply_retention,
    plan_retention,
)
from immigrationos.store.engine import transaction

CTX = system_context(Purpose.DATA_INTEGRATION, "test retention")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=10)
EXPIRY = T0 + timedelta(days=31)
OLD_ROWS = ["1,Ana Old,PA0001", "2,Bo Old,PB0002", "3,Cy Old,PC0003"]
NEW_ROWS = ["2,Bo New,PB0009", "4,Di New,PD0004"]
PERSONAL_VALUES = ("Ana", "Bo", "Cy", "PA0001", "PB0002", "PC0003")
TOMBSTONE_COLUMNS = {
    "id", "source_id", "batch_id", "content_hash", "ingested_at", "purged_at", "reason",
    "derived_removed",
}  # fmt: skip


def _definition() -> SourceDefinition:
    return SourceDefinition.model_validate(
        {
            "id": "visitors",
            "name": "Visitors",
            "format": "csv",
            "record_key": "rid",
            "fields": {"rid": "string", "name": "string", "passport_no": "string"},
            "agreement": {
                "legal_authority": "Test authority, synthetic",
                "permitted_purposes": ["data-integration"],
                "allowed_fields": ["rid", "name", "passport_no"],
                "retention_days": 30,
            },
            "facts": [
                {"table": "identifiers", "name": "id-passport",
                 "columns": {"kind": "=passport", "value": "passport_no"}},
                {"table": "status_episodes", "columns": {"status": "=visitor"}},
            ],
        }
    )  # fmt: skip


def _ingest(runtime: Runtime, path: Path, rows: list[str], at: datetime) -> None:
    path.write_text("rid,name,passport_no\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with frozen_at(at), unit_of_work(runtime.sessions, CTX) as gw:
        assert ingest_file(gw.session, gw, "visitors", path).loaded == len(rows)


def _records(runtime: Runtime) -> dict[tuple[str, int], SourceRecord]:
    with unit_of_work(runtime.sessions, CTX) as gw:
        found = gw.search(SourceRecord, params={}, limit=1000)
        return {(r.record_key, r.version): r for r in found}


def _link_persons(runtime: Runtime, records: dict[tuple[str, int], SourceRecord]) -> None:
    """A known only from record 1; B from both versions of 2; C from 3 but with a history."""
    links = [("per-a", ("1", 1)), ("per-b", ("2", 1)), ("per-b", ("2", 2)), ("per-c", ("3", 1))]
    with frozen_at(LATER), unit_of_work(runtime.sessions, CTX) as gw:
        gw.add(*(Person(id=p, given_name=p.upper(), family_name="X") for p in _PERSONS))
        gw.add(
            *(
                RecordLink(id=f"lnk-{i}", source_record_id=records[key].id, person_id=person,
                           method="exact")
                for i, (person, key) in enumerate(links)
            ),
            CitizenshipChange(id="cc-c", person_id="per-c", from_status="unknown",
                              to_status="noncitizen", reason="test"),
        )  # fmt: skip


_PERSONS = ("per-a", "per-b", "per-c")


@pytest.fixture
def world(runtime: Runtime, tmp_path: Path) -> dict[tuple[str, int], SourceRecord]:
    """The registered source, both ingests and the persons; the records as stored."""
    with frozen_at(T0), transaction(runtime.sessions) as session:
        register(session, _definition(), CTX)
    _ingest(runtime, tmp_path / "old.csv", OLD_ROWS, T0)
    _ingest(runtime, tmp_path / "new.csv", NEW_ROWS, LATER)
    records = _records(runtime)
    _link_persons(runtime, records)
    return records


def _plan(runtime: Runtime, at: datetime = EXPIRY) -> RetentionPlan:
    with frozen_at(at), unit_of_work(runtime.sessions, CTX) as gw:
        return plan_retention(gw)


def _apply(runtime: Runtime, at: datetime = EXPIRY) -> RetentionResult:
    with frozen_at(at), unit_of_work(runtime.sessions, CTX) as gw:
        return apply_retention(gw, plan_retention(gw))


def _rows(runtime: Runtime, model: type[Any]) -> list[Any]:
    with unit_of_work(runtime.sessions, CTX) as gw:
        return gw.search(model, params={}, limit=1000)


def test_plan_lists_exactly_the_expired_records_and_changes_nothing(
    runtime: Runtime, world: dict[tuple[str, int], SourceRecord]
) -> None:
    assert _plan(runtime, EXPIRY - timedelta(days=2)).empty
    plan = _plan(runtime)
    [source] = plan.sources
    assert (source.source_id, source.records, source.retention_days) == ("visitors", 3, 30)
    # record 2's first version lost its facts when version 2 superseded it
    assert source.derived == {"identifiers": 2, "status_episodes": 2, "record_links": 3}
    assert plan.persons_left_without_records == 2
    assert json.loads(json.dumps(plan.as_dict()))["sources"][0]["records"] == 3
    assert "visitors" in plan.describe() and "3 records" in plan.describe()
    assert len(_records(runtime)) == 5


def test_apply_purges_old_records_and_their_facts_and_keeps_the_young(
    runtime: Runtime, world: dict[tuple[str, int], SourceRecord]
) -> None:
    result = _apply(runtime)
    [purge] = result.sources
    assert (purge.records, purge.derived["identifiers"], purge.derived["record_links"]) == (3, 2, 3)
    kept = _records(runtime)
    assert sorted(kept) == [("2", 2), ("4", 1)]
    assert kept[("2", 2)].supersedes_id is None
    assert result.supersedes_cleared == 1
    survivors = {r.id for r in kept.values()}
    for model in (Identifier, StatusEpisode):
        assert {row.source_record_id for row in _rows(runtime, model)} == survivors
    assert [link.source_record_id for link in _rows(runtime, RecordLink)] == [kept[("2", 2)].id]
    assert sorted(i.value for i in _rows(runtime, Identifier)) == ["PB0009", "PD0004"]


def test_tombstones_hold_no_personal_data(
    runtime: Runtime, world: dict[tuple[str, int], SourceRecord]
) -> None:
    _apply(runtime)
    expired = {world[k] for k in (("1", 1), ("2", 1), ("3", 1))}
    assert set(Tombstone.__table__.c.keys()) == TOMBSTONE_COLUMNS
    with transaction(runtime.sessions) as session:
        stones = session.scalars(select(Tombstone)).all()
        assert {t.id for t in stones} == {r.id for r in expired}
        by_id = {r.id: r for r in expired}
        for stone in stones:
            record = by_id[stone.id]
            assert (stone.batch_id, stone.content_hash) == (record.batch_id, record.content_hash)
            assert (stone.ingested_at, stone.purged_at) == (T0, EXPIRY)
            assert "v1" in stone.reason and "30 days" in stone.reason
            assert stone.derived_removed["identifiers"] == 2
            text = json.dumps([getattr(stone, c) for c in TOMBSTONE_COLUMNS], default=str)
            assert not any(value in text for value in PERSONAL_VALUES)


def test_persons_known_only_from_purged_records_go(
    runtime: Runtime, world: dict[tuple[str, int], SourceRecord]
) -> None:
    result = _apply(runtime)
    assert (result.persons_deleted, result.persons_marked_purged) == (1, 1)
    persons = {p.id: p for p in _rows(runtime, Person)}
    assert sorted(persons) == ["per-b", "per-c"]  # per-a had nothing else pointing at it
    assert persons["per-b"].status == "active" and persons["per-b"].given_name == "PER-B"
    # per-c's citizenship history still points at it: kept, but with no golden record
    assert (persons["per-c"].status, persons["per-c"].given_name) == ("purged", None)


def test_every_removal_is_audited_and_the_chain_verifies(
    runtime: Runtime, world: dict[tuple[str, int], SourceRecord]
) -> None:
    _apply(runtime)
    with transaction(runtime.sessions) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        deleted = {e.object_type: e for e in entries if e.action == "record.deleted"}
        assert {
            "source_records",
            "identifiers",
            "status_episodes",
            "record_links",
            "persons",
        } <= set(deleted)
        assert deleted["source_records"].details["count"] == 3
        assert deleted["source_records"].details["criteria"]["source"] == "visitors"
        [run] = [e for e in entries if e.action == "retention.purged"]
        assert run.details["sources"]["visitors"]["records"] == 3
        assert run.details["persons_deleted"] == 1
        assert run.seq == entries[-1].seq
        assert verify(session).ok


def test_a_second_run_purges_nothing(
    runtime: Runtime, world: dict[tuple[str, int], SourceRecord]
) -> None:
    assert _apply(runtime).records == 3
    assert _plan(runtime).empty
    again = _apply(runtime)
    assert again.records == 0 and (again.persons_deleted, again.persons_marked_purged) == (0, 0)
    assert sorted(_records(runtime)) == [("2", 2), ("4", 1)]
    with transaction(runtime.sessions) as session:
        assert len(session.scalars(select(Tombstone)).all()) == 3
        assert verify(session).ok


def test_the_younger_records_expire_in_their_turn(
    runtime: Runtime, world: dict[tuple[str, int], SourceRecord]
) -> None:
    _apply(runtime)
    assert _apply(runtime, LATER + timedelta(days=31)).records == 2
    assert _records(runtime) == {}
    assert [p.status for p in _rows(runtime, Person)] == ["purged"]


def test_an_unknown_source_is_refused(runtime: Runtime) -> None:
    with pytest.raises(NotFound), unit_of_work(runtime.sessions, CTX) as gw:
        plan_retention(gw, source_id="nope")


def test_cli_dry_run_then_run(
    runtime: Runtime,
    world: dict[tuple[str, int], SourceRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("immigrationos.cli.common.open_runtime", lambda: runtime)
    monkeypatch.setattr(runtime, "close", lambda: None)
    runner = CliRunner()
    with frozen_at(EXPIRY):
        dry = runner.invoke(retention_cli.app, ["run", "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "3 records" in dry.output and "nothing purged" in dry.output
        assert len(_records(runtime)) == 5
        declined = runner.invoke(retention_cli.app, ["run"], input="n\n")
        assert declined.exit_code == 1 and len(_records(runtime)) == 5
        done = runner.invoke(retention_cli.app, ["run", "--source", "visitors", "--yes"])
        assert done.exit_code == 0, done.output
        assert "purged 3 records" in done.output
    assert sorted(_records(runtime)) == [("2", 2), ("4", 1)]


def _court_case(case_no: str) -> str:
    decision = {"type": "removal", "decided_on": "2025-05-01"}
    appeal = {"filed_on": "2025-05-20", "outcome": "pending"}
    hearing = {"date": "2025-04-01", "time": "10:30", "type": "master", "location": "NYC"}
    proceeding = {"kind": "removal", "opened_on": "2025-01-10", "hearings": [hearing],
                  "decision": decision, "appeal": appeal}  # fmt: skip
    return json.dumps({"case_no": case_no, "a_number": "A123456789", "family_name": "Old",
                       "given_name": "Ana", "proceedings": [proceeding]})  # fmt: skip


def test_nested_court_facts_go_children_first(runtime: Runtime, tmp_path: Path) -> None:
    court = next(d for d in shipped_definitions() if d.id == "court")
    court.agreement.retention_days = 30
    with frozen_at(T0), transaction(runtime.sessions) as session:
        register(session, court, CTX)
    path = tmp_path / "court.jsonl"
    path.write_text(_court_case("IC000000001") + "\n", encoding="utf-8")
    with frozen_at(T0), unit_of_work(runtime.sessions, CTX) as gw:
        assert ingest_file(gw.session, gw, "court", path).loaded == 1
    chain = ("appeals", "court_decisions", "hearings", "proceedings", "court_cases")
    [plan] = _plan(runtime).sources
    assert all(plan.derived[table] == 1 for table in chain)
    [purge] = _apply(runtime).sources
    assert purge.derived == plan.derived and purge.records == 1
    for table in chain:
        assert _rows(runtime, table_model(table)) == []
