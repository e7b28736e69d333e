"""The running system's handles: settings, engine and guarded session factory.

Every entry point (CLI command, API app, test) opens one :class:`Runtime`, so configuration,
migrations and the gateway guard are set up in exactly one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from immigrationos.core.settings import Settings, get_settings
from immigrationos.gateway.core import guard
from immigrationos.store import migrate
from immigrationos.store.checkpoint import WalCheckpointer
from immigrationos.store.engine import make_engine, session_factory


@dataclass
class Runtime:
    """Settings, the database engine and the (gateway-guarded) session factory."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    checkpointer: WalCheckpointer | None = field(default=None, repr=False)
    """SQLite's log checkpoints, once a service moved them off its commits."""

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def checkpoint_in_background(self) -> bool:
        """For a service (the API server, a departure consumer) on SQLite: checkpoint the
        write-ahead log from a thread of its own instead of inside commits
        (:mod:`immigrationos.store.checkpoint`). Idempotent; False where it does not apply
        (PostgreSQL, an in-memory database)."""
        if self.checkpointer is None:
            self.checkpointer = WalCheckpointer(self.engine)
        return self.checkpointer.start()

    def close(self) -> None:
        """Stop the checkpoint thread, if any, and release database connections."""
        if self.checkpointer is not None:
            self.checkpointer.stop()
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
