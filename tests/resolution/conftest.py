"""A small synthetic world, loaded and ready to resolve, per test and backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.sources.conftest import load_world

from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

WORLD_PERSONS = 250


@pytest.fixture
def world(runtime: Runtime, tmp_path: Path) -> Iterator[tuple[Runtime, Path]]:
    """``runtime`` (SQLite or PostgreSQL) with every shipped source of a small world loaded."""
    load_world(runtime, tmp_path / "world", persons=WORLD_PERSONS)
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
    yield runtime, tmp_path / "world"
