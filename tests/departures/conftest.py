"""A small synthetic world with its departure stream held back, resolved, with cases: the
stream is then processed by the tests, and the ground truth says who really left."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.lifecycle.conftest import desk  # noqa: F401  (the lifecycle's desk, for effects)

from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.core.settings import Settings
from immigrationos.departures.service import Processor, build_matcher
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.load import load_cases
from immigrationos.resolution import service as resolution
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world

WORLD_PERSONS = 1500


@dataclass(frozen=True)
class World:
    """The world folder and a migrated store holding everything but the departures."""

    folder: Path
    template: Path

    @property
    def stream(self) -> Path:
        return self.folder / "sources" / "departures.jsonl"

    def lines(self) -> list[bytes]:
        return [line for line in self.stream.read_bytes().splitlines() if line.strip()]


def _settings(folder: Path, db: Path) -> Settings:
    return Settings(mode="demo", data_dir=folder, database_url=f"sqlite:///{db}")


@pytest.fixture(scope="session")
def departure_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """Generated and loaded once per test session (about half a minute)."""
    folder = tmp_path_factory.mktemp("departure-world")
    generate_world(WorldConfig(persons=WORLD_PERSONS, seed=7, noise=NoiseConfig()), folder)
    template = folder / "template.db"
    runtime = open_runtime(_settings(folder, template))
    try:
        ctx = system_context(Purpose.DATA_INTEGRATION, "departure tests")
        with transaction(runtime.sessions) as session:
            ensure_demo_accounts(session)
            for definition in shipped_definitions():
                register(session, definition, ctx)
        for definition in shipped_definitions():
            if definition.id == "departures":
                continue  # held back: the tests stream it
            with unit_of_work(runtime.sessions, ctx) as gw:
                ingest_file(
                    gw.session, gw, definition.id, folder / "sources" / str(definition.file)
                )
        resolve = system_context(Purpose.IDENTITY_RESOLUTION, "departure tests")
        with unit_of_work(runtime.sessions, resolve) as gw:
            resolution.run(gw)
        load_cases(runtime, showcase_pdf=False)
    finally:
        runtime.close()
    return World(folder, template)


@pytest.fixture
def world_store(departure_world: World, tmp_path: Path) -> Iterator[Runtime]:
    """A fresh copy of the loaded store for one test."""
    db = tmp_path / "immos.db"
    shutil.copyfile(departure_world.template, db)
    runtime = open_runtime(_settings(tmp_path, db), upgrade=False)
    runtime.sessions.configure(info={"immos.documents_pdf": False})
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def processor(world_store: Runtime) -> Processor:
    return Processor(world_store, "replay", build_matcher(world_store))
