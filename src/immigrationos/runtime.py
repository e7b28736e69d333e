"""The running system's handles: settings, engine and guarded session factory.

Every entry point (CLI command, API app, test) opens one :class:`Runtime`, so configuration,
migrations and the gateway guard are set up in exactly one way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from immigrationos.core.settings import Settings, get_settings
from immigrationos.gateway.core import guard
from immigrationos.store import migrate
from immigrationos.store.engine import make_engine, session_factory


@dataclass
class Runtime:
    """Settings, the database engine and the (gateway-guarded) session factory."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()


def open_runtime(settings: Settings | None = None, *, upgrade: bool = True) -> Runtime:
    """Open the configured database, migrating it to the newest schema unless told not to."""
    settings = settings or get_settings()
    engine = make_engine(settings.effective_database_url)
    if upgrade:
        migrate.upgrade(engine)
    sessions = guard(session_factory(engine))
    sessions.configure(info={"immos.documents_pdf": settings.documents_pdf})
    return Runtime(settings, engine, sessions)
