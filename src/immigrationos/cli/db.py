"""``immos db``: apply and inspect schema migrations."""

from __future__ import annotations

import typer
from alembic.runtime.migration import MigrationContext

from immigrationos.cli.common import console, friendly_errors
from immigrationos.core.settings import get_settings
from immigrationos.store import migrate
from immigrationos.store.engine import make_engine

app = typer.Typer(help="Apply and inspect database migrations.", no_args_is_help=True)


@app.command("upgrade")
@friendly_errors
def upgrade_cmd(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrate the configured database up to REVISION (default: the newest)."""
    engine = make_engine(get_settings().effective_database_url)
    migrate.upgrade(engine, revision)
    console.print(f"database at {revision}: {engine.url.render_as_string(hide_password=True)}")


@app.command("current")
@friendly_errors
def current_cmd() -> None:
    """Print the database's current migration revision."""
    engine = make_engine(get_settings().effective_database_url)
    with engine.connect() as conn:
        console.print(MigrationContext.configure(conn).get_current_revision() or "empty")
