"""The two forms of a fact mapping agree: facts derived in memory during ingest equal the facts
the mapping's SQL plan derives from the stored records (the plan ``immos sources plan`` shows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import SHIPPED, load_definition
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.mapping import fact_statements, table_model
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world

CTX = system_context(Purpose.DATA_INTEGRATION, "mapping equivalence test")


def _facts(runtime: Runtime, tables: list[str]) -> dict[str, set[tuple[Any, ...]]]:
    found = {}
    with unit_of_work(runtime.sessions, CTX) as gw:
        for table in tables:
            model = table_model(table)
            columns = [
                c for c in model.__table__.c if c.name not in {"first_seen_at", "last_seen_at"}
            ]
            rows = gw.rows(select(*columns), model, params={"test": table})
            found[table] = {tuple(r) for r in rows}
    return found


def test_in_memory_derivation_equals_the_sql_plan(runtime: Runtime, tmp_path: Path) -> None:
    generate_world(WorldConfig(persons=300, seed=5, noise=NoiseConfig()), tmp_path / "w")
    definition = load_definition(SHIPPED / "arrivals.yaml")
    with transaction(runtime.sessions) as session:
        register(session, definition, CTX)
    with unit_of_work(runtime.sessions, CTX) as gw:
        report = ingest_file(gw.session, gw, "arrivals", tmp_path / "w/sources/arrivals.csv")
    tables = sorted({m.table for m in definition.facts})
    in_memory = _facts(runtime, tables)
    assert sum(len(v) for v in in_memory.values()) == sum(report.derived.values()) > 0
    with unit_of_work(runtime.sessions, CTX) as gw:
        for table in tables:
            model = table_model(table)
            gw.execute(delete(model), model, params={"test": "clear"})
        dialect = gw.session.get_bind().dialect.name
        for mapping, statement in fact_statements(definition, dialect, report.batch_id):
            gw.derive(table_model(mapping.table), statement, batch_id=report.batch_id)
    assert _facts(runtime, tables) == in_memory
