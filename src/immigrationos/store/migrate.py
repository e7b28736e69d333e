"""Apply Alembic migrations programmatically (``immos db upgrade``, the demo, the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

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
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (``base`` empties it)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


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
