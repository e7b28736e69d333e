"""The schema: migrations build exactly the models, on both backends; no prohibited field."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from tests.sources.conftest import load_world

from immigrationos.accounts.models import RoleRow
from immigrationos.accounts.roles import ROLES
from immigrationos.core.settings import Settings
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store import migrate
from immigrationos.store.base import Base

PROHIBITED = re.compile(
    r"race|ethnic|religio|faith|sexual|orientation|gender_identity|political|opinion|"
    r"speech|social|twitter|facebook|instagram|tiktok|associat|affiliat|gang|tribe|caste"
)


def test_migrations_match_the_models(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": migrate.include_name})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrations_downgrade_to_empty_and_back(runtime: Runtime) -> None:
    migrate.downgrade(runtime.engine, "base")
    assert migrate.current_tables(runtime.engine) <= {"alembic_version"}
    migrate.upgrade(runtime.engine)
    assert "audit_entries" in migrate.current_tables(runtime.engine)


def test_roles_are_seeded_from_the_role_table(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        seeded = {r.name: r.reads_personal_data for r in session.scalars(select(RoleRow))}
    assert seeded == {r.value: spec.reads_personal_data for r, spec in ROLES.items()}


def test_no_prohibited_attribute_anywhere_in_the_schema(runtime: Runtime) -> None:
    inspector = inspect(runtime.engine)
    names = set()
    for table in inspector.get_table_names():
        names.add(table)
        names.update(c["name"] for c in inspector.get_columns(table))
    offending = sorted(n for n in names if PROHIBITED.search(n))
    assert offending == [], f"prohibited attributes in the schema: {offending}"


def test_the_prohibited_pattern_would_catch_them() -> None:
    for name in (
        "race",
        "ethnicity",
        "religion",
        "sexual_orientation",
        "political_opinion",
        "social_media_handle",
        "associations",
        "gang_affiliation",
    ):
        assert PROHIBITED.search(name)


def _counts(runtime: Runtime) -> dict[str, int]:
    with runtime.engine.connect() as conn:
        return {
            t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
            for t in ("source_records", "ingest_batches", "identifiers", "admissions")
        }


def test_the_records_key_migration_keeps_every_row_both_ways(
    runtime: Runtime, tmp_path: Path
) -> None:
    """0014 rebuilds ``source_records`` on SQLite, a table others refer to, with rows in it:
    down and up again, every row stays, and the one key then holds a record to its batch's
    source."""
    load_world(runtime, tmp_path, persons=60)
    loaded = _counts(runtime)
    assert loaded["source_records"] > 100 and loaded["identifiers"] > 0

    migrate.downgrade(runtime.engine, "0013")
    assert _counts(runtime) == loaded
    migrate.upgrade(runtime.engine)
    assert _counts(runtime) == loaded

    with runtime.engine.connect() as conn:
        batch, source = conn.exec_driver_sql(
            "SELECT id, source_id FROM ingest_batches ORDER BY id LIMIT 1"
        ).one()
        other = conn.execute(
            text("SELECT id FROM sources WHERE id <> :s ORDER BY id LIMIT 1"), {"s": source}
        ).scalar_one()
        row = {"b": batch, "s": other, "now": datetime.now(UTC)}
        with pytest.raises(IntegrityError):
            conn.execute(
                text(
                    "INSERT INTO source_records (id, source_id, record_key, version, "
                    "content_hash, payload, flags, batch_id, ingested_at) VALUES ('x', :s, 'k', "
                    "1, 'h', '{}', '{}', :b, :now)"
                ),
                row,
            )


def test_a_migration_that_breaks_a_foreign_key_on_sqlite_commits_nothing(
    tmp_path: Path,
) -> None:
    """SQLite's keys are off while the schema changes and checked before the commit."""
    runtime = open_runtime(Settings(mode="demo", data_dir=tmp_path), upgrade=False)
    try:
        migrate.upgrade(runtime.engine, "0013")
        load_world(runtime, tmp_path, persons=60)
        # Records naming another source than their batch's: allowed until 0014.
        with runtime.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE source_records SET source_id = (SELECT min(id) FROM sources "
                "WHERE id <> source_records.source_id) WHERE batch_id = "
                "(SELECT min(batch_id) FROM source_records)"
            )
        with pytest.raises(migrate.ForeignKeysBroken, match="from 0013 to 0014 left"):
            migrate.upgrade(runtime.engine)
        with runtime.engine.connect() as conn:
            revision = MigrationContext.configure(conn).get_current_revision()
        assert revision == "0013"
    finally:
        runtime.close()
