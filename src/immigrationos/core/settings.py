"""One typed settings object, read from ``IMMOS_*`` environment variables.

It fails closed: outside demo mode a missing or well-known secret is refused at start-up
rather than silently accepted, and secrets never print (they are ``SecretStr``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from immigrationos.core.errors import ConfigurationError

#: Secrets that ship in the repository for the demo and must never protect a real deployment.
DEMO_SECRET = "immos-demo-secret-not-for-production"


class Settings(BaseSettings):
    """Runtime configuration. Every field maps to ``IMMOS_<NAME>``; see ``docs/operations.md``."""

    model_config = SettingsConfigDict(env_prefix="IMMOS_", extra="ignore", frozen=True)

    mode: str = Field(
        default="production",
        description="`demo` allows the shipped demo secret and accounts; `production` does not.",
        pattern="^(demo|production)$",
    )
    data_dir: Path = Field(
        default=Path("var"),
        description="Where the embedded database, keys, documents and generated files live.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means SQLite at <data_dir>/immos.db.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Signs sessions and tokens. Required (and not the demo value) in production.",
    )
    audit_signing_key: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Ed25519 private key for audit checkpoints, as 64 hex characters (the 32-byte seed). "
            "Empty: a key file at <data_dir>/keys/audit-ed25519.key (created in demo mode only)."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address the server binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    log_level: str = Field(default="info", description="Server log level.")
    resolution_backend: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Where entity resolution scores pairs: DuckDB in-process, or Spark.",
    )
    documents_pdf: bool = Field(
        default=True,
        description="Render case documents to PDF (WeasyPrint) as well as HTML.",
    )
    lifecycle_tick_seconds: int = Field(
        default=60,
        ge=0,
        description="How often the server's background scheduler applies due deadlines (0: off).",
    )
    spark_master: str = Field(
        default="local[2]",
        description="Spark master URL for the Spark backend (local[N] or a cluster's URL).",
    )
    nats_url: str = Field(
        default="nats://127.0.0.1:4222",
        description="NATS server (with JetStream) the departure stream is published to.",
    )

    session_idle_minutes: int = Field(
        default=30, ge=1, description="A browser session ends after this long without a request."
    )
    session_max_hours: int = Field(
        default=12, ge=1, description="A browser session ends this long after sign-in, whatever."
    )
    sign_in_attempts_per_minute: int = Field(
        default=10,
        ge=1,
        description="Sign-in attempts allowed per client address per minute (then HTTP 429).",
    )
    api_token_days: int = Field(
        default=90, ge=1, le=366, description="How long a new API token stays valid."
    )
    redress_filings_per_hour: int = Field(
        default=10,
        ge=1,
        description="Correction (redress) requests accepted per client address per hour "
        "(then HTTP 429).",
    )
    redress_status_checks_per_minute: int = Field(
        default=10,
        ge=1,
        description="Redress status checks (reference and tracking code) per client address "
        "per minute (then HTTP 429).",
    )

    @model_validator(mode="after")
    def _fail_closed(self) -> Settings:
        if self.mode == "production":
            secret = self.secret_key.get_secret_value()
            if not secret:
                raise ConfigurationError(
                    "IMMOS_SECRET_KEY is required outside demo mode (IMMOS_MODE=demo for a demo)"
                )
            if secret == DEMO_SECRET:
                raise ConfigurationError(
                    "IMMOS_SECRET_KEY is the published demo secret; choose a new one for production"
                )
            if len(secret) < 32:
                raise ConfigurationError("IMMOS_SECRET_KEY must be at least 32 characters long")
        return self

    @property
    def is_demo(self) -> bool:
        """True when the shipped demo secret and accounts are allowed."""
        return self.mode == "demo"

    @property
    def effective_secret(self) -> str:
        """The secret in force: the configured one, or the demo secret in demo mode."""
        return self.secret_key.get_secret_value() or DEMO_SECRET

    @property
    def effective_database_url(self) -> str:
        """The database URL in force (embedded SQLite under ``data_dir`` by default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'immos.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    try:
        return Settings()
    except ConfigurationError:
        raise
    except ValueError as exc:  # pydantic's ValidationError, reworded for operators
        raise ConfigurationError(f"invalid IMMOS_* settings: {exc}") from exc
