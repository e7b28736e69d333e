"""``immos demo`` builds a world, loads every source with reconciled reports, and verifies."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
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


def test_demo_loads_every_source_and_prints_accounts(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(
        app, ["demo", "--persons", "300", "--seed", "3", "--data-dir", str(tmp_path), "--no-serve"]
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    for definition in shipped_definitions():
        assert definition.id in result.output
    assert "audit chain intact" in result.output
    assert "persons (" in result.output and "person index idx-" in result.output
    for account in DEMO_ACCOUNTS:
        assert account.username in result.output and account.password in result.output
    assert (tmp_path / "immos.db").exists()
    assert (tmp_path / "world" / "truth").is_dir()


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
