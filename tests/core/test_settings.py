"""Settings fail closed outside the demo and never print secrets."""

from __future__ import annotations

import pytest

from immigrationos.core.errors import ConfigurationError
from immigrationos.core.settings import DEMO_SECRET, Settings


def test_production_refuses_a_missing_secret() -> None:
    with pytest.raises(ConfigurationError, match="IMMOS_SECRET_KEY is required"):
        Settings(mode="production", secret_key="")


def test_production_refuses_the_demo_secret() -> None:
    with pytest.raises(ConfigurationError, match="published demo secret"):
        Settings(mode="production", secret_key=DEMO_SECRET)


def test_production_refuses_a_short_secret() -> None:
    with pytest.raises(ConfigurationError, match="at least 32"):
        Settings(mode="production", secret_key="short")


def test_demo_allows_the_demo_secret_and_production_a_real_one() -> None:
    assert Settings(mode="demo").effective_secret == DEMO_SECRET
    real = "x" * 40
    assert Settings(mode="production", secret_key=real).effective_secret == real


def test_secrets_never_print() -> None:
    settings = Settings(mode="production", secret_key="s3cr3t-" * 6)
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_PORT", "8123")
    monkeypatch.setenv("IMMOS_DATABASE_URL", "postgresql://u@h/db")
    settings = Settings()
    assert (settings.port, settings.effective_database_url) == (8123, "postgresql://u@h/db")


def test_default_database_is_embedded_sqlite_under_the_data_dir(tmp_path) -> None:
    settings = Settings(mode="demo", data_dir=tmp_path, database_url="")
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve()}/immos.db"
