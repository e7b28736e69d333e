"""A small synthetic world loaded once per module and backend, for tests that only read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import PG_URL, _pg_admin, require_postgres

from immigrationos.core.settings import Settings
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world


def load_world(runtime: Runtime, folder: Path, persons: int = 400) -> None:
    """Generate a world and ingest every shipped source into ``runtime``."""
    generate_world(WorldConfig(persons=persons, seed=11, noise=NoiseConfig()), folder)
    ctx = system_context(Purpose.DATA_INTEGRATION, "test world")
    with transaction(runtime.sessions) as session:
        for definition in shipped_definitions():
            register(session, definition, ctx)
    for definition in shipped_definitions():
        with unit_of_work(runtime.sessions, ctx) as gw:
            ingest_file(gw.session, gw, definition.id, folder / "sources" / str(definition.file))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def world_runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A runtime holding a loaded synthetic world (read-only for the tests using it)."""
    folder = tmp_path_factory.mktemp("world")
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'immos.db'}"
    else:
        require_postgres()
        name = f"immos_w_{uuid.uuid4().hex[:12]}"
        _pg_admin(f'CREATE DATABASE "{name}"')
        url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    runtime = open_runtime(Settings(mode="demo", data_dir=folder, database_url=url))
    try:
        load_world(runtime, folder)
        yield runtime
    finally:
        runtime.close()
        if name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
