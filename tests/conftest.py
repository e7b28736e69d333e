"""Shared fixtures. Store tests run on SQLite and PostgreSQL (parametrised, never copied).

PostgreSQL is the server at ``IMMOS_TEST_POSTGRES_URL`` (default: the project machines'
127.0.0.1:5432, user postgres, trust auth). Each test gets a database of its own, dropped
afterwards. Without a server the PostgreSQL cases skip with the reason; under ``CI=true``
they fail instead, because CI machines always have one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from immigrationos.core.settings import Settings, get_settings
from immigrationos.runtime import Runtime, open_runtime

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


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    require_postgres()
    name = f"immos_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'immos.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    return url


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
