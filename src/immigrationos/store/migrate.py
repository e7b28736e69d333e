"""Apply Alembic migrations programmatically (``immos db upgrade``, the demo, the tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, inspect

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the packaged migrations and ``engine``'s database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database up to ``revision`` (default: the newest)."""
    config = alembic_config(engine)
    with _migrating(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (``base`` empties it)."""
    config = alembic_config(engine)
    with _migrating(engine) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


class ForeignKeysBroken(RuntimeError):
    """A migration on SQLite left rows whose foreign keys point nowhere: nothing committed."""


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for Alembic: all its migrations commit, or none.

    On SQLite, foreign keys are not enforced while the schema changes and are checked all at
    once before the commit: SQLite's own procedure for a change it makes by rebuilding a
    table (Alembic's batch mode), since dropping the old copy of a table that others refer
    to would otherwise fail, or delete their rows' references. The pragma only takes effect
    outside a transaction, hence on the driver's connection before this one begins. Where
    no migration ran (the database is at ``revision`` already), nothing is checked.
    """
    with engine.connect() as connection:
        if engine.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                before = MigrationContext.configure(connection).get_current_revision()
                yield connection
                after = MigrationContext.configure(connection).get_current_revision()
                if after == before:
                    return
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    shown = ", ".join(f"{t} row {r} -> {p}" for t, r, p, _ in broken[:5])
                    raise ForeignKeysBroken(
                        f"migrating from {before} to {after} left {len(broken)} rows with a "
                        f"foreign key that points nowhere (nothing was committed): {shown}"
                    )
        finally:
            driver.execute("PRAGMA foreign_keys=ON")


def current_tables(engine: Engine) -> set[str]:
    """Names of the tables the database has now (a partitioned table's partitions are part
    of it, not tables of their own)."""
    return {n for n in inspect(engine).get_table_names() if not is_partition(n)}


def is_partition(table_name: str) -> bool:
    """Whether ``table_name`` names a partition the application creates at run time (one per
    priority run on PostgreSQL: ``store.bulk.partition_name``), which no migration declares."""
    return table_name.startswith(PARTITIONED_PREFIXES)


#: Prefixes of run-time partitions' names: each list-partitioned table's name and ``_``.
PARTITIONED_PREFIXES = ("priority_scores_",)


def include_name(name: str | None, type_: str, _parents: Any) -> bool:
    """Alembic's comparison filter: run-time partitions are not schema to migrate."""
    return not (type_ == "table" and name is not None and is_partition(name))
