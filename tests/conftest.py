"""Shared fixtures. Store tests run on SQLite and PostgreSQL (parametrised, never copied).

PostgreSQL is the server at ``IMMOS_TEST_POSTGRES_URL`` (default: the project machines'
127.0.0.1:5432, user postgres, trust auth). Each test gets a database of its own, dropped
afterwards. Without a server the PostgreSQL cases skip with the reason; under ``CI=true``
they fail instead, because CI machines always have one.
"""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.shared_demo import CHEAP_HASHER, DemoBuild, shared_build

from immigrationos.core.settings import Settings, get_settings
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store import migrate
from immigrationos.store.engine import make_engine

PG_URL = os.environ.get("IMMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_unavailable() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {exc}".strip()


_PG_REASON = _pg_unavailable()


def require_postgres() -> None:
    """Skip (or, under CI=true, fail) when the PostgreSQL server is absent."""
    if _PG_REASON:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {_PG_REASON}")
        pytest.skip(_PG_REASON)


def _pg_admin(statement: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


def _migrated(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_session_database() -> Iterator[str]:
    """One migrated PostgreSQL database per test session (per xdist worker), dropped at the end."""
    require_postgres()
    name = f"immos_t_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    try:
        _migrated(url)
        yield url
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_reset(url: str) -> None:
    """Empty every table but the seeded roles and system account (DELETE beats TRUNCATE here:
    the tables are tiny, and TRUNCATE rewrites files and takes heavier locks)."""
    import immigrationos.store.models  # noqa: F401  (every table registered)
    from immigrationos.store.base import Base

    with psycopg.connect(url, autocommit=False) as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name == "users":
                conn.execute("DELETE FROM users WHERE id <> 'usr-system'")
            elif table.name != "roles":
                conn.execute(f'DELETE FROM "{table.name}"')  # type: ignore[arg-type]
        conn.commit()


@pytest.fixture
def pg_database_url(pg_session_database: str) -> Iterator[str]:
    """A migrated PostgreSQL database, empty at the start of the test."""
    _pg_reset(pg_session_database)
    yield pg_session_database
    _pg_reset(pg_session_database)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test's database is copied from."""
    path = tmp_path_factory.mktemp("template") / "immos.db"
    _migrated(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database URL on each backend (cloned from a migrated template).

    Migrations themselves are exercised by tests/store/test_schema.py.
    """
    if request.param == "sqlite":
        target = tmp_path / "immos.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> DemoBuild:
    """The demo world every test that needs "a demo world" shares, built by ``immos demo``
    once per test run, whatever the xdist workers (see tests/shared_demo.py)."""
    return shared_build(tmp_path_factory)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Demo-mode settings on a fresh database under a temporary data folder."""
    return Settings(mode="demo", data_dir=tmp_path, database_url=database_url)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A migrated runtime on the parametrised backend."""
    rt = open_runtime(settings)
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture
def env_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Point the process settings (IMMOS_*) at a temporary demo data folder (CLI tests)."""
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IMMOS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the process settings anew: a command run by an earlier test on the same
    worker must not leave its data folder cached for the next (``get_settings`` caches)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def collector_as_found() -> Iterator[None]:
    """A test whose code settles the heap as a service does (``core.heap.settle_heap`` raises
    the young generation's threshold) leaves the worker's collector thresholds as it found
    them: later tests on the worker, and the processes they fork, start from Python's."""
    thresholds = gc.get_threshold()
    yield
    if gc.get_threshold() != thresholds:
        gc.set_threshold(*thresholds)


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with minimal cost in tests (the production parameters take ~50 ms a hash)."""
    from immigrationos.accounts import service

    monkeypatch.setattr(service, "_hasher", CHEAP_HASHER)
