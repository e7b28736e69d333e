"""The dossier's "System" section: version, database, every setting and the dependencies.

An inspector compares two dossiers to see what changed, so every setting is listed, but the
dossier is handed around: secrets appear only as "set" or "not set", and a password inside a
URL (database, NATS) as ``***``.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr
from sqlalchemy.orm import Session

from immigrationos import __version__
from immigrationos.core.clock import utcnow
from immigrationos.core.settings import Settings


def redact_url(url: str) -> str:
    """A URL with any password replaced by ``***`` (user names and hosts stay)."""
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _shown(value: Any) -> Any:
    """One setting's value as the dossier may show it."""
    if isinstance(value, SecretStr):
        return "set (value withheld)" if value.get_secret_value() else "not set"
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return str(value) if isinstance(value, Path) else value


def settings_summary(settings: Settings) -> dict[str, Any]:
    """Every setting with its value, except secrets (only whether set) and URL passwords."""
    out = {name: _shown(getattr(settings, name)) for name in Settings.model_fields}
    out["effective_database_url"] = redact_url(settings.effective_database_url)
    if settings.is_demo and out["secret_key"] == "not set":
        out["secret_key"] = "not set: the published demo secret is in use (demo mode only)"
    return out


def _declared_dependencies() -> list[str]:
    """The names of the project's declared dependencies (extras left out), sorted."""
    try:
        declared = importlib.metadata.requires("immigrationos") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    names = {re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in declared if "extra" not in r}
    return sorted(names)


def _installed_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def dependency_versions() -> dict[str, str]:
    """The installed version of every declared dependency of the project."""
    return {name: _installed_version(name) for name in _declared_dependencies()}


def system_section(session: Session, settings: Settings) -> dict[str, Any]:
    """What runs: version, backend and schema revision, platform, settings, dependencies."""
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(session.connection()).get_current_revision()
    return {
        "name": "ImmigrationOS",
        "version": __version__,
        "generated_at": utcnow().isoformat(timespec="seconds"),
        "backend": session.get_bind().dialect.name,
        "schema_revision": revision,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "settings": settings_summary(settings),
        "dependencies": dependency_versions(),
    }
