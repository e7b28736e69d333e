"""The schema: migrations build exactly the models, on both backends; no prohibited field."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from immigrationos.accounts.models import RoleRow
from immigrationos.accounts.roles import ROLES
from immigrationos.runtime import Runtime
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
