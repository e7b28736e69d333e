"""``immos demo`` builds a world, loads every source with reconciled reports, and verifies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.shared_demo import DemoBuild
from typer.testing import CliRunner

from immigrationos.accounts.service import DEMO_ACCOUNTS
from immigrationos.cli.main import app
from immigrationos.core.settings import get_settings
from immigrationos.sources.definition import shipped_definitions


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IMMOS_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()


def test_demo_loads_every_source_and_prints_accounts(demo_build: DemoBuild) -> None:
    # the session's shared demo world: `immos demo --persons 400 --seed 3 --no-serve`, run
    # by tests/shared_demo.py exactly as a user would (its exit code checked there)
    output = demo_build.output
    for definition in shipped_definitions():
        assert definition.id in output
    assert "audit chain intact" in output
    assert "persons (" in output and "person index idx-" in output
    for account in DEMO_ACCOUNTS:
        assert account.username in output and account.password in output
    assert (demo_build.data / "immos.db").exists()
    assert (demo_build.data / "world" / "truth").is_dir()


def test_demo_refuses_to_run_outside_demo_mode(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMMOS_MODE", "production")
    monkeypatch.setenv("IMMOS_SECRET_KEY", "p" * 40)
    result = CliRunner().invoke(
        app, ["demo", "--persons", "100", "--data-dir", str(tmp_path), "--no-serve"]
    )
    get_settings.cache_clear()
    assert result.exit_code == 1
    assert "demo mode" in result.output
