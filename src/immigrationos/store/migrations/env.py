"""Alembic environment: migrates the connection :mod:`immigrationos.store.migrate` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import immigrationos.store.models  # noqa: F401  (registers every table)
from immigrationos.store.base import Base
from immigrationos.store.migrate import include_name

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run migrations on the given connection (or a fresh engine from the URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
